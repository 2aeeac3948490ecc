// Forcible vCPU revocation (KernelConfig::kick_timeout): an LWP that runs user code and
// does not enter the kernel after a kick loses its vCPU, and its process is killed as by
// SIGKILL. An LWP that answers its kicks, however often it is kicked, never trips it.
//
// The deaf LWPs here spin without polling for kicks, as a client thread that blocked the
// kick signal (or a raw client that never traps) does. Timing bounds are wide: the point
// is "within the bound, not never", on a small and noisy host.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "harness.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kKickTimeout = 100ms;

KernelConfig revoking_config(int ncpus, std::chrono::milliseconds timeout = kKickTimeout) {
  KernelConfig c = test_config(ncpus);
  c.kick_timeout = timeout;
  return c;
}

// Spins in user code without ever answering a kick, until its process is gone.
void deaf_spin(U& u, std::atomic<bool>* running) {
  running->store(true);
  while (!u.proc().exited()) std::this_thread::yield();
  u.poll();  // the LWP is gone: unwinds this thread
}

TEST(Revoke, DeafSpinnerLosesItsVcpuAndOthersRun) {
  Kernel k(revoking_config(1));
  std::atomic<bool> running{false};
  auto hog = TestProc::start(k, [&](U& u) { deaf_spin(u, &running); });
  ASSERT_TRUE(hog->await([](const ProcInfo& pi) { return pi.nlwps == 1; }));
  const auto t0 = Clock::now();
  while (!running.load()) ASSERT_LT(Clock::now() - t0, 10s) << "the hog never ran";

  // With the only vCPU held, this process runs only once the hog has lost it.
  std::atomic<int> calls{0};
  const auto start = Clock::now();
  auto other = TestProc::start(k, [&](U& u) {
    for (int i = 0; i < 200; i++) {
      EXPECT_EQ(u.err(LwpKillArgs{.target = u.lid(), .signo = 0}), Errno::kOk);
      calls++;
    }
    u.lwp_exit();
  });
  auto hog_exit = hog->wait_exit(20s);
  ASSERT_TRUE(hog_exit.has_value());
  EXPECT_TRUE(hog_exit->signaled);
  EXPECT_EQ(hog_exit->code, netbsd::NB_SIGKILL);
  ASSERT_TRUE(other->wait_exit(20s).has_value());
  EXPECT_EQ(calls.load(), 200);
  // The kick comes at once (a new process outranks nothing, so at the slice's end at the
  // latest), the revocation kKickTimeout later; 5 s is the noisy host's margin.
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(k.snapshot_limits().unresponsive_kills, 1u);
  EXPECT_EQ(k.check_invariants(), "");
  EXPECT_TRUE(hog->failures().empty());
  EXPECT_TRUE(other->failures().empty());
}

// _lwp_suspend of a deaf LWP by another LWP of its process: the suspension needs the
// target in the kernel; it never comes, so the process dies within the bound instead of
// the suspender waiting for ever.
TEST(Revoke, SuspendOfADeafLwpEndsWithinTheBound) {
  Kernel k(revoking_config(2));
  std::atomic<bool> running{false};
  std::atomic<lwpid_t> deaf{0};
  auto p = TestProc::start(k, [&](U& u) {
    lwpid_t lid = 0;
    ASSERT_EQ(u.create([&](U& v) { deaf_spin(v, &running); }, 0, &lid), Errno::kOk);
    deaf = lid;
    while (!running.load()) u.poll();
    u.err(LwpSuspendArgs{.target = lid});  // sleeps until the target is off its vCPU
    u.lwp_exit();
  });
  const auto start = Clock::now();
  auto st = p->wait_exit(20s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->code, netbsd::NB_SIGKILL);
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(k.snapshot_limits().unresponsive_kills, 1u);
  EXPECT_EQ(k.check_invariants(), "");
}

// Honest spinners on one vCPU are kicked every slice and always answer: nobody is killed.
// The bound is the daemon's default floor (2 s), not the deaf tests' 100 ms: an
// honest LWP's thread must also be scheduled by a loaded host before it can answer.
TEST(Revoke, AnsweredKicksNeverRevoke) {
  Kernel k(revoking_config(1, 2000ms));
  std::atomic<int> done{0};
  auto spinner = [&](U& u) {
    const auto end = Clock::now() + 20 * kKickTimeout;
    u.spin_until([&] { return Clock::now() >= end; }, 30s);
    done++;
    u.lwp_exit();
  };
  auto a = TestProc::start(k, spinner);
  auto b = TestProc::start(k, spinner);
  auto sa = a->wait_exit(30s), sb = b->wait_exit(30s);
  ASSERT_TRUE(sa.has_value() && sb.has_value());
  EXPECT_FALSE(sa->signaled);
  EXPECT_FALSE(sb->signaled);
  EXPECT_EQ(done.load(), 2);
  EXPECT_EQ(k.snapshot_limits().unresponsive_kills, 0u);
  uint64_t preemptions = 0;
  for (const auto& c : k.snapshot_cpus()) preemptions += c.preemptions;
  EXPECT_GT(preemptions, 0u) << "the spinners were never kicked: the test proves nothing";
}

}  // namespace
}  // namespace lwpd::test
