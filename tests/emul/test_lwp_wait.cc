// Conformance tests: _lwp_wait and _lwp_detach (semantics §3.4, §3.7, §7.6,
// §7.8 items 1–4).
#include <gtest/gtest.h>

#include <array>
#include <set>

#include "lwp_calls_util.h"

namespace lwpd::test {
namespace {

using namespace lwpcalls;
using netbsd::LWP_DETACHED;

// ---- _lwp_wait ---------------------------------------------------------------------------

TEST(LwpSec78, Item01_WaitSelfIsEdeadlkAndWaitAnyAloneIsEsrch) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.wait(u.lid()), Errno::kEDEADLK);
    U_EXPECT_EQ(u, u.wait(0), Errno::kESRCH);
    U_EXPECT_EQ(u, PInfo(u)->nlwpwait, 0);
    U_CHECK_INVARIANTS(u);
    // Self-wait stays EDEADLK when there are other LWPs.
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &c), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(u.lid()), Errno::kEDEADLK);
    U_EXPECT_EQ(u, PInfo(u)->nlwpwait, 0);
    Release(u, go, c);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpWait, WaitAnyCollectsAnExitedLwp) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &c), Errno::kOk);
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(0, &departed), Errno::kOk);
    U_EXPECT_EQ(u, departed, c);
    U_EXPECT_EQ(u, u.wait(0), Errno::kESRCH);
  });
  Finish(k, tp);
}

// _lwp_wait(A) sleeps although another LWP (B) is already a zombie, and
// returns A once A exits; B is left for a later wait.
TEST(LwpWait, WaitSpecificIgnoresOtherZombies) {
  std::atomic<bool> go_a{false};
  std::atomic<bool> main_woke{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t m = u.lid();
    lwpid_t a = 0, b = 0, c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  ParkUntil(x, go_a);
                  U_EXPECT(x, !main_woke.load());
                }, 0, &a),
                Errno::kOk);
    U_EXPECT_EQ(u, u.create([&](U&) {}, 0, &b), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, b));
    // C releases A only once main sleeps in _lwp_wait(A) with B a zombie.
    U_EXPECT_EQ(u, u.create([&, m, a](U& x) {
                  U_EXPECT(x, AwaitInWait(x, m));
                  Release(x, go_a, a);
                }, 0, &c),
                Errno::kOk);
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(a, &departed), Errno::kOk);
    main_woke = true;
    U_EXPECT_EQ(u, departed, a);
    std::set<lwpid_t> rest;
    for (int i = 0; i < 2; i++) {
      U_EXPECT_EQ(u, u.wait(0, &departed), Errno::kOk);
      rest.insert(departed);
    }
    U_EXPECT(u, rest == (std::set<lwpid_t>{b, c}));
  });
  Finish(k, tp);
}

// The first-waiter rule: an LWP with a specific waiter is not collected by a
// wait-any waiter, even one that scans first. M waits for any, then W waits
// for T specifically, then T exits: W gets T, M gets W.
TEST(LwpWait, WaitAnyDoesNotCollectLwpThatHasSpecificWaiter) {
  std::atomic<lwpid_t> w_lid{0};
  std::atomic<lwpid_t> w_departed{0};
  std::atomic<int> w_err{-1};
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t m = u.lid();
    lwpid_t t = 0, w = 0;
    U_EXPECT_EQ(u, u.create([&, m](U& x) {
                  ParkUntil(x, go);  // until W exists
                  U_EXPECT(x, AwaitInWait(x, m));
                  U_EXPECT(x, AwaitInWait(x, w_lid.load()));
                  auto pi = PInfo(x);
                  U_EXPECT_EQ(x, pi->nlwpwait, 2);
                  U_CHECK_INVARIANTS(x);
                }, 0, &t),
                Errno::kOk);
    U_EXPECT_EQ(u, u.create([&, m, t](U& x) {
                  U_EXPECT(x, AwaitInWait(x, m));
                  lwpid_t d = 0;
                  w_err = static_cast<int>(x.wait(t, &d));
                  w_departed = d;
                }, 0, &w),
                Errno::kOk);
    w_lid = w;
    Release(u, go, t);
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(0, &departed), Errno::kOk);
    U_EXPECT_EQ(u, departed, w);
    U_EXPECT_EQ(u, w_err.load(), 0);
    U_EXPECT_EQ(u, w_departed.load(), t);
    U_EXPECT_EQ(u, u.wait(0), Errno::kESRCH);
  });
  Finish(k, tp);
}

