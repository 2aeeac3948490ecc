// Conformance tests: _lwp_getprivate/_lwp_setprivate, _lwp_ctl,
// _lwp_setname/_lwp_getname, _sched_{set,get}{param,affinity} (semantics §3.9,
// §3.10, §3.14, §6.5, §7.2, §7.8 items 10–11).
#include <gtest/gtest.h>

#include "lwp_calls_util.h"

namespace lwpd::test {
namespace {

using namespace lwpcalls;
using netbsd::LWPCTL_CPU_EXITED;
using netbsd::LWPCTL_CPU_NONE;
using netbsd::LWPCTL_FEATURE_CURCPU;
using netbsd::LWPCTL_FEATURE_PCTR;
using netbsd::NB_SCHED_FIFO;
using netbsd::NB_SCHED_NONE;
using netbsd::NB_SCHED_OTHER;
using netbsd::NB_SCHED_RR;
using netbsd::PRI_NONE;

// ---- _lwp_getprivate / _lwp_setprivate --------------------------------------------------------

uint64_t GetPrivate(U& u) { return static_cast<uint64_t>(u.sys(LwpGetprivateArgs{}).retval); }

TEST(LwpPrivate, FreshLwpIsZeroAndSetIsPerLwp) {
  std::atomic<uint64_t> child_initial{1}, child_after{1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, GetPrivate(u), uint64_t{0});
    U_EXPECT_EQ(u, u.err(LwpSetprivateArgs{.ptr = 0x7f7f00001000}), Errno::kOk);
    U_EXPECT_EQ(u, GetPrivate(u), uint64_t{0x7f7f00001000});
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  child_initial = GetPrivate(x);  // not inherited
                  U_EXPECT_EQ(x, x.err(LwpSetprivateArgs{.ptr = 0x42}), Errno::kOk);
                  child_after = GetPrivate(x);
                }, 0, &c),
                Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    U_EXPECT_EQ(u, child_initial.load(), uint64_t{0});
    U_EXPECT_EQ(u, child_after.load(), uint64_t{0x42});
    U_EXPECT_EQ(u, GetPrivate(u), uint64_t{0x7f7f00001000});
    U_EXPECT_EQ(u, u.err(LwpSetprivateArgs{.ptr = 0}), Errno::kOk);
    U_EXPECT_EQ(u, GetPrivate(u), uint64_t{0});
  });
  Finish(k, tp);
}

// The ucontext's TLS base (_UC_TLSBASE) becomes the new LWP's private pointer.
TEST(LwpPrivate, UcTlsbaseSetsNewLwpPrivate) {
  std::atomic<uint64_t> with{1}, without{1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    LwpCreateArgs a;
    a.uc_flags |= netbsd::UC_TLSBASE;
    a.tls_base = 0xdead0000;
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { with = GetPrivate(x); }, 0, &c, a), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    a.uc_flags &= ~netbsd::UC_TLSBASE;  // the field is ignored without the flag
    U_EXPECT_EQ(u, u.create([&](U& x) { without = GetPrivate(x); }, 0, &c, a), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    U_EXPECT_EQ(u, with.load(), uint64_t{0xdead0000});
    U_EXPECT_EQ(u, without.load(), uint64_t{0});
  });
  Finish(k, tp);
}

// ---- _lwp_ctl ---------------------------------------------------------------------------------

TEST(LwpCtl, UnknownFeatureIsEnodev) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    for (int f : {0x4, 0x7, 0x8, 0x100, static_cast<int>(0x80000000u)}) {
      U_EXPECT_EQ(u, u.err(LwpCtlArgs{.features = f}), Errno::kENODEV);
    }
    for (int f : {0, LWPCTL_FEATURE_CURCPU, LWPCTL_FEATURE_PCTR,
                  LWPCTL_FEATURE_CURCPU | LWPCTL_FEATURE_PCTR}) {
      U_EXPECT_EQ(u, u.err(LwpCtlArgs{.features = f}), Errno::kOk);
    }
  });
  Finish(k, tp);
}

