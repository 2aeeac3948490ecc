// Conformance tests: _lwp_suspend, _lwp_continue, _lwp_kill (semantics §3.5,
// §3.8, §4.2, §7.8 item 9).
#include <gtest/gtest.h>

#include "lwp_calls_util.h"

namespace lwpd::test {
namespace {

using namespace lwpcalls;
using netbsd::LWP_SUSPENDED;
using netbsd::NB_NSIG;
using netbsd::NB_SI_LWP;
using netbsd::NB_SIGCONT;
using netbsd::NB_SIGKILL;
using netbsd::NB_SIGSTOP;
using netbsd::NB_SIGUSR1;
using netbsd::NB_SIGUSR2;

// ---- _lwp_suspend / _lwp_continue ------------------------------------------------------------

// Suspending an LWP that spins in user code stops it: it makes no progress
// while suspended and resumes after _lwp_continue.
TEST(LwpSuspend, SuspendStopsLwpSpinningInUserCode) {
  Spinner s;
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { Spin(x, s); }, 0, &t), Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, 0));
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = t}), Errno::kOk);
    // Suspended by the time the call returns.
    U_EXPECT_EQ(u, Info(u, t)->stat, LwpStat::kSuspended);
    U_EXPECT_EQ(u, PInfo(u)->nrlwps, 1);
    U_CHECK_INVARIANTS(u);
    const uint64_t c1 = s.count.load();
    TimedPark(u, 50ms);
    U_EXPECT_EQ(u, s.count.load(), c1);
    U_EXPECT_EQ(u, Info(u, t)->stat, LwpStat::kSuspended);
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = t}), Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, c1));
    s.stop = true;
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  Finish(k, tp);
}

// [quirk] NetBSD's suspender sleeps before it looks, so suspending an already
// suspended LWP blocks until an unrelated broadcast. The emulator returns 0
// at once (sys_lwp.cc sys_lwp_suspend: "if (t->stat == kSuspended) return").
TEST(LwpSuspend, SuspendingSuspendedLwpReturnsZero) {
  std::atomic<bool> ran{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U&) { ran = true; }, LWP_SUSPENDED, &t), Errno::kOk);
    U_EXPECT(u, AwaitStat(u, t, LwpStat::kSuspended));
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = t}), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = t}), Errno::kOk);
    U_EXPECT(u, !ran.load());
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = t}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT(u, ran.load());
  });
  Finish(k, tp);
}

// A parked LWP is kicked out of its park (which returns 0, a spurious wakeup)
// and suspends on its way back to user mode.
TEST(LwpSuspend, ParkedLwpWakesSpuriouslyAndSuspends) {
  std::atomic<bool> continued{false};
  std::atomic<int> err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  err = static_cast<int>(x.park(kLongPark));
                  U_EXPECT(x, continued.load());  // no user code ran while suspended
                }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, t));
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = t}), Errno::kOk);
    U_EXPECT_EQ(u, Info(u, t)->stat, LwpStat::kSuspended);
    U_CHECK_INVARIANTS(u);
    continued = true;
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = t}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, err.load(), 0);
  });
  Finish(k, tp);
}

TEST(LwpSuspend, SelfSuspendAsOnlyRunnableLwpIsEdeadlk) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = u.lid()}), Errno::kEDEADLK);
    // Still the only runnable LWP when the other one is suspended.
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, LWP_SUSPENDED, &t), Errno::kOk);
    U_EXPECT(u, AwaitStat(u, t, LwpStat::kSuspended));
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = u.lid()}), Errno::kEDEADLK);
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = t}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  Finish(k, tp);
}

