// Conformance tests: _lwp_create, _lwp_exit, _lwp_self (semantics §2, §3.1–3.3,
// §4.4, §7.1, §7.8 items 12–14).
#include <gtest/gtest.h>

#include <array>

#include "lwp_calls_util.h"

namespace lwpd::test {
namespace {

using namespace lwpcalls;
using netbsd::LWP_DETACHED;
using netbsd::LWP_SUSPENDED;

// ---- §7.1 t_lwp_create.c ---------------------------------------------------------------

TEST(LwpSec71, LwpCreateWorks) {
  std::atomic<lwpid_t> seen{0};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U& c) {
                  seen = Self(c);
                  c.lwp_exit();
                }, 0, &lid),
                Errno::kOk);
    U_EXPECT(u, lid > 0);
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(lid, &departed), Errno::kOk);
    U_EXPECT_EQ(u, departed, lid);
    U_EXPECT_EQ(u, seen.load(), lid);
  });
  Finish(k, tp);
}

// A failed _lwp_create must leave no LWP (not even an embryo) behind.
void ExpectOnlyMain(U& u) {
  auto pi = PInfo(u);
  U_EXPECT(u, pi.has_value());
  if (!pi) return;
  U_EXPECT_EQ(u, pi->nlwps, 1);
  U_EXPECT_EQ(u, pi->nrlwps, 1);
  U_EXPECT_EQ(u, static_cast<int>(pi->lwps.size()), 1);
  U_CHECK_INVARIANTS(u);
}

TEST(LwpSec71, GenericFailNoUcCpuIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    LwpCreateArgs a;
    a.uc_flags = netbsd::UC_SIGMASK | netbsd::UC_STACK | netbsd::UC_FPU;
    U_EXPECT_EQ(u, u.sys(a).error, Errno::kEINVAL);
    a.uc_flags = 0;
    U_EXPECT_EQ(u, u.sys(a).error, Errno::kEINVAL);
    ExpectOnlyMain(u);
  });
  Finish(k, tp);
}

TEST(LwpSec71, Amd64FailUntouchableRflagsIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    LwpCreateArgs a;
    a.rflags = netbsd::PSL_MBO | 0x200 | netbsd::PSL_MBZ;  // what the NetBSD test sets
    U_EXPECT_EQ(u, u.sys(a).error, Errno::kEINVAL);
    // Each must-be-zero bit on its own.
    for (int bit = 0; bit < 32; bit++) {
      const uint64_t b = uint64_t{1} << bit;
      if (!(netbsd::PSL_MBZ & b)) continue;
      a.rflags = netbsd::PSL_MBO | 0x200 | b;
      U_EXPECT_EQ(u, u.sys(a).error, Errno::kEINVAL);
    }
    // The other static bits: must-be-one cleared, T, IOPL, NT, VM.
    for (uint64_t bad : {uint64_t{0x200}, netbsd::PSL_MBO | 0x200 | 0x100,
                         netbsd::PSL_MBO | 0x200 | 0x3000, netbsd::PSL_MBO | 0x200 | 0x4000,
                         netbsd::PSL_MBO | 0x200 | 0x20000}) {
      a.rflags = bad;
      U_EXPECT_EQ(u, u.sys(a).error, Errno::kEINVAL);
    }
    ExpectOnlyMain(u);
  });
  Finish(k, tp);
}

// The user-modifiable arithmetic flags are accepted (the check is not "any change").
TEST(LwpSec71, Amd64UserFlagsInRflagsAreAccepted) {
  std::atomic<bool> ran{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    LwpCreateArgs a;
    a.rflags = netbsd::PSL_MBO | 0x200 | 0x1 /*CF*/ | 0x4 /*PF*/ | 0x40 /*ZF*/ | 0x80 /*SF*/ |
               0x800 /*OF*/;
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U&) { ran = true; }, 0, &lid, a), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(lid), Errno::kOk);
    U_EXPECT(u, ran.load());
  });
  Finish(k, tp);
}