TEST(LwpCtl, RepeatReturnsSameSlotAndLwpsGetDistinctSlots) {
  std::atomic<int> child_slot{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    SysReturn r1 = u.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_CURCPU});
    SysReturn r2 = u.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_PCTR});
    U_EXPECT_EQ(u, r1.error, Errno::kOk);
    U_EXPECT_EQ(u, r2.error, Errno::kOk);
    U_EXPECT(u, r1.lwpctl_slot >= 0);
    U_EXPECT_EQ(u, r1.lwpctl_slot, r2.lwpctl_slot);
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  SysReturn a = x.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_CURCPU});
                  SysReturn b = x.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_CURCPU});
                  U_EXPECT_EQ(x, a.error, Errno::kOk);
                  U_EXPECT_EQ(x, a.lwpctl_slot, b.lwpctl_slot);
                  child_slot = a.lwpctl_slot;
                }, 0, &c),
                Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    U_EXPECT(u, child_slot.load() >= 0 && child_slot.load() != r1.lwpctl_slot);
  });
  Finish(k, tp);
}

// §7.8 item 11: ENODEV for unknown features, the same block on a repeat call,
// and lc_curcpu == LWPCTL_CPU_EXITED once the LWP has exited (read through a
// mapping of the region, as user code would).
TEST(LwpSec78, Item11_LwpctlEnodevSameSlotAndCurcpuExitedAfterExit) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  KernelConfig cfg = test_config();
  cfg.runtime_dir = dir.path();
  std::atomic<int> child_slot{-1};
  std::atomic<bool> go{false};
  Kernel k(cfg);
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpCtlArgs{.features = 0x4}), Errno::kENODEV);
    SysReturn r1 = u.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_CURCPU | LWPCTL_FEATURE_PCTR});
    SysReturn r2 = u.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_CURCPU | LWPCTL_FEATURE_PCTR});
    U_EXPECT_EQ(u, r1.error, Errno::kOk);
    U_EXPECT_EQ(u, r1.lwpctl_slot, r2.lwpctl_slot);
    auto pi = PInfo(u);
    U_EXPECT(u, pi && !pi->lwpctl_path.empty());
    if (!pi || pi->lwpctl_path.empty()) return;
    LwpctlMap map(pi->lwpctl_path);
    U_EXPECT(u, map.ok());
    if (!map.ok()) return;
    // Running: lc_curcpu is our vCPU.
    U_EXPECT_EQ(u, map.curcpu(r1.lwpctl_slot), Info(u, u.lid())->cpu);
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  child_slot = x.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_CURCPU}).lwpctl_slot;
                  ParkUntil(x, go);
                }, 0, &c),
                Errno::kOk);
    U_EXPECT(u, u.spin_until([&] { return child_slot.load() >= 0; }, kSpinLimit));
    // Parked: not on a CPU.
    U_EXPECT(u, AwaitParked(u, c));
    U_EXPECT_EQ(u, map.curcpu(child_slot), LWPCTL_CPU_NONE);
    Release(u, go, c);
    U_EXPECT(u, AwaitZombie(u, c));
    U_EXPECT_EQ(u, map.curcpu(child_slot), LWPCTL_CPU_EXITED);
    U_EXPECT_EQ(u, Info(u, c)->lc_curcpu, LWPCTL_CPU_EXITED);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
  });
  Finish(k, tp);
}

// §7.2 t_lwp_ctl.c lwpctl_counter: lc_pctr changes across a 10 ms sleep.
TEST(LwpSec72, LwpctlCounterChangesAcrossA10msPark) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  KernelConfig cfg = test_config();
  cfg.runtime_dir = dir.path();
  Kernel k(cfg);
  auto tp = TestProc::start(k, [&](U& u) {
    SysReturn r = u.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_PCTR});
    U_EXPECT_EQ(u, r.error, Errno::kOk);
    auto pi = PInfo(u);
    U_EXPECT(u, pi && !pi->lwpctl_path.empty());
    if (!pi || pi->lwpctl_path.empty()) return;
    LwpctlMap map(pi->lwpctl_path);
    U_EXPECT(u, map.ok());
    if (!map.ok()) return;
    const int32_t before = map.pctr(r.lwpctl_slot);
    U_EXPECT_EQ(u, Info(u, u.lid())->lc_pctr, before);
    TimedPark(u, 10ms);
    const int32_t after = map.pctr(r.lwpctl_slot);
    U_EXPECT(u, after != before);
    U_EXPECT(u, after > before);  // one more switch-in at least
    U_EXPECT_EQ(u, Info(u, u.lid())->lc_pctr, after);
  });
  Finish(k, tp);
}

