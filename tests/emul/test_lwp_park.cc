// Conformance tests: ___lwp_park60, _lwp_unpark, _lwp_unpark_all, _lwp_wakeup
// (semantics §3.6, §3.11–3.13, §7.8 items 5–8).
#include <gtest/gtest.h>

#include <array>

#include "lwp_calls_util.h"

namespace lwpd::test {
namespace {

using namespace lwpcalls;
using Clock = std::chrono::steady_clock;
using netbsd::NB_CLOCK_MONOTONIC;
using netbsd::NB_CLOCK_REALTIME;
using netbsd::NB_TIMER_ABSTIME;

int64_t ts_ns(const Timespec& t) { return t.tv_sec * 1000000000 + t.tv_nsec; }

// Now on the emulated CLOCK_MONOTONIC (the host's steady clock) plus `d`.
Timespec mono_in(std::chrono::nanoseconds d) {
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   (Clock::now() + d).time_since_epoch())
                   .count();
  return Timespec{ns / 1000000000, ns % 1000000000};
}

// ---- §7.8 item 5: the unpark token --------------------------------------------------------

// An unpark that arrives before the park makes that park return EALREADY once;
// the next park really blocks: it returns 0 only after another unpark.
TEST(LwpSec78, Item05_UnparkBeforeParkIsOneEalreadyThenParkBlocks) {
  std::atomic<bool> go{false};
  std::atomic<bool> second_unpark_sent{false};
  std::atomic<int> phase{0};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  U_EXPECT(x, x.spin_until([&] { return go.load(); }, kSpinLimit));
                  U_EXPECT_EQ(x, x.park(), Errno::kEALREADY);
                  phase = 1;
                  U_EXPECT_EQ(x, x.park(kLongPark), Errno::kOk);
                  U_EXPECT(x, second_unpark_sent.load());
                }, 0, &t),
                Errno::kOk);
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);  // t is running: leaves the token
    go = true;
    U_EXPECT(u, u.spin_until([&] { return phase.load() == 1; }, kSpinLimit));
    U_EXPECT(u, AwaitParked(u, t));  // the second park sleeps
    U_CHECK_INVARIANTS(u);
    second_unpark_sent = true;
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  Finish(k, tp);
}

TEST(LwpSec78, Item05_TwoUnparksBeforeParkStillOneEalready) {
  std::atomic<bool> go{false};
  std::atomic<bool> last_unpark_sent{false};
  std::atomic<int> phase{0};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  U_EXPECT(x, x.spin_until([&] { return go.load(); }, kSpinLimit));
                  U_EXPECT_EQ(x, x.park(), Errno::kEALREADY);
                  phase = 1;
                  U_EXPECT_EQ(x, x.park(kLongPark), Errno::kOk);
                  U_EXPECT(x, last_unpark_sent.load());
                }, 0, &t),
                Errno::kOk);
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    go = true;
    U_EXPECT(u, u.spin_until([&] { return phase.load() == 1; }, kSpinLimit));
    U_EXPECT(u, AwaitParked(u, t));
    last_unpark_sent = true;
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  Finish(k, tp);
}

// ---- §7.8 item 6: _lwp_unpark_all -----------------------------------------------------------

TEST(LwpSec78, Item06_UnparkAllNullTargetsReturnsUnparkMax) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    for (uint64_t n : {uint64_t{5}, uint64_t{0}, uint64_t{5000}}) {
      SysReturn r = u.sys(LwpUnparkAllArgs{.targets_null = true, .ntargets = n});
      U_EXPECT_EQ(u, r.error, Errno::kOk);
      U_EXPECT_EQ(u, r.retval, int64_t{1024});
    }
    // No token was left behind by those calls.
    TimedPark(u, 20ms);
  });
  Finish(k, tp);
}