TEST(LwpSec71, Amd64FailPcTooHighIsEinval) {
  std::atomic<bool> ran{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    LwpCreateArgs a;
    a.pc = netbsd::VM_MAXUSER_ADDRESS;
    U_EXPECT_EQ(u, u.sys(a).error, Errno::kEINVAL);
    a.pc = ~uint64_t{0};
    U_EXPECT_EQ(u, u.sys(a).error, Errno::kEINVAL);
    ExpectOnlyMain(u);
    // The highest user address is still fine.
    a.pc = netbsd::VM_MAXUSER_ADDRESS - 1;
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U&) { ran = true; }, 0, &lid, a), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(lid), Errno::kOk);
    U_EXPECT(u, ran.load());
  });
  Finish(k, tp);
}

// ---- _lwp_create error paths and flags ----------------------------------------------------

// new_lwp cannot be written: EFAULT, and the embryo is destroyed without running.
// With RLIMIT_NTHR = 1 for a non-root user, the aborted creation must also give
// its slot back: the next creation still succeeds, the one after that not.
TEST(LwpCreate, LidCopyoutFaultIsEfaultAndLeavesNoLwp) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(
      k,
      [&](U& u) {
        LwpCreateArgs a;
        a.lid_out_ok = false;
        SysReturn r = u.sys(a);
        U_EXPECT_EQ(u, r.error, Errno::kEFAULT);
        ExpectOnlyMain(u);
        r = u.sys(a);  // twice: nothing accumulates
        U_EXPECT_EQ(u, r.error, Errno::kEFAULT);
        ExpectOnlyMain(u);
        lwpid_t lid = 0;
        U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go); }, 0, &lid), Errno::kOk);
        lwpid_t lid2 = 0;
        U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &lid2), Errno::kEAGAIN);
        Release(u, go, lid);
        U_EXPECT_EQ(u, u.wait(lid), Errno::kOk);
      },
      /*uid*/ 1000, /*rlimit_nthr*/ 1);
  Finish(k, tp);
}

TEST(LwpCreate, RlimitNthrIsEagainForNonRoot) {
  std::array<std::atomic<bool>, 3> go{};
  Kernel k(test_config());
  auto tp = TestProc::start(
      k,
      [&](U& u) {
        std::array<lwpid_t, 3> lid{};
        U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go[0]); }, 0, &lid[0]), Errno::kOk);
        U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go[1]); }, 0, &lid[1]), Errno::kOk);
        // The first LWP is not counted: main + 2 is the limit.
        lwpid_t extra = 0;
        U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &extra), Errno::kEAGAIN);
        U_EXPECT_EQ(u, u.create([&](U&) {}, LWP_DETACHED, &extra), Errno::kEAGAIN);
        U_EXPECT_EQ(u, PInfo(u)->nlwps, 3);
        U_CHECK_INVARIANTS(u);
        // A zombie still counts; only freeing it gives the slot back.
        Release(u, go[0], lid[0]);
        U_EXPECT(u, AwaitZombie(u, lid[0]));
        U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &extra), Errno::kEAGAIN);
        U_EXPECT_EQ(u, u.wait(lid[0]), Errno::kOk);
        U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go[2]); }, 0, &lid[2]), Errno::kOk);
        U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &extra), Errno::kEAGAIN);
        Release(u, go[1], lid[1]);
        Release(u, go[2], lid[2]);
        U_EXPECT_EQ(u, u.wait(lid[1]), Errno::kOk);
        U_EXPECT_EQ(u, u.wait(lid[2]), Errno::kOk);
      },
      /*uid*/ 1000, /*rlimit_nthr*/ 2);
  Finish(k, tp);
}

TEST(LwpCreate, RlimitNthrRootBypasses) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(
      k,
      [&](U& u) {
        std::array<lwpid_t, 4> lid{};
        for (auto& l : lid) {
          U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go); }, 0, &l), Errno::kOk);
        }
        U_EXPECT_EQ(u, PInfo(u)->nlwps, 5);
        go = true;
        for (auto l : lid) {
          Errno e = u.unpark(l);
          U_EXPECT(u, e == Errno::kOk || e == Errno::kESRCH);
        }
        for (auto l : lid) U_EXPECT_EQ(u, u.wait(l), Errno::kOk);
      },
      /*uid*/ 0, /*rlimit_nthr*/ 2);
  Finish(k, tp);
}