// [quirk] Self-suspend with another runnable LWP: NetBSD sleeps in the
// suspend wait loop until continued (and a later broadcast). The emulator
// simplifies this to "block until continued" (allowed by §3.5).
TEST(LwpSuspend, SelfSuspendBlocksUntilContinued) {
  std::atomic<bool> continued{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t m = u.lid();
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&, m](U& x) {
                  U_EXPECT(x, AwaitLwp(x, m, [](const LwpInfo& i) {
                    return i.stat == LwpStat::kSleep && i.wchan == "lwpsusp";
                  }));
                  continued = true;
                  U_EXPECT_EQ(x, x.err(LwpContinueArgs{.target = m}), Errno::kOk);
                }, 0, &c),
                Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = m}), Errno::kOk);
    U_EXPECT(u, continued.load());
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpContinue, ContinueOfNonSuspendedLwpIsZeroAndHarmless) {
  Spinner s;
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = u.lid()}), Errno::kOk);
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { Spin(x, s); }, 0, &t), Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, 0));
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = t}), Errno::kOk);
    const uint64_t c = s.count.load();
    U_EXPECT(u, AwaitProgress(u, s, c));
    s.stop = true;
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpSuspend, UnknownZombieOrForeignLidIsEsrch) {
  std::atomic<bool> other_go{false};
  Kernel k(test_config());
  auto other = TestProc::start(k, [&](U& u) {
    U_EXPECT(u, PollUntil(u, [&] { return other_go.load(); }, 30s));
  });
  auto tp = TestProc::start(k, [&](U& u) {
    for (lwpid_t bad : {kBogusLid, lwpid_t{0}, other->pid()}) {
      U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = bad}), Errno::kESRCH);
      U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = bad}), Errno::kESRCH);
    }
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &z), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = z}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = z}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.wait(z), Errno::kOk);
    other_go = true;
  });
  Finish(k, tp);
  Finish(k, other);
}

// Signals posted to a suspended LWP are held until it is continued.
TEST(LwpSuspend, SignalToSuspendedLwpIsDeliveredAfterContinue) {
  Spinner s;
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { Spin(x, s); }, 0, &t), Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, 0));
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = t}), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = t, .signo = NB_SIGUSR1}), Errno::kOk);
    U_EXPECT(u, u.proc().signals(t).empty());
    U_EXPECT_EQ(u, Info(u, t)->stat, LwpStat::kSuspended);
    const uint64_t c = s.count.load();
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = t}), Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, c));
    auto sigs = u.proc().signals(t);
    U_EXPECT_EQ(u, static_cast<int>(sigs.size()), 1);
    if (!sigs.empty()) U_EXPECT_EQ(u, sigs[0].signo, NB_SIGUSR1);
    s.stop = true;
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  Finish(k, tp);
}

// ---- _lwp_kill ----------------------------------------------------------------------------

TEST(LwpSec78, Item09_KillNsigIsEinvalAndZombieIsEsrch) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = u.lid(), .signo = NB_NSIG}), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = u.lid(), .signo = -1}), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = u.lid(), .signo = 1000}), Errno::kEINVAL);
    // The signal number is checked before the target is looked up.
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = kBogusLid, .signo = NB_NSIG}), Errno::kEINVAL);
    U_EXPECT(u, u.proc().signals(u.lid()).empty());
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &z), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = z, .signo = 0}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = z, .signo = NB_SIGUSR1}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.wait(z), Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpKill, SignalZeroTestsExistence) {
  std::atomic<bool> go{false};
  std::atomic<bool> other_go{false};
  Kernel k(test_config());
  auto other = TestProc::start(k, [&](U& u) {
    U_EXPECT(u, PollUntil(u, [&] { return other_go.load(); }, 30s));
  });
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = u.lid(), .signo = 0}), Errno::kOk);
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &c), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = c, .signo = 0}), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = kBogusLid, .signo = 0}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = 0, .signo = 0}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = other->pid(), .signo = 0}), Errno::kESRCH);
    // Signal 0 delivers nothing (and does not disturb the parked LWP).
    U_EXPECT(u, u.proc().signals(c).empty());
    U_EXPECT(u, u.proc().signals(u.lid()).empty());
    U_EXPECT(u, AwaitParked(u, c));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = c, .signo = 0}), Errno::kOk);
    U_EXPECT_EQ(u, Info(u, c)->wchan, std::string("parked"));
    Release(u, go, c);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    other_go = true;
  });
  Finish(k, tp);
  Finish(k, other);
}