TEST(LwpSec78, Item06_UnparkAllBadCountIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t self = u.lid();
    U_EXPECT_EQ(u, u.err(LwpUnparkAllArgs{.ntargets = 0, .targets = {self}}), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.err(LwpUnparkAllArgs{.ntargets = 1025,
                                          .targets = std::vector<lwpid_t>(1025, self)}),
                Errno::kEINVAL);
    // Neither call unparked anything.
    TimedPark(u, 20ms);
    // 1024 is the maximum and accepted; 1024 unparks of one LWP are one token.
    U_EXPECT_EQ(u, u.err(LwpUnparkAllArgs{.ntargets = 1024,
                                          .targets = std::vector<lwpid_t>(1024, self)}),
                Errno::kOk);
    U_EXPECT_EQ(u, u.park(), Errno::kEALREADY);
    TimedPark(u, 20ms);
  });
  Finish(k, tp);
}

// A list with one bad LID: ESRCH, but every other target is still unparked.
TEST(LwpSec78, Item06_UnparkAllWithOneBadLidIsEsrchButOthersAreUnparked) {
  std::array<std::atomic<int>, 2> err{};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    std::array<lwpid_t, 2> t{};
    for (int i = 0; i < 2; i++) {
      err[i] = -1;
      U_EXPECT_EQ(u, u.create([&, i](U& x) { err[i] = static_cast<int>(x.park(kLongPark)); },
                              0, &t[i]),
                  Errno::kOk);
    }
    U_EXPECT(u, AwaitParked(u, t[0]));
    U_EXPECT(u, AwaitParked(u, t[1]));
    U_EXPECT_EQ(u, u.err(LwpUnparkAllArgs{.ntargets = 3, .targets = {t[0], kBogusLid, t[1]}}),
                Errno::kESRCH);
    U_EXPECT_EQ(u, u.wait(t[0]), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t[1]), Errno::kOk);
    U_EXPECT_EQ(u, err[0].load(), 0);
    U_EXPECT_EQ(u, err[1].load(), 0);
  });
  Finish(k, tp);
}

// A running target of _lwp_unpark_all gets the token, like _lwp_unpark.
TEST(LwpUnpark, UnparkAllLeavesTokenForRunningTargets) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpUnparkAllArgs{.ntargets = 1, .targets = {u.lid()}}), Errno::kOk);
    U_EXPECT_EQ(u, u.park(), Errno::kEALREADY);
  });
  Finish(k, tp);
}

// ---- _lwp_unpark ---------------------------------------------------------------------------

TEST(LwpUnpark, UnknownZombieOrForeignLidIsEsrch) {
  std::atomic<bool> other_go{false};
  Kernel k(test_config());
  auto other = TestProc::start(k, [&](U& u) {
    U_EXPECT(u, PollUntil(u, [&] { return other_go.load(); }, 30s));
  });
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.unpark(kBogusLid), Errno::kESRCH);
    U_EXPECT_EQ(u, u.unpark(0), Errno::kESRCH);
    U_EXPECT_EQ(u, u.unpark(other->pid()), Errno::kESRCH);
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &z), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, u.unpark(z), Errno::kESRCH);
    U_EXPECT_EQ(u, u.wait(z), Errno::kOk);
    other_go = true;
  });
  Finish(k, tp);
  Finish(k, other);
}

TEST(LwpUnpark, UnparkSelfLeavesToken) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.unpark(u.lid()), Errno::kOk);
    U_EXPECT_EQ(u, u.park(), Errno::kEALREADY);
    TimedPark(u, 20ms);  // consumed
  });
  Finish(k, tp);
}

TEST(LwpUnpark, UnparkWakesParkedLwpWithZero) {
  std::atomic<bool> sent{false};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  U_EXPECT_EQ(x, x.park(), Errno::kOk);
                  U_EXPECT(x, sent.load());
                }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, t));
    sent = true;
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
  });
  Finish(k, tp);
}

// ---- ___lwp_park60 -------------------------------------------------------------------------

TEST(LwpSec78, Item08_ParkNsecOutOfRangeIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.park(Timespec{0, 1000000000}), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.park(Timespec{1, 1000000000}), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.park(Timespec{0, -1}), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.park(Timespec{0, 1000000000}, NB_TIMER_ABSTIME), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.park(Timespec{0, 1000000000}, 0, 0, NB_CLOCK_REALTIME), Errno::kEINVAL);
  });
  Finish(k, tp);
}