// Several specific waiters: one collects, the others get ESRCH.
TEST(LwpWait, SecondSpecificWaiterGetsEsrch) {
  std::array<std::atomic<lwpid_t>, 2> w{};
  std::array<std::atomic<int>, 2> err{};
  std::array<std::atomic<lwpid_t>, 2> dep{};
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  ParkUntil(x, go);  // until both waiters exist
                  U_EXPECT(x, AwaitInWait(x, w[0]));
                  U_EXPECT(x, AwaitInWait(x, w[1]));
                }, 0, &t),
                Errno::kOk);
    for (int i = 0; i < 2; i++) {
      lwpid_t lid = 0;
      U_EXPECT_EQ(u, u.create([&, i, t](U& x) {
                    lwpid_t d = 0;
                    err[i] = static_cast<int>(x.wait(t, &d));
                    dep[i] = d;
                  }, 0, &lid),
                  Errno::kOk);
      w[i] = lid;
    }
    Release(u, go, t);
    for (int i = 0; i < 2; i++) U_EXPECT_EQ(u, u.wait(w[i]), Errno::kOk);
    const int ok = (err[0] == 0) + (err[1] == 0);
    const int esrch = (err[0] == static_cast<int>(Errno::kESRCH)) +
                      (err[1] == static_cast<int>(Errno::kESRCH));
    U_EXPECT_EQ(u, ok, 1);
    U_EXPECT_EQ(u, esrch, 1);
    U_EXPECT_EQ(u, err[0] == 0 ? dep[0].load() : dep[1].load(), t);
  });
  Finish(k, tp);
}

TEST(LwpSec78, Item02_MutualWaitIsEdeadlkForSecondCaller) {
  std::atomic<int> b_err{-1};
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t a = u.lid();
    // A third LWP that is not waiting, so that "everyone waits" cannot be
    // what makes B's call fail: only the A <-> B cycle can.
    lwpid_t p = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &p), Errno::kOk);
    lwpid_t b = 0;
    U_EXPECT_EQ(u, u.create([&, a](U& x) {
                  U_EXPECT(x, AwaitInWait(x, a));
                  b_err = static_cast<int>(x.wait(a));
                  U_EXPECT_EQ(x, PInfo(x)->nlwpwait, 1);  // only A still waits
                }, 0, &b),
                Errno::kOk);
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(b, &departed), Errno::kOk);
    U_EXPECT_EQ(u, departed, b);
    U_EXPECT_EQ(u, b_err.load(), static_cast<int>(Errno::kEDEADLK));
    Release(u, go, p);
    U_EXPECT_EQ(u, u.wait(p), Errno::kOk);
  });
  Finish(k, tp);
}

// All LWPs in _lwp_wait: the last to enter gets EDEADLK. The others keep
// waiting and collect each other once main exits.
TEST(LwpSec78, Item03_AllLwpsWaitingIsEdeadlkForTheLast) {
  std::array<std::atomic<int>, 2> err{};
  std::array<std::atomic<lwpid_t>, 2> dep{};
  std::array<std::atomic<lwpid_t>, 2> lid{};
  std::atomic<lwpid_t> main_lid{0};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    main_lid = u.lid();
    for (int i = 0; i < 2; i++) {
      err[i] = -1;
      lwpid_t l = 0;
      U_EXPECT_EQ(u, u.create([&, i](U& x) {
                    if (i == 1) U_EXPECT(x, AwaitInWait(x, lid[0]));
                    lwpid_t d = 0;
                    err[i] = static_cast<int>(x.wait(0, &d));
                    dep[i] = d;
                  }, 0, &l),
                  Errno::kOk);
      lid[i] = l;
    }
    U_EXPECT(u, AwaitInWait(u, lid[0]));
    U_EXPECT(u, AwaitInWait(u, lid[1]));
    U_EXPECT_EQ(u, u.wait(0), Errno::kEDEADLK);
    U_EXPECT_EQ(u, PInfo(u)->nlwpwait, 2);
    U_CHECK_INVARIANTS(u);
    // Main exits; the two waiters are released by that.
  });
  Finish(k, tp);
  EXPECT_EQ(err[0].load(), 0);
  EXPECT_EQ(err[1].load(), 0);
  // One of them collected main, the other collected that one.
  const bool first_got_main = dep[0] == main_lid.load();
  EXPECT_TRUE(first_got_main || dep[1] == main_lid.load());
  if (first_got_main) {
    EXPECT_EQ(dep[1].load(), lid[0].load());
  } else {
    EXPECT_EQ(dep[0].load(), lid[1].load());
  }
}