// The same, reading the counter from the kernel's snapshot (memfd-backed region).
TEST(LwpSec72, LwpctlCounterChangesAcrossParkKernelView) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpCtlArgs{.features = LWPCTL_FEATURE_PCTR}), Errno::kOk);
    const int32_t before = Info(u, u.lid())->lc_pctr;
    TimedPark(u, 10ms);
    const int32_t after = Info(u, u.lid())->lc_pctr;
    U_EXPECT(u, after > before);
  });
  Finish(k, tp);
}

// A slot freed with its LWP and handed out again keeps its counter (§3.10:
// lc_pctr is not reset on allocation).
TEST(LwpCtl, ReusedSlotKeepsItsCounter) {
  std::atomic<int> slot_a{-1}, slot_b{-1};
  std::atomic<int32_t> pctr_a{-1}, pctr_b{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpCtlArgs{.features = LWPCTL_FEATURE_PCTR}), Errno::kOk);
    lwpid_t a = 0, b = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  slot_a = x.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_PCTR}).lwpctl_slot;
                  for (int i = 0; i < 5; i++) TimedPark(x, 1ms);
                  pctr_a = Info(x, x.lid())->lc_pctr;
                }, 0, &a),
                Errno::kOk);
    U_EXPECT_EQ(u, u.wait(a), Errno::kOk);
    U_EXPECT(u, pctr_a.load() >= 5);
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  slot_b = x.sys(LwpCtlArgs{.features = LWPCTL_FEATURE_PCTR}).lwpctl_slot;
                  pctr_b = Info(x, x.lid())->lc_pctr;
                }, 0, &b),
                Errno::kOk);
    U_EXPECT_EQ(u, u.wait(b), Errno::kOk);
    U_EXPECT(u, slot_a.load() >= 0);
    if (slot_b.load() == slot_a.load()) {
      U_EXPECT(u, pctr_b.load() >= pctr_a.load());
    }
  });
  Finish(k, tp);
}

// ---- _lwp_setname / _lwp_getname --------------------------------------------------------------

SysReturn GetName(U& u, lwpid_t target, uint64_t len) {
  return u.sys(LwpGetnameArgs{.target = target, .len = len});
}

TEST(LwpSec78, Item10_LongNameTruncatedAndShortBufferIsEnametoolong) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const std::string name40 = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
    U_EXPECT_EQ(u, static_cast<int>(name40.size()), 40);
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = 0, .name = name40}), Errno::kOk);
    SysReturn r = GetName(u, 0, 16);
    U_EXPECT_EQ(u, r.error, Errno::kOk);
    U_EXPECT_EQ(u, r.name, name40.substr(0, 15));
    r = GetName(u, u.lid(), 64);
    U_EXPECT_EQ(u, r.error, Errno::kOk);
    U_EXPECT_EQ(u, r.name, name40.substr(0, 15));
    r = GetName(u, 0, 4);
    U_EXPECT_EQ(u, r.error, Errno::kENAMETOOLONG);
    // At most the buffer was written, and only a prefix of the name.
    U_EXPECT(u, r.name.size() <= 4 && name40.compare(0, r.name.size(), r.name) == 0);
    U_EXPECT_EQ(u, Info(u, u.lid())->name, name40.substr(0, 15));
  });
  Finish(k, tp);
}