TEST(LwpSec78, Item08_ParkAbsoluteTimeInThePastIsEtimedout) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    SysReturn r;
    U_EXPECT_EQ(u, u.park(Timespec{0, 1}, NB_TIMER_ABSTIME, 0, NB_CLOCK_MONOTONIC, &r),
                Errno::kETIMEDOUT);
    U_EXPECT(u, !r.ts.has_value());  // *ts is not written with TIMER_ABSTIME
    U_EXPECT_EQ(u, u.park(Timespec{1, 0}, NB_TIMER_ABSTIME, 0, NB_CLOCK_REALTIME, &r),
                Errno::kETIMEDOUT);
    U_EXPECT(u, !r.ts.has_value());
    // "Now" has passed by the time the kernel looks at it.
    U_EXPECT_EQ(u, u.park(mono_in(0ns), NB_TIMER_ABSTIME), Errno::kETIMEDOUT);
    U_EXPECT_EQ(u, u.park(mono_in(-1s), NB_TIMER_ABSTIME), Errno::kETIMEDOUT);
  });
  Finish(k, tp);
}

TEST(LwpSec78, Item08_ParkRelative100msTimesOutAndZeroesTs) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    for (int clock : {NB_CLOCK_MONOTONIC, NB_CLOCK_REALTIME}) {
      SysReturn r;
      auto t0 = Clock::now();
      U_EXPECT_EQ(u, u.park(Timespec{0, 100000000}, 0, 0, clock, &r), Errno::kETIMEDOUT);
      U_EXPECT(u, Clock::now() - t0 >= 100ms);
      U_EXPECT(u, r.ts.has_value());
      if (r.ts) U_EXPECT(u, *r.ts == (Timespec{0, 0}));
    }
  });
  Finish(k, tp);
}

TEST(LwpPark, ZeroOrNegativeRelativeTimeoutIsEtimedout) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    for (Timespec ts : {Timespec{0, 0}, Timespec{-1, 0}, Timespec{-5, 999999999}}) {
      SysReturn r;
      U_EXPECT_EQ(u, u.park(ts, 0, 0, NB_CLOCK_MONOTONIC, &r), Errno::kETIMEDOUT);
      if (r.ts) U_EXPECT(u, *r.ts == (Timespec{0, 0}));
    }
  });
  Finish(k, tp);
}

TEST(LwpPark, AbsoluteFutureDeadlineTimesOutNotBeforeIt) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    Timespec deadline = mono_in(50ms);
    SysReturn r;
    U_EXPECT_EQ(u, u.park(deadline, NB_TIMER_ABSTIME, 0, NB_CLOCK_MONOTONIC, &r),
                Errno::kETIMEDOUT);
    U_EXPECT(u, ts_ns(mono_in(0ns)) >= ts_ns(deadline));
    U_EXPECT(u, !r.ts.has_value());
  });
  Finish(k, tp);
}

TEST(LwpPark, UnsupportedClockIsEinval) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    // CLOCK_VIRTUAL (1), CLOCK_PROF (2) and nonsense ids.
    for (int clock : {1, 2, 99, -1}) {
      U_EXPECT_EQ(u, u.park(Timespec{1, 0}, 0, 0, clock), Errno::kEINVAL);
      U_EXPECT_EQ(u, u.park(Timespec{1, 0}, NB_TIMER_ABSTIME, 0, clock), Errno::kEINVAL);
    }
  });
  Finish(k, tp);
}

// Without a timeout the clock id is not looked at.
TEST(LwpPark, ClockIsNotCheckedWithoutTimeout) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.unpark(u.lid()), Errno::kOk);
    U_EXPECT_EQ(u, u.park(std::nullopt, 0, 0, 99), Errno::kEALREADY);
  });
  Finish(k, tp);
}

// The timeout checks come before the token check and leave the token alone.
TEST(LwpPark, EarlyErrorsDoNotConsumeTheToken) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.unpark(u.lid()), Errno::kOk);
    U_EXPECT_EQ(u, u.park(Timespec{0, 1000000000}), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.park(Timespec{1, 0}, 0, 0, 99), Errno::kEINVAL);
    U_EXPECT_EQ(u, u.park(Timespec{0, 1}, NB_TIMER_ABSTIME), Errno::kETIMEDOUT);
    U_EXPECT_EQ(u, u.park(Timespec{0, 0}), Errno::kETIMEDOUT);
    U_EXPECT_EQ(u, u.park(), Errno::kEALREADY);
    TimedPark(u, 20ms);
  });
  Finish(k, tp);
}