TEST(LwpWait, UnknownLidIsEsrch) {
  std::shared_ptr<TestProc> other;
  std::atomic<bool> other_go{false};
  Kernel k(test_config());
  other = TestProc::start(k, [&](U& u) {
    U_EXPECT(u, PollUntil(u, [&] { return other_go.load(); }, 30s));
  });
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.wait(kBogusLid), Errno::kESRCH);
    // An LWP of another process is not found either.
    U_EXPECT_EQ(u, u.wait(other->pid()), Errno::kESRCH);
    // Nor one that was already collected.
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &c), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kESRCH);
    U_EXPECT_EQ(u, PInfo(u)->nlwpwait, 0);
    U_CHECK_INVARIANTS(u);
    other_go = true;
  });
  Finish(k, tp);
  Finish(k, other);
}

TEST(LwpSec78, Item04_WaitOnDetachedIsEinval) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t d = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, LWP_DETACHED, &d), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(d), Errno::kEINVAL);
    lwpid_t e = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &e), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = e}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(e), Errno::kEINVAL);
    U_EXPECT_EQ(u, PInfo(u)->nlwpwait, 0);
    Release(u, go, d);
    Release(u, go, e);
  });
  Finish(k, tp);
}

// Detaching an LWP while another LWP sleeps in _lwp_wait for it: the waiter
// wakes with EINVAL.
TEST(LwpSec78, Item04_DetachWhileAnotherLwpWaitsGivesWaiterEinval) {
  std::atomic<bool> go{false};
  std::atomic<int> w_err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0, w = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &t), Errno::kOk);
    U_EXPECT_EQ(u, u.create([&, t](U& x) { w_err = static_cast<int>(x.wait(t)); }, 0, &w),
                Errno::kOk);
    U_EXPECT(u, AwaitInWait(u, w));
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = t}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(w), Errno::kOk);
    U_EXPECT_EQ(u, w_err.load(), static_cast<int>(Errno::kEINVAL));
    U_CHECK_INVARIANTS(u);
    Release(u, go, t);
  });
  Finish(k, tp);
}

// _lwp_wakeup on an LWP sleeping in _lwp_wait: the wait ends with EINTR, and
// the waiter's first-waiter claim on its target is dropped, so a wait-any can
// then collect the target.
TEST(LwpWakeup, LwpInWaitGetsEintrAndDropsItsClaim) {
  std::atomic<bool> go{false};
  std::atomic<int> w_err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0, w = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &t), Errno::kOk);
    U_EXPECT_EQ(u, u.create([&, t](U& x) { w_err = static_cast<int>(x.wait(t)); }, 0, &w),
                Errno::kOk);
    U_EXPECT(u, AwaitInWait(u, w));
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = w}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(w), Errno::kOk);
    U_EXPECT_EQ(u, w_err.load(), static_cast<int>(Errno::kEINTR));
    Release(u, go, t);
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(0, &departed), Errno::kOk);
    U_EXPECT_EQ(u, departed, t);
  });
  Finish(k, tp);
}

// A signal ends _lwp_wait with EINTR when its handler lacks SA_RESTART.
TEST(LwpWait, SignalInterruptsWaitWithEintr) {
  std::atomic<bool> go{false};
  std::atomic<int> w_err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0, w = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &t), Errno::kOk);
    U_EXPECT_EQ(u, u.create([&, t](U& x) { w_err = static_cast<int>(x.wait(t)); }, 0, &w),
                Errno::kOk);
    U_EXPECT(u, AwaitInWait(u, w));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = w, .signo = netbsd::NB_SIGUSR1}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(w), Errno::kOk);
    U_EXPECT_EQ(u, w_err.load(), static_cast<int>(Errno::kEINTR));
    U_EXPECT(u, !u.proc().signals(w).empty());
    Release(u, go, t);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);  // W's claim on T was dropped
  });
  Finish(k, tp);
}

// With an SA_RESTART handler the interrupted _lwp_wait is restarted (ERESTART,
// transparent to the caller) and goes on to collect its target.
TEST(LwpWait, SignalWithSaRestartRestartsWait) {
  std::atomic<bool> go{false};
  std::atomic<int> w_err{-1};
  std::atomic<lwpid_t> w_dep{0};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    u.proc().kernel().proc_set_sigrestart(u.proc().ref(), netbsd::sigmask_of(netbsd::NB_SIGUSR1));
    lwpid_t t = 0, w = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &t), Errno::kOk);
    U_EXPECT_EQ(u, u.create([&, t](U& x) {
                  lwpid_t d = 0;
                  w_err = static_cast<int>(x.wait(t, &d));
                  w_dep = d;
                }, 0, &w),
                Errno::kOk);
    U_EXPECT(u, AwaitInWait(u, w));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = w, .signo = netbsd::NB_SIGUSR1}), Errno::kOk);
    // The handler ran (the signal reached user mode) and W is back in _lwp_wait.
    U_EXPECT(u, u.spin_until([&] { return !u.proc().signals(w).empty(); }, kSpinLimit));
    U_EXPECT(u, AwaitInWait(u, w));
    U_EXPECT_EQ(u, w_err.load(), -1);
    Release(u, go, t);
    U_EXPECT_EQ(u, u.wait(w), Errno::kOk);
    U_EXPECT_EQ(u, w_err.load(), 0);
    U_EXPECT_EQ(u, w_dep.load(), t);
  });
  Finish(k, tp);
}

