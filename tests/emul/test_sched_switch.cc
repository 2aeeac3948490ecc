// The direct switch (emul/sched.cc, "Direct switch"): an LWP that blocks in a kernel entry
// hands its vCPU to the LWP it woke on the entry's own thread, without the vCPU's worker;
// and nothing is lost when the entry does not block after all.
#include <gtest/gtest.h>

#include "lwp_calls_util.h"

namespace lwpd::test {
namespace {

using namespace lwpcalls;
using namespace std::chrono_literals;

// One vCPU whose worker never wakes on its own while the test runs: with the usual 20-ms
// slice, a worker waking at a slice's end may find a deferred LWP queued and run it itself
// (emul/sched.cc, "Direct switch": allowed, and counted as a return on a worker), which a
// count of returns on workers would take for a missed direct switch. Only for a test whose
// LWPs never wait in user mode for one another (that needs the slice).
KernelConfig one_quiet_vcpu() {
  KernelConfig c = test_config(1);
  c.quantum = 1h;
  return c;
}

// One vCPU, two LWPs handing it back and forth with _lwp_park(unpark=peer): the peer is
// always parked when the other parks, so every hand-off is a direct switch and the woken
// LWP's return is delivered by the parking LWP's own entry, never by the vCPU's worker.
TEST(DirectSwitch, ParkHandoffReturnsThePeerOnTheParkersThread) {
  constexpr int kRounds = 200;
  Kernel k(test_config(1));
  std::atomic<lwpid_t> main_lid{0};
  std::atomic<bool> stop{false};
  std::atomic<int> workers_before{0}, elsewhere_before{0}, workers_after{0}, elsewhere_after{0};
  // The LWP reads its process through u.proc(), never `tp`, which start() is still assigning
  // while the main LWP runs (ThreadSanitizer saw that race).
  auto tp = TestProc::start(k, [&](U& u) {
    main_lid = u.lid();
    lwpid_t peer = 0;
    U_EXPECT_EQ(u,
                u.create(
                    [&](U& x) {
                      // Parks until main's first hand-off, then answers each with its own.
                      U_EXPECT_EQ(x, x.park(), Errno::kOk);
                      while (!stop.load())
                        U_EXPECT_EQ(x, x.park(std::nullopt, 0, main_lid), Errno::kOk);
                    },
                    0, &peer),
                Errno::kOk);
    U_EXPECT(u, AwaitParked(u, peer));
    workers_before = u.proc().returns_on_workers();
    elsewhere_before = u.proc().returns_elsewhere();
    for (int i = 0; i < kRounds; i++) U_EXPECT_EQ(u, u.park(std::nullopt, 0, peer), Errno::kOk);
    workers_after = u.proc().returns_on_workers();
    elsewhere_after = u.proc().returns_elsewhere();
    stop = true;
    U_EXPECT_EQ(u, u.unpark(peer), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(peer), Errno::kOk);
    U_CHECK_INVARIANTS(u);
  });
  Finish(k, tp);
  // Each round is two hand-offs: main's park returns the peer, the peer's returns main.
  // Counted on main's thread before its last park returned: 2 * kRounds - 1 of them.
  EXPECT_EQ(workers_after - workers_before, 0);
  EXPECT_GE(elsewhere_after - elsewhere_before, 2 * kRounds - 1);
}

// One vCPU: _lwp_wait hands it to the LWP just created, and that LWP's _lwp_exit hands it
// back to the waiter, each on the blocking entry's own thread.
TEST(DirectSwitch, WaitAndExitHandTheVcpuOverDirectly) {
  constexpr int kRounds = 50;
  Kernel k(one_quiet_vcpu());
  std::atomic<int> on_workers{0};
  // The LWP reads its process through u.proc(), not `tp`: start() may still be assigning it.
  auto tp = TestProc::start(k, [&](U& u) {
    for (int i = 0; i < kRounds; i++) {
      lwpid_t t = 0;
      U_EXPECT_EQ(u, u.create([](U&) {}, 0, &t), Errno::kOk);
      const int before = u.proc().returns_on_workers();
      U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
      // main's _lwp_wait frees the vCPU for the new LWP (main's entry runs it), and the new
      // LWP's exit frees it for main (the exit's entry returns main): no worker involved.
      on_workers += u.proc().returns_on_workers() - before;
    }
    U_CHECK_INVARIANTS(u);
  });
  Finish(k, tp);
  // Without the direct switch both returns of every round (the new LWP's start, main's
  // wait) come from the worker: 2 * kRounds. With it, only a round whose create woke the
  // worker (a new LWP queued on a busy vCPU) while it was still awake when main's wait
  // freed the vCPU: that worker may run the LWP itself (emul/sched.cc, "Direct switch").
  EXPECT_LE(on_workers.load(), kRounds / 10);
}

// A park that unparks its target and then does not sleep (its own unpark token was set:
// EALREADY) leaves the target queued the usual way: it runs on the other vCPU while the
// parker keeps running.
TEST(DirectSwitch, ParkThatDoesNotSleepStillRunsItsTarget) {
  Kernel k(test_config(2));
  std::atomic<int> woke{0};
  auto tp = TestProc::start(k, [&](U& u) {
    for (int i = 0; i < 50; i++) {
      lwpid_t t = 0;
      U_EXPECT_EQ(u,
                  u.create(
                      [&](U& x) {
                        U_EXPECT_EQ(x, x.park(), Errno::kOk);
                        woke++;
                      },
                      0, &t),
                  Errno::kOk);
      U_EXPECT(u, AwaitParked(u, t));
      U_EXPECT_EQ(u, u.unpark(u.lid()), Errno::kOk);  // main's own token
      U_EXPECT_EQ(u, u.park(std::nullopt, 0, t), Errno::kEALREADY);
      const int want = i + 1;
      U_EXPECT(u, u.spin_until([&] { return woke.load() == want; }, kSpinLimit));
      U_EXPECT_EQ(u, u.wait(t), Errno::kOk);
    }
    U_CHECK_INVARIANTS(u);
  });
  Finish(k, tp);
  EXPECT_EQ(woke.load(), 50);
}

}  // namespace
}  // namespace lwpd::test