// A directed signal reaches its target LWP (si_code SI_LWP, sender's pid and
// uid, target LID) and interrupts its park; no other LWP sees it.
TEST(LwpKill, DirectedSignalReachesTargetAndInterruptsPark) {
  std::atomic<int> err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(
      k,
      [&](U& u) {
        lwpid_t t = 0;
        U_EXPECT_EQ(u, u.create([&](U& x) { err = static_cast<int>(x.park(kLongPark)); }, 0, &t),
                    Errno::kOk);
        U_EXPECT(u, AwaitParked(u, t));
        U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = t, .signo = NB_SIGUSR1}), Errno::kOk);
        U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
        U_EXPECT_EQ(u, err.load(), static_cast<int>(Errno::kEINTR));
        auto sigs = u.proc().signals(t);
        U_EXPECT_EQ(u, static_cast<int>(sigs.size()), 1);
        if (!sigs.empty()) {
          U_EXPECT_EQ(u, sigs[0].signo, NB_SIGUSR1);
          U_EXPECT_EQ(u, sigs[0].code, NB_SI_LWP);
          U_EXPECT_EQ(u, sigs[0].pid, u.proc().pid());
          U_EXPECT_EQ(u, static_cast<int64_t>(sigs[0].uid), int64_t{1000});
          U_EXPECT_EQ(u, sigs[0].lid, t);
        }
        U_EXPECT(u, u.proc().signals(u.lid()).empty());
      },
      /*uid*/ 1000);
  Finish(k, tp);
}

TEST(LwpKill, DirectedSignalReachesSpinningLwp) {
  Spinner s;
  std::atomic<bool> got{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  U_EXPECT(x, x.spin_until([&] { return !x.proc().signals(x.lid()).empty(); },
                                           kSpinLimit));
                  got = true;
                }, 0, &t),
                Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = t, .signo = NB_SIGUSR2}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT(u, got.load());
    auto sigs = u.proc().signals(t);
    U_EXPECT(u, !sigs.empty() && sigs[0].signo == NB_SIGUSR2 && sigs[0].code == NB_SI_LWP);
    U_EXPECT(u, u.proc().signals(u.lid()).empty());
  });
  Finish(k, tp);
}

// raise(3) is _lwp_kill(_lwp_self(), sig): delivered before the call returns.
TEST(LwpKill, RaiseIsDeliveredBeforeReturn) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = u.lid(), .signo = NB_SIGUSR1}), Errno::kOk);
    auto sigs = u.proc().signals(u.lid());
    U_EXPECT_EQ(u, static_cast<int>(sigs.size()), 1);
    if (!sigs.empty()) {
      U_EXPECT_EQ(u, sigs[0].signo, NB_SIGUSR1);
      U_EXPECT_EQ(u, sigs[0].code, NB_SI_LWP);
      U_EXPECT_EQ(u, sigs[0].lid, u.lid());
    }
  });
  Finish(k, tp);
}

// A signal the target blocks (its mask from the ucontext) does not interrupt
// its park.
TEST(LwpKill, BlockedSignalDoesNotInterruptPark) {
  std::atomic<int> err{-1};
  std::atomic<bool> unparked{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    LwpCreateArgs a;
    a.uc_flags |= netbsd::UC_SIGMASK;
    a.sigmask = netbsd::sigmask_of(NB_SIGUSR1);
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  err = static_cast<int>(x.park(kLongPark));
                  U_EXPECT(x, unparked.load());
                }, 0, &t, a),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, t));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = t, .signo = NB_SIGUSR1}), Errno::kOk);
    auto i = Info(u, t);
    U_EXPECT(u, i && i->stat == LwpStat::kSleep && i->wchan == "parked");
    unparked = true;
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, err.load(), 0);
  });
  Finish(k, tp);
}