// RLIMIT_NTHR counts per uid, across processes, and a process's LWPs are
// uncounted again when it exits (whichever LWP exits last).
TEST(LwpCreate, RlimitNthrIsPerUidAcrossProcesses) {
  std::atomic<bool> go{false};
  std::atomic<bool> second_done{false};
  std::atomic<lwpid_t> first_child{0};
  Kernel k(test_config());
  auto tp1 = TestProc::start(
      k,
      [&](U& u) {
        lwpid_t lid = 0;
        U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go); }, 0, &lid), Errno::kOk);
        first_child = lid;
        U_EXPECT(u, PollUntil(u, [&] { return second_done.load(); }));
        Release(u, go, lid);
        // Main exits first; the child is the last LWP of the process.
      },
      1000, 2);
  ASSERT_TRUE(tp1->await([&](const ProcInfo& pi) { return pi.nlwps == 2; }));
  auto tp2 = TestProc::start(
      k,
      [&](U& u) {
        lwpid_t a = 0, b = 0;
        U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &a), Errno::kOk);
        // uid 1000 now has 2 non-first LWPs: one here, one in the other process.
        U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &b), Errno::kEAGAIN);
        U_EXPECT_EQ(u, u.wait(a), Errno::kOk);
        second_done = true;
      },
      1000, 2);
  Finish(k, tp2);
  Finish(k, tp1);
  // Both processes are gone: uid 1000 may again have two extra LWPs.
  auto tp3 = TestProc::start(
      k,
      [&](U& u) {
        lwpid_t a = 0, b = 0, c = 0;
        std::atomic<bool> g{false};
        U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, g); }, 0, &a), Errno::kOk);
        U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, g); }, 0, &b), Errno::kOk);
        U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &c), Errno::kEAGAIN);
        g = true;
        for (auto l : {a, b}) {
          Errno e = u.unpark(l);
          U_EXPECT(u, e == Errno::kOk || e == Errno::kESRCH);
        }
        U_EXPECT_EQ(u, u.wait(a), Errno::kOk);
        U_EXPECT_EQ(u, u.wait(b), Errno::kOk);
      },
      1000, 2);
  Finish(k, tp3);
}

TEST(LwpCreate, UnknownFlagBitsAreIgnored) {
  std::atomic<bool> ran{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    // Neither detached nor suspended: the former LWP_PIDLID, LWP_VFORK and noise.
    const uint64_t flags = 0x1 | 0x2 | 0x100 | 0x40000000 | 0x80000000ULL | (1ULL << 40);
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U&) { ran = true; }, flags, &lid), Errno::kOk);
    auto i = Info(u, lid);
    U_EXPECT(u, i.has_value() && !i->detached);
    U_EXPECT_EQ(u, u.wait(lid), Errno::kOk);  // joinable, and it ran
    U_EXPECT(u, ran.load());
  });
  Finish(k, tp);
}

TEST(LwpCreate, DetachedLwpCannotBeWaitedForAndIsReapedAutomatically) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go); }, LWP_DETACHED, &lid), Errno::kOk);
    auto i = Info(u, lid);
    U_EXPECT(u, i.has_value() && i->detached);
    U_EXPECT_EQ(u, PInfo(u)->ndlwps, 1);
    U_EXPECT_EQ(u, u.wait(lid), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.wait(0), Errno::kESRCH);  // nothing joinable
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = lid}), Errno::kEINVAL);
    Release(u, go, lid);
    // It exits into the p_zomblwp slot: invisible to lookups, not joinable.
    U_EXPECT(u, AwaitZombie(u, lid));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = lid, .signo = 0}), Errno::kESRCH);
    U_CHECK_INVARIANTS(u);
    // The next _lwp_wait drains the slot.
    U_EXPECT_EQ(u, u.wait(0), Errno::kESRCH);
    U_EXPECT(u, !Info(u, lid).has_value());
    auto pi = PInfo(u);
    U_EXPECT_EQ(u, pi->nlwps, 1);
    U_EXPECT_EQ(u, pi->ndlwps, 0);
    U_EXPECT_EQ(u, pi->nzlwps, 0);
  });
  Finish(k, tp);
}