// An unparked relative park returns 0 and writes back the time that was left.
TEST(LwpPark, RelativeParkEndedByUnparkWritesBackRemainingTime) {
  std::atomic<int> err{-1};
  std::atomic<int64_t> left{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  SysReturn r;
                  err = static_cast<int>(x.park(kLongPark, 0, 0, NB_CLOCK_MONOTONIC, &r));
                  U_EXPECT(x, r.ts.has_value());
                  if (r.ts) left = ts_ns(*r.ts);
                }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, t));
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, err.load(), 0);
    U_EXPECT(u, left.load() > 0 && left.load() <= ts_ns(kLongPark));
  });
  Finish(k, tp);
}

// park(unpark = other): the other LWP is woken first, then the caller parks.
TEST(LwpPark, ParkWithUnparkHandsOff) {
  std::atomic<bool> a_woke{false};
  std::atomic<int> b_err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t a = u.lid();
    lwpid_t b = 0;
    U_EXPECT_EQ(u, u.create([&, a](U& x) {
                  U_EXPECT(x, AwaitParked(x, a));
                  b_err = static_cast<int>(x.park(kLongPark, 0, a));
                  U_EXPECT(x, a_woke.load());
                }, 0, &b),
                Errno::kOk);
    U_EXPECT_EQ(u, u.park(kLongPark), Errno::kOk);
    a_woke = true;
    // B parked in the same call that woke A.
    U_EXPECT(u, AwaitParked(u, b));
    U_EXPECT_EQ(u, u.unpark(b), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(b), Errno::kOk);
    U_EXPECT_EQ(u, b_err.load(), 0);
  });
  Finish(k, tp);
}

// park(unpark = bad LID) fails with ESRCH before parking: a token the caller
// holds is still there afterwards.
TEST(LwpPark, ParkWithBadUnparkLidIsEsrchWithoutParking) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.unpark(u.lid()), Errno::kOk);
    U_EXPECT_EQ(u, u.park(std::nullopt, 0, kBogusLid), Errno::kESRCH);
    U_EXPECT_EQ(u, u.park(kLongPark, 0, kBogusLid), Errno::kESRCH);
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &z), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, u.park(std::nullopt, 0, z), Errno::kESRCH);
    U_EXPECT_EQ(u, u.park(), Errno::kEALREADY);
    U_EXPECT_EQ(u, u.wait(z), Errno::kOk);
  });
  Finish(k, tp);
}

// park(unpark = self) leaves the token on the caller and returns EALREADY.
TEST(LwpPark, ParkWithUnparkSelfIsEalready) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.park(std::nullopt, 0, u.lid()), Errno::kEALREADY);
    TimedPark(u, 20ms);
  });
  Finish(k, tp);
}

// The hint arguments are ignored.
TEST(LwpPark, HintsAreIgnored) {
  std::atomic<int> err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  err = static_cast<int>(
                      x.err(LwpParkArgs{.ts = kLongPark, .hint = 0x1000, .unparkhint = 0x2000}));
                }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, t));
    U_EXPECT_EQ(u, u.err(LwpUnparkArgs{.target = t, .hint = 0x9999}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, err.load(), 0);
  });
  Finish(k, tp);
}

// A signal ends a park with EINTR, even with SA_RESTART: park is never restarted.
TEST(LwpPark, SignalEndsParkWithEintrEvenWithSaRestart) {
  std::atomic<int> err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    u.proc().kernel().proc_set_sigrestart(u.proc().ref(), netbsd::sigmask_of(netbsd::NB_SIGUSR2));
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { err = static_cast<int>(x.park(kLongPark)); }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, t));
    U_EXPECT_EQ(u, u.err(LwpKillArgs{.target = t, .signo = netbsd::NB_SIGUSR2}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, err.load(), static_cast<int>(Errno::kEINTR));
  });
  Finish(k, tp);
}

// ---- _lwp_wakeup ----------------------------------------------------------------------------