TEST(LwpName, BufferLengthLimits) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    // Unnamed: "" fits any buffer with room for the NUL.
    SysReturn r = GetName(u, 0, 1);
    U_EXPECT_EQ(u, r.error, Errno::kOk);
    U_EXPECT_EQ(u, r.name, std::string());
    U_EXPECT_EQ(u, GetName(u, 0, 0).error, Errno::kENAMETOOLONG);
    const std::string n15 = "fifteen-chars.."; 
    U_EXPECT_EQ(u, static_cast<int>(n15.size()), 15);
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = 0, .name = n15}), Errno::kOk);
    U_EXPECT_EQ(u, GetName(u, 0, 16).name, n15);
    U_EXPECT_EQ(u, GetName(u, 0, 1000).name, n15);
    U_EXPECT_EQ(u, GetName(u, 0, 15).error, Errno::kENAMETOOLONG);
    U_EXPECT_EQ(u, GetName(u, 0, 0).error, Errno::kENAMETOOLONG);
    // An embedded NUL ends the name.
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = 0, .name = std::string("ab\0cd", 5)}),
                Errno::kOk);
    U_EXPECT_EQ(u, GetName(u, 0, 16).name, std::string("ab"));
    // Renaming replaces the old name.
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = 0, .name = "x"}), Errno::kOk);
    U_EXPECT_EQ(u, GetName(u, 0, 16).name, std::string("x"));
  });
  Finish(k, tp);
}

TEST(LwpName, TargetZeroIsSelfAndOtherLwpsByLid) {
  std::atomic<bool> go{false};
  std::atomic<bool> child_ok{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  ParkUntil(x, go);
                  SysReturn r = GetName(x, 0, 16);
                  U_EXPECT_EQ(x, r.error, Errno::kOk);
                  U_EXPECT_EQ(x, r.name, std::string("worker"));
                  child_ok = true;
                }, 0, &c),
                Errno::kOk);
    U_EXPECT_EQ(u, GetName(u, c, 16).name, std::string());  // unnamed
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = c, .name = "worker"}), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = 0, .name = "main"}), Errno::kOk);
    U_EXPECT_EQ(u, GetName(u, c, 16).name, std::string("worker"));
    U_EXPECT_EQ(u, GetName(u, 0, 16).name, std::string("main"));
    U_EXPECT_EQ(u, Info(u, c)->name, std::string("worker"));
    Release(u, go, c);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    U_EXPECT(u, child_ok.load());
  });
  Finish(k, tp);
}

TEST(LwpName, UnknownOrZombieLidIsEsrch) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = kBogusLid, .name = "x"}), Errno::kESRCH);
    U_EXPECT_EQ(u, GetName(u, kBogusLid, 16).error, Errno::kESRCH);
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U& x) {
                  U_EXPECT_EQ(x, x.err(LwpSetnameArgs{.target = 0, .name = "doomed"}),
                              Errno::kOk);
                }, 0, &z),
                Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, u.err(LwpSetnameArgs{.target = z, .name = "x"}), Errno::kESRCH);
    U_EXPECT_EQ(u, GetName(u, z, 16).error, Errno::kESRCH);
    // At exit a set name is overwritten with "(zombie)".
    U_EXPECT_EQ(u, Info(u, z)->name, std::string("(zombie)"));
    U_EXPECT_EQ(u, u.wait(z), Errno::kOk);
  });
  Finish(k, tp);
}

// ---- _sched_setparam / _sched_getparam --------------------------------------------------------

SysReturn GetParam(U& u, pid_t pid, lwpid_t lid) {
  return u.sys(SchedGetparamArgs{.pid = pid, .lid = lid});
}

TEST(LwpSched, SetparamPolicyOutOfRangeIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    for (int policy : {3, -2, 100}) {
      U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = policy, .priority = 10}),
                  Errno::kEINVAL);
      U_EXPECT_EQ(u,
                  u.err(SchedSetparamArgs{.lid = u.lid(), .policy = policy, .priority = PRI_NONE}),
                  Errno::kEINVAL);
    }
    U_EXPECT_EQ(u, GetParam(u, 0, u.lid()).policy, NB_SCHED_OTHER);
  });
  Finish(k, tp);
}