// SIGKILL is process-wide even when directed: the whole process dies, the
// sender's call never returns, and wait() sees "killed by SIGKILL".
TEST(LwpKill, SigkillKillsTheWholeProcess) {
  Spinner s;
  std::atomic<bool> go{false};
  std::atomic<bool> returned{false};
  std::atomic<bool> parker_returned{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0, p = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  x.park();
                  parker_returned = true;
                }, 0, &p),
                Errno::kOk);
    // A suspended LWP dies too (it is made runnable to exit).
    lwpid_t q = 0;
    U_EXPECT_EQ(u, u.create([&](U&) { parker_returned = true; }, LWP_SUSPENDED, &q), Errno::kOk);
    U_EXPECT_EQ(u, u.create([&](U& x) { Spin(x, s); }, 0, &t), Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, 0));
    U_EXPECT(u, AwaitParked(u, p));
    U_EXPECT(u, AwaitStat(u, q, LwpStat::kSuspended));
    u.sys(LwpKillArgs{.target = t, .signo = NB_SIGKILL});
    returned = true;
  });
  Finish(k, tp, ExitStatus{.signaled = true, .code = NB_SIGKILL});
  EXPECT_FALSE(returned.load());
  EXPECT_FALSE(parker_returned.load());
}

// SIGSTOP is process-wide: every LWP stops, including the sender (whose call
// returns only after the process is continued). SIGCONT resumes it.
TEST(LwpKill, SigstopStopsProcessAndSigcontResumesIt) {
  Spinner s;
  std::atomic<bool> kill_returned{false};
  std::atomic<lwpid_t> target{0};
  std::atomic<lwpid_t> suspended{0};
  std::atomic<bool> suspended_ran{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0, q = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { Spin(x, s); }, 0, &t), Errno::kOk);
    target = t;
    // A suspended LWP does not hold up the stop, and stays suspended after it.
    U_EXPECT_EQ(u, u.create([&](U&) { suspended_ran = true; }, LWP_SUSPENDED, &q), Errno::kOk);
    U_EXPECT(u, AwaitStat(u, q, LwpStat::kSuspended));
    suspended = q;
    U_EXPECT(u, AwaitProgress(u, s, 0));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = t, .signo = NB_SIGSTOP}), Errno::kOk);
    kill_returned = true;
    const uint64_t c = s.count.load();
    U_EXPECT(u, AwaitProgress(u, s, c));  // the target runs again
    U_EXPECT_EQ(u, Info(u, q)->stat, LwpStat::kSuspended);
    U_EXPECT(u, !suspended_ran.load());
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = q}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(q), Errno::kOk);
    U_EXPECT(u, suspended_ran.load());
    s.stop = true;
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) { return pi.stat == ProcStat::kStop; }))
      << Dump(k, tp->pid());
  auto pi = k.snapshot_proc(tp->pid());
  ASSERT_TRUE(pi.has_value());
  EXPECT_EQ(pi->nrlwps, 0);
  for (const auto& l : pi->lwps) {
    EXPECT_EQ(l.stat, l.lid == suspended.load() ? LwpStat::kSuspended : LwpStat::kStop)
        << "lid " << l.lid;
    EXPECT_TRUE(l.in_kernel) << "lid " << l.lid;
  }
  EXPECT_FALSE(kill_returned.load());
  const uint64_t c1 = s.count.load();
  EXPECT_EQ(k.check_invariants(), "");
  EXPECT_EQ(s.count.load(), c1);
  EXPECT_EQ(k.snapshot_proc(tp->pid())->stat, ProcStat::kStop);
  ASSERT_TRUE(k.proc_signal(tp->ref(), NB_SIGCONT).ok());
  Finish(k, tp);
  EXPECT_TRUE(kill_returned.load());
}

// A directed SIGCONT to a running process is simply delivered to its target.
TEST(LwpKill, SigcontToRunningProcessIsDeliveredAsSignal) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = u.lid(), .signo = NB_SIGCONT}), Errno::kOk);
    auto sigs = u.proc().signals(u.lid());
    U_EXPECT(u, !sigs.empty() && sigs[0].signo == NB_SIGCONT && sigs[0].code == NB_SI_LWP);
    U_EXPECT_EQ(u, PInfo(u)->stat, ProcStat::kActive);
  });
  Finish(k, tp);
}

}  // namespace
}  // namespace lwpd::test