TEST(LwpSec78, Item07_WakeupRunningLwpIsEnodevThenItsParkIsEalready) {
  Spinner s;
  std::atomic<int> park1{-1}, park2{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  Spin(x, s);
                  park1 = static_cast<int>(x.park());
                  SysReturn r;
                  park2 = static_cast<int>(x.park(Timespec{0, 20000000}, 0, 0,
                                                  NB_CLOCK_MONOTONIC, &r));
                }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, 0));
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = t}), Errno::kENODEV);
    s.stop = true;
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, park1.load(), static_cast<int>(Errno::kEALREADY));
    // EALREADY consumed both flags: the next park sleeps until its timeout.
    U_EXPECT_EQ(u, park2.load(), static_cast<int>(Errno::kETIMEDOUT));
  });
  Finish(k, tp);
}

TEST(LwpWakeup, SelfIsEnodevAndArmsNextPark) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = u.lid()}), Errno::kENODEV);
    U_EXPECT_EQ(u, u.park(), Errno::kEALREADY);
    TimedPark(u, 20ms);
  });
  Finish(k, tp);
}

// LW_CANCELLED from a wakeup that found the LWP running makes its next
// interruptible sleep (here _lwp_wait) return EINTR at once; LW_UNPARKED is
// still set afterwards, so the next park returns EALREADY.
TEST(LwpWakeup, StickyCancelInterruptsNextSleepThenParkIsEalready) {
  Spinner s;
  std::atomic<bool> go{false};
  std::atomic<int> wait_err{-1}, park_err{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t p = 0, t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) { ParkUntil(x, go); }, 0, &p), Errno::kOk);
    U_EXPECT_EQ(u, u.create([&, p](U& x) {
                  Spin(x, s);
                  wait_err = static_cast<int>(x.wait(p));  // p is alive: would sleep
                  park_err = static_cast<int>(x.park());
                }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitProgress(u, s, 0));
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = t}), Errno::kENODEV);
    s.stop = true;
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, wait_err.load(), static_cast<int>(Errno::kEINTR));
    U_EXPECT_EQ(u, park_err.load(), static_cast<int>(Errno::kEALREADY));
    Release(u, go, p);
    U_EXPECT_EQ(u, u.wait(p), Errno::kOk);
  });
  Finish(k, tp);
}

// A parked LWP: _lwp_wakeup returns 0 and the park returns EINTR. The
// emulator lets the interrupted park consume the wakeup's flags (kern_lwp.cc
// lwp_wake, kPark/kCancel), so the LWP's next park blocks normally.
TEST(LwpWakeup, ParkedLwpParkReturnsEintr) {
  std::atomic<int> phase{0};
  std::atomic<int> err1{-1}, err2{-1};
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t t = 0;
    U_EXPECT_EQ(u, u.create([&](U& x) {
                  err1 = static_cast<int>(x.park(kLongPark));
                  phase = 1;
                  err2 = static_cast<int>(x.park(kLongPark));
                }, 0, &t),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, t));
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = t}), Errno::kOk);
    U_EXPECT(u, u.spin_until([&] { return phase.load() == 1; }, kSpinLimit));
    U_EXPECT_EQ(u, err1.load(), static_cast<int>(Errno::kEINTR));
    U_EXPECT(u, AwaitParked(u, t));
    U_EXPECT_EQ(u, u.unpark(t), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    U_EXPECT_EQ(u, err2.load(), 0);
  });
  Finish(k, tp);
}

TEST(LwpWakeup, UnknownZombieOrForeignLidIsEsrch) {
  std::atomic<bool> other_go{false};
  Kernel k(test_config());
  auto other = TestProc::start(k, [&](U& u) {
    U_EXPECT(u, PollUntil(u, [&] { return other_go.load(); }, 30s));
  });
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = kBogusLid}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = 0}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = other->pid()}), Errno::kESRCH);
    lwpid_t z = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, 0, &z), Errno::kOk);
    U_EXPECT(u, AwaitZombie(u, z));
    U_EXPECT_EQ(u, u.err(LwpWakeupArgs{.target = z}), Errno::kESRCH);
    U_EXPECT_EQ(u, u.wait(z), Errno::kOk);
    other_go = true;
  });
  Finish(k, tp);
  Finish(k, other);
}

}  // namespace
}  // namespace lwpd::test