// The next _lwp_create also drains a detached zombie.
TEST(LwpCreate, CreateReapsPendingDetachedZombie) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t d = 0;
    U_EXPECT_EQ(u, u.create([&](U&) {}, LWP_DETACHED, &d), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, d));
    lwpid_t n = 0;
    U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &n), Errno::kOk);
    U_EXPECT(u, !Info(u, d).has_value());
    U_EXPECT_EQ(u, u.wait(n), Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpCreate, SuspendedLwpDoesNotRunUntilContinued) {
  std::atomic<bool> ran{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U&) { ran = true; }, LWP_SUSPENDED, &lid), Errno::kOk);
    U_EXPECT(u, AwaitStat(u, lid, LwpStat::kSuspended));
    U_EXPECT(u, !ran.load());
    U_EXPECT_EQ(u, PInfo(u)->nrlwps, 1);
    U_CHECK_INVARIANTS(u);
    TimedPark(u, 30ms);
    U_EXPECT(u, !ran.load());
    U_EXPECT_EQ(u, Info(u, lid)->stat, LwpStat::kSuspended);
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = lid}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(lid), Errno::kOk);
    U_EXPECT(u, ran.load());
  });
  Finish(k, tp);
}

// ---- _lwp_exit -------------------------------------------------------------------------

TEST(LwpExit, NonLastLwpBecomesZombieUntilWaited) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U& c) { c.lwp_exit(); }, 0, &lid), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, lid));
    auto pi = PInfo(u);
    U_EXPECT_EQ(u, pi->nlwps, 2);
    U_EXPECT_EQ(u, pi->nzlwps, 1);
    U_EXPECT_EQ(u, pi->nrlwps, 1);
    U_CHECK_INVARIANTS(u);
    // A zombie is invisible to lwp_find...
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = lid, .signo = 0}), Errno::kESRCH);
    // ...but _lwp_wait collects it.
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(lid, &departed), Errno::kOk);
    U_EXPECT_EQ(u, departed, lid);
    U_EXPECT(u, !Info(u, lid).has_value());
    U_EXPECT_EQ(u, PInfo(u)->nlwps, 1);
    U_EXPECT_EQ(u, PInfo(u)->nzlwps, 0);
  });
  Finish(k, tp);
}

// The main LWP exits first (zombie); the last live LWP's _lwp_exit ends the
// process with status 0.
TEST(LwpExit, LastLiveLwpExitEndsProcessWithStatusZero) {
  std::atomic<bool> child_saw_zombie{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t main_lid = u.lid();
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&, main_lid](U& c) {
                  U_EXPECT(c, AwaitZombie(c, main_lid));
                  auto pi = PInfo(c);
                  U_EXPECT_EQ(c, pi->nzlwps, 1);
                  U_EXPECT_EQ(c, pi->nlwps, 2);
                  U_CHECK_INVARIANTS(c);
                  child_saw_zombie = true;
                  c.lwp_exit();
                }, 0, &lid),
                Errno::kOk);
    u.lwp_exit();
  });
  Finish(k, tp, ExitStatus{.signaled = false, .code = 0});
  EXPECT_TRUE(child_saw_zombie.load());
}

// _lwp_exit of a detached LWP frees the previous detached zombie first: only
// the newest detached zombie waits in the p_zomblwp slot.
TEST(LwpExit, DetachedExitFreesPreviousDetachedZombie) {
  std::atomic<bool> go1{false}, go2{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t d1 = 0, d2 = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go1); }, LWP_DETACHED, &d1), Errno::kOk);
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go2); }, LWP_DETACHED, &d2), Errno::kOk);
    Release(u, go1, d1);
    U_EXPECT(u, AwaitZombie(u, d1));  // d1 waits in p_zomblwp
    Release(u, go2, d2);
    U_EXPECT(u, AwaitZombie(u, d2));  // d2's exit freed d1 and took its place
    U_EXPECT(u, !Info(u, d1).has_value());
    auto pi = PInfo(u);
    U_EXPECT_EQ(u, pi->nzlwps, 1);
    U_EXPECT_EQ(u, pi->ndlwps, 1);
    U_EXPECT_EQ(u, pi->nlwps, 2);
    U_CHECK_INVARIANTS(u);
  });
  Finish(k, tp);
}