TEST(LwpSched, SetparamPriorityOutOfRangeIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    for (int policy : {NB_SCHED_FIFO, NB_SCHED_RR, NB_SCHED_NONE}) {
      for (int prio : {64, -2, 1000}) {
        U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = policy, .priority = prio}),
                    Errno::kEINVAL);
      }
    }
    U_EXPECT_EQ(u, GetParam(u, 0, u.lid()).policy, NB_SCHED_OTHER);
  });
  Finish(k, tp);
}

TEST(LwpSched, SetparamPriorityForSchedOtherIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    for (int prio : {0, 10, 63}) {
      U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_OTHER,
                                             .priority = prio}),
                  Errno::kEINVAL);
    }
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_OTHER,
                                           .priority = PRI_NONE}),
                Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpSched, FifoPriority10ReadsBack) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.pid = 0, .lid = u.lid(), .policy = NB_SCHED_FIFO,
                                           .priority = 10}),
                Errno::kOk);
    for (pid_t pid : {pid_t{0}, u.proc().pid()}) {
      SysReturn r = GetParam(u, pid, u.lid());
      U_EXPECT_EQ(u, r.error, Errno::kOk);
      U_EXPECT_EQ(u, r.policy, NB_SCHED_FIFO);
      U_EXPECT_EQ(u, r.priority, 10);
    }
    // lid 0 reads the first (newest) LWP: the only one here.
    U_EXPECT_EQ(u, GetParam(u, 0, 0).priority, 10);
    // SCHED_NONE keeps the policy and changes the priority.
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_NONE,
                                           .priority = 20}),
                Errno::kOk);
    SysReturn r = GetParam(u, 0, u.lid());
    U_EXPECT_EQ(u, r.policy, NB_SCHED_FIFO);
    U_EXPECT_EQ(u, r.priority, 20);
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_RR,
                                           .priority = 63}),
                Errno::kOk);
    r = GetParam(u, 0, u.lid());
    U_EXPECT_EQ(u, r.policy, NB_SCHED_RR);
    U_EXPECT_EQ(u, r.priority, 63);
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_OTHER,
                                           .priority = PRI_NONE}),
                Errno::kOk);
    U_EXPECT_EQ(u, GetParam(u, 0, u.lid()).policy, NB_SCHED_OTHER);
  });
  Finish(k, tp);
}

// lid 0: setparam applies to every LWP; getparam reads the newest LWP.
TEST(LwpSched, LidZeroMeansAllForSetAndNewestForGet) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &c), Errno::kOk);
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_RR,
                                           .priority = 7}),
                Errno::kOk);
    // lid 0 is the newest LWP (c), still SCHED_OTHER.
    U_EXPECT_EQ(u, GetParam(u, 0, 0).policy, NB_SCHED_OTHER);
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = 0, .policy = NB_SCHED_RR, .priority = 5}),
                Errno::kOk);
    for (lwpid_t l : {u.lid(), c}) {
      SysReturn r = GetParam(u, 0, l);
      U_EXPECT_EQ(u, r.policy, NB_SCHED_RR);
      U_EXPECT_EQ(u, r.priority, 5);
    }
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = 0, .policy = NB_SCHED_OTHER,
                                           .priority = PRI_NONE}),
                Errno::kOk);
    Release(u, go, c);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpSched, NonRootRaisingIsEperm) {
  Kernel k(test_config());
  auto tp = TestProc::start(
      k,
      [&](U& u) {
        U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_FIFO,
                                               .priority = 10}),
                    Errno::kEPERM);
        U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_RR,
                                               .priority = 0}),
                    Errno::kEPERM);
        // Keeping what one has is allowed.
        U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_OTHER,
                                               .priority = PRI_NONE}),
                    Errno::kOk);
        U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.lid = u.lid(), .policy = NB_SCHED_NONE,
                                               .priority = PRI_NONE}),
                    Errno::kOk);
        U_EXPECT_EQ(u, GetParam(u, 0, u.lid()).policy, NB_SCHED_OTHER);
      },
      /*uid*/ 1000);
  Finish(k, tp);
}