// ---- _lwp_detach -------------------------------------------------------------------------

TEST(LwpDetach, ZombieIsReapedAtOnce) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &z), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = z}), Errno::kOk);
    // Freed synchronously: gone from the table, LID released.
    U_EXPECT(u, !Info(u, z).has_value());
    auto pi = PInfo(u);
    U_EXPECT_EQ(u, pi->nlwps, 1);
    U_EXPECT_EQ(u, pi->nzlwps, 0);
    U_EXPECT_EQ(u, pi->ndlwps, 0);
    U_CHECK_INVARIANTS(u);
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = z, .signo = 0}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.wait(z), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = z}), Errno::kESRCH);
  });
  Finish(k, tp);
}

TEST(LwpDetach, DoubleDetachIsEinval) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &c), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = c}), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = c}), Errno::kEINVAL);
    U_EXPECT_EQ(u, PInfo(u)->ndlwps, 1);
    // Detaching oneself works the same way.
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = u.lid()}), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = u.lid()}), Errno::kEINVAL);
    U_EXPECT_EQ(u, PInfo(u)->ndlwps, 2);
    U_CHECK_INVARIANTS(u);
    Release(u, go, c);
  });
  Finish(k, tp);
}

TEST(LwpDetach, UnknownLidIsEsrch) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = kBogusLid}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = 0}), Errno::kESRCH);
  });
  Finish(k, tp);
}

// A live LWP that was detached becomes a detached zombie when it exits and is
// not joinable; nothing is left once the process is done.
TEST(LwpDetach, DetachedLiveLwpIsReapedAfterItExits) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &c), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = c}), Errno::kOk);
    Release(u, go, c);
    U_EXPECT(u, AwaitZombie(u, c));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = c, .signo = 0}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = c}), Errno::kEINVAL);  // still detached
    U_EXPECT_EQ(u, u.wait(0), Errno::kESRCH);                            // drains it
    U_EXPECT(u, !Info(u, c).has_value());
  });
  Finish(k, tp);
}

// ---- §7.6 libpthread t_join.c / t_detach.c ----------------------------------------------------

TEST(LwpSec76, JoinSelfIsEdeadlk) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.wait(Self(u)), Errno::kEDEADLK);
  });
  Finish(k, tp);
}

TEST(LwpSec76, Join25LwpsThenRejoinAndDetachAreEsrch) {
  constexpr int kN = 25;
  std::array<std::atomic<lwpid_t>, kN> seen{};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    std::array<lwpid_t, kN> lid{};
    for (int i = 0; i < kN; i++) {
      U_EXPECT_EQ(u, u.create([&, i](U& x) { seen[i] = Self(x); }, 0, &lid[i]), Errno::kOk);
    }
    for (int i = 0; i < kN; i++) {
      lwpid_t departed = 0;
      U_EXPECT_EQ(u, u.wait(lid[i], &departed), Errno::kOk);
      U_EXPECT_EQ(u, departed, lid[i]);
      U_EXPECT_EQ(u, seen[i].load(), lid[i]);
    }
    for (int i = 0; i < kN; i++) {
      U_EXPECT_EQ(u, u.wait(lid[i]), Errno::kESRCH);
      U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = lid[i]}), Errno::kESRCH);
    }
    auto pi = PInfo(u);
    U_EXPECT_EQ(u, pi->nlwps, 1);
    U_CHECK_INVARIANTS(u);
  });
  Finish(k, tp);
}

TEST(LwpSec76, JoinDetachedIsEinvalAndSignalAfterExitIsEsrch) {
  std::atomic<bool> go{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &c), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpDetachArgs{.target = c}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(c), Errno::kEINVAL);
    Release(u, go, c);
    U_EXPECT(u, u.spin_until([&] {
      auto i = Info(u, c);
      return !i || i->stat == LwpStat::kZomb;
    }, kSpinLimit));
    // pthread_cancel after exit: _lwp_kill(lid, 0) fails with ESRCH.
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = c, .signo = 0}), Errno::kESRCH);
  });
  Finish(k, tp);
}

}  // namespace
}  // namespace lwpd::test