TEST(LwpSec78, Item12_LastLwpExitIsProcessExitStatusZero) {
  std::atomic<bool> returned{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t lid = 0;
    U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &lid), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(lid), Errno::kOk);
    u.sys(LwpExitArgs{});  // the only LWP: never returns
    returned = true;
  });
  Finish(k, tp, ExitStatus{.signaled = false, .code = 0});
  EXPECT_FALSE(returned.load());
}

TEST(LwpSec78, Item13_CreateSuspendedThenContinueImmediatelyRuns) {
  Kernel k(test_config());
  std::atomic<int> ran{0};
  auto tp = TestProc::start(k, [&](U& u) {
    // Repeat: the continue may arrive before or after the LWP reaches userret.
    for (int i = 0; i < 20; i++) {
      lwpid_t lid = 0;
      U_EXPECT_EQ(u, u.create([&](U&) { ran++; }, LWP_SUSPENDED, &lid), Errno::kOk);
      U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = lid}), Errno::kOk);
      U_EXPECT_EQ(u, u.wait(lid), Errno::kOk);
      U_EXPECT_EQ(u, ran.load(), i + 1);
    }
  });
  Finish(k, tp);
  EXPECT_EQ(ran.load(), 20);
}

// ---- _lwp_self -------------------------------------------------------------------------

TEST(LwpSec78, Item14_MainLidIsPidSecondLidIsFreshPidSpaceNumber) {
  std::atomic<bool> go{false};
  std::atomic<lwpid_t> child_self{0};
  std::shared_ptr<TestProc> other;
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, Self(u), u.proc().pid());
    U_EXPECT_EQ(u, u.lid(), u.proc().pid());
    lwpid_t a = 0, b = 0;
    U_EXPECT_EQ(u, u.create([&](U& c) {
                  child_self = Self(c);
                  ParkUntil(c, go);
                }, 0, &a),
                Errno::kOk);
    U_EXPECT_EQ(u, u.create([&](U& c) { ParkUntil(c, go); }, 0, &b), Errno::kOk);
    U_EXPECT(u, a > 0 && b > 0);
    U_EXPECT(u, a != u.proc().pid() && b != u.proc().pid() && a != b);
    U_EXPECT(u, u.spin_until([&] { return child_self.load() != 0; }, kSpinLimit));
    U_EXPECT_EQ(u, child_self.load(), a);
    // LIDs share the PID space: a process created now gets neither number.
    other = TestProc::start(u.proc().kernel(), [](U&) {});
    U_EXPECT(u, other->pid() != a && other->pid() != b && other->pid() != u.proc().pid());
    go = true;
    for (auto l : {a, b}) {
      Errno e = u.unpark(l);
      U_EXPECT(u, e == Errno::kOk || e == Errno::kESRCH);
    }
    U_EXPECT_EQ(u, u.wait(a), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(b), Errno::kOk);
  });
  Finish(k, tp);
  ASSERT_NE(other, nullptr);
  Finish(k, other);
}

// §2: when the LID == PID LWP is freed, the next LWP created takes LID == PID.
TEST(LwpSelf, LidEqualPidIsReusedAfterMainLwpIsFreed) {
  std::atomic<lwpid_t> d_self{0};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t pid = u.proc().pid();
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&, pid](U& x) {
                  U_EXPECT(x, AwaitZombie(x, pid));
                  lwpid_t departed = 0;
                  U_EXPECT_EQ(x, x.wait(pid, &departed), Errno::kOk);
                  U_EXPECT_EQ(x, departed, pid);
                  lwpid_t d = 0;
                  U_EXPECT_EQ(x, x.create([&](U& y) { d_self = Self(y); }, 0, &d), Errno::kOk);
                  U_EXPECT_EQ(x, d, pid);
                  U_EXPECT_EQ(x, x.wait(d), Errno::kOk);
                  U_EXPECT_EQ(x, d_self.load(), pid);
                }, 0, &c),
                Errno::kOk);
    u.lwp_exit();
  });
  Finish(k, tp);
}

}  // namespace
}  // namespace lwpd::test