TEST(LwpSched, UnknownPidOrLidIsEsrch) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const pid_t bogus_pid = 29998;
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.pid = bogus_pid, .lid = 0, .policy = NB_SCHED_NONE,
                                           .priority = PRI_NONE}),
                Errno::kESRCH);
    U_EXPECT_EQ(u, GetParam(u, bogus_pid, 0).error, Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.pid = bogus_pid, .lid = 0, .mask = 1}),
                Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(SchedGetaffinityArgs{.pid = bogus_pid, .lid = 0}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(SchedSetparamArgs{.pid = 0, .lid = kBogusLid, .policy = NB_SCHED_NONE,
                                           .priority = PRI_NONE}),
                Errno::kESRCH);
    U_EXPECT_EQ(u, GetParam(u, 0, kBogusLid).error, Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.pid = 0, .lid = kBogusLid, .mask = 1}),
                Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(SchedGetaffinityArgs{.pid = 0, .lid = kBogusLid}), Errno::kESRCH);
    // A zombie is not a target either.
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &z), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, GetParam(u, 0, z).error, Errno::kESRCH);
    U_EXPECT_EQ(u, u.wait(z), Errno::kOk);
  });
  Finish(k, tp);
}

// ---- _sched_setaffinity / _sched_getaffinity ---------------------------------------------------

TEST(LwpSched, SetaffinityNonRootIsEperm) {
  Kernel k(test_config());
  auto tp = TestProc::start(
      k,
      [&](U& u) {
        U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.lid = u.lid(), .mask = 0x1}), Errno::kEPERM);
        U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.lid = u.lid(), .mask = 0x3}), Errno::kEPERM);
        SysReturn r = u.sys(SchedGetaffinityArgs{.lid = u.lid()});
        U_EXPECT_EQ(u, r.error, Errno::kOk);
        U_EXPECT_EQ(u, r.mask, uint64_t{0});
      },
      /*uid*/ 1000);
  Finish(k, tp);
}

TEST(LwpSched, SetaffinityWithOnlyNonexistentCpusIsEperm) {
  Kernel k(test_config(2));
  auto tp = TestProc::start(k, [&](U& u) {
    for (uint64_t m : {uint64_t{1} << 2, uint64_t{1} << 5, uint64_t{1} << 63}) {
      U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.lid = u.lid(), .mask = m}), Errno::kEPERM);
    }
    U_EXPECT_EQ(u, u.sys(SchedGetaffinityArgs{.lid = u.lid()}).mask, uint64_t{0});
  });
  Finish(k, tp);
}

TEST(LwpSched, GetaffinityReadsBackAndLwpMigrates) {
  std::atomic<uint64_t> child_mask{99};
  Kernel k(test_config(2));
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.lid = u.lid(), .mask = 0x2}), Errno::kOk);
    SysReturn r = u.sys(SchedGetaffinityArgs{.lid = u.lid()});
    U_EXPECT_EQ(u, r.error, Errno::kOk);
    U_EXPECT_EQ(u, r.mask, uint64_t{0x2});
    // Back in user mode, so running on a vCPU of the set.
    U_EXPECT_EQ(u, Info(u, u.lid())->cpu, 1);
    // New LWPs inherit the mask.
    // (Created suspended: a new LWP confined to our vCPU must not take it
    // before its host thread exists; see the report on U::create.)
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  child_mask = x.sys(SchedGetaffinityArgs{.lid = x.lid()}).mask;
                }, netbsd::LWP_SUSPENDED, &c),
                Errno::kOk);
    U_EXPECT_EQ(u, u.sys(SchedGetaffinityArgs{.lid = c}).mask, uint64_t{0x2});
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = c}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    U_EXPECT_EQ(u, child_mask.load(), uint64_t{0x2});
    U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.lid = u.lid(), .mask = 0x1}), Errno::kOk);
    U_EXPECT_EQ(u, Info(u, u.lid())->cpu, 0);
    // The empty set clears the affinity.
    U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.lid = u.lid(), .mask = 0}), Errno::kOk);
    U_EXPECT_EQ(u, u.sys(SchedGetaffinityArgs{.lid = u.lid()}).mask, uint64_t{0});
  });
  Finish(k, tp);
}

}  // namespace
}  // namespace lwpd::test
