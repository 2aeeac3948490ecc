// The rationed real-time priority of the threads that serve kernel entries
// (emul/rt_burst.h, `lwpd --rt-priority`): SCHED_FIFO while the bucket holds time, SCHED_OTHER
// once work has drained it, SCHED_FIFO again once rest has refilled it; a thread that hardly
// sleeps between bursts is rationed even when every burst is short.
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <sys/types.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "emul/kernel.h"
#include "emul/rt_burst.h"
#include "harness.h"

namespace lwpd::emul {
namespace {

using Clock = std::chrono::steady_clock;

// The host threads of this process whose name starts with `prefix`.
std::vector<pid_t> threads_named(const std::string& prefix) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string comm;
    std::getline(f, comm);
    if (comm.rfind(prefix, 0) == 0) out.push_back(static_cast<pid_t>(std::stoi(e->d_name)));
  }
  closedir(d);
  return out;
}

// SCHED_FIFO for a test thread, or why not (the test is then skipped: the host does not
// allow it, e.g. an unprivileged container).
std::string fifo_refused() {
  std::string why;
  std::thread([&] {
    RtBurst b;
    if (int e = b.start(1)) why = std::strerror(e);
  }).join();
  return why;
}

void spin_for(std::chrono::nanoseconds d) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
  }
}

TEST(RtBurst, RealTimeForShortBurstsNormalAfterALongOneRealTimeAgainAfterRest) {
  if (std::string why = fifo_refused(); !why.empty())
    GTEST_SKIP() << "SCHED_FIFO is not allowed here: " << why;
  std::thread([] {
    RtBurst b;
    ASSERT_EQ(b.start(1), 0);
    EXPECT_EQ(sched_getscheduler(0), SCHED_FIFO);
    EXPECT_TRUE(b.realtime());
    // Short bursts with rests between them keep the priority.
    for (int i = 0; i < 100; i++) {
      b.busy();
      b.rest();
    }
    EXPECT_EQ(sched_getscheduler(0), SCHED_FIFO);
    // One burst past the bucket: normal priority from the first busy() after it.
    b.busy();
    spin_for(std::chrono::nanoseconds(RtBurst::kBurstNs) + std::chrono::milliseconds(1));
    b.busy();
    EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
    EXPECT_FALSE(b.realtime());
    // Going to sleep does not by itself give the priority back: the burst is owed.
    b.rest();
    EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
    // Rest refills the bucket: real-time again after about as long as the debt plus
    // kResumeNs (here >= 2 ms), within a second whatever the host does.
    const auto rest_from = Clock::now();
    while (!b.realtime() && Clock::now() - rest_from < std::chrono::seconds(1)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      b.busy();
      b.rest();
    }
    EXPECT_EQ(sched_getscheduler(0), SCHED_FIFO);
    EXPECT_TRUE(b.realtime());
    EXPECT_GE(Clock::now() - rest_from, std::chrono::nanoseconds(RtBurst::kResumeNs));
  }).join();
}

// Bursts each shorter than the bucket, with rests much shorter than the bursts: the thread
// works ~90 % of the time and must not stay real-time for it.
TEST(RtBurst, AThreadThatHardlySleepsIsRationed) {
  if (std::string why = fifo_refused(); !why.empty())
    GTEST_SKIP() << "SCHED_FIFO is not allowed here: " << why;
  std::thread([] {
    RtBurst b;
    ASSERT_EQ(b.start(1), 0);
    int demoted_cycles = 0;
    for (int i = 0; i < 50; i++) {
      b.busy();
      spin_for(std::chrono::microseconds(1800));
      b.busy();
      demoted_cycles += sched_getscheduler(0) == SCHED_OTHER;
      b.rest();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    EXPECT_GE(demoted_cycles, 10) << "real-time through 50 bursts of 1.8 ms, 0.1 ms apart";
  }).join();
}

// Work done after the demotion is not owed: a long flood at normal priority is followed by
// real-time service again after about kResumeNs of rest, not after as long as the flood.
TEST(RtBurst, AFloodServedAtNormalPriorityIsNotOwedAfterwards) {
  if (std::string why = fifo_refused(); !why.empty())
    GTEST_SKIP() << "SCHED_FIFO is not allowed here: " << why;
  std::thread([] {
    RtBurst b;
    ASSERT_EQ(b.start(1), 0);
    b.busy();
    spin_for(std::chrono::nanoseconds(RtBurst::kBurstNs) + std::chrono::milliseconds(1));
    b.busy();
    ASSERT_FALSE(b.realtime());
    // 60 ms of flood, reported as work every millisecond: all of it at normal priority.
    for (int i = 0; i < 60; i++) {
      spin_for(std::chrono::milliseconds(1));
      b.busy();
      ASSERT_EQ(sched_getscheduler(0), SCHED_OTHER);
    }
    b.rest();
    const auto rest_from = Clock::now();
    while (!b.realtime() && Clock::now() - rest_from < std::chrono::seconds(1)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      b.busy();
      b.rest();
    }
    EXPECT_TRUE(b.realtime());
    // The debt is the 1-ms overshoot of the first burst: ~2 ms of rest, far less than the
    // 60 ms of the flood (what owing the flood would take).
    EXPECT_LT(Clock::now() - rest_from, std::chrono::milliseconds(30));
  }).join();
}

TEST(RtBurst, PriorityZeroLeavesTheThreadAlone) {
  std::thread([] {
    RtBurst b;
    EXPECT_EQ(b.start(0), 0);
    b.busy();
    b.rest();
    EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
    EXPECT_FALSE(b.realtime());
  }).join();
}

// KernelConfig::rt_priority reaches every vCPU worker (lwpd-cpuN); 0 leaves them normal.
TEST(RtBurst, VcpuWorkersRunRealTimeWhenConfigured) {
  if (std::string why = fifo_refused(); !why.empty())
    GTEST_SKIP() << "SCHED_FIFO is not allowed here: " << why;
  for (int prio : {0, 1}) {
    KernelConfig c = test::test_config(2);
    c.rt_priority = prio;
    Kernel k(c);
    // A worker sets its policy as it starts; each has started once it is named and idle.
    std::vector<pid_t> workers;
    int fifo = 0;
    const auto give_up = Clock::now() + std::chrono::seconds(10);
    do {
      std::this_thread::yield();
      workers = threads_named("lwpd-cpu");
      fifo = 0;
      for (pid_t t : workers) fifo += sched_getscheduler(t) == SCHED_FIFO;
    } while ((workers.size() < 2 || (prio > 0 && fifo < 2)) && Clock::now() < give_up);
    ASSERT_EQ(workers.size(), 2u);
    EXPECT_EQ(fifo, prio > 0 ? 2 : 0) << "rt_priority " << prio;
  }
}

// Pinning follows the priority (sched.h, "Pinning"): real-time workers are left to the host
// scheduler (every allowed host CPU, HOST "-"), unless pin_realtime; normal ones are pinned.
TEST(RtBurst, RealTimeWorkersAreNotPinnedUnlessAsked) {
  if (std::string why = fifo_refused(); !why.empty())
    GTEST_SKIP() << "SCHED_FIFO is not allowed here: " << why;
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  const int nallowed = CPU_COUNT(&allowed);
  struct Case {
    int prio;
    bool pin_realtime;
    bool pinned;
  };
  for (Case cs : {Case{0, false, true}, Case{1, false, false}, Case{1, true, true}}) {
    SCOPED_TRACE("rt_priority " + std::to_string(cs.prio) + ", pin_realtime " +
                 std::to_string(cs.pin_realtime));
    KernelConfig c = test::test_config(2);
    c.pin_cpus = true;
    c.rt_priority = cs.prio;
    c.pin_realtime = cs.pin_realtime;
    Kernel k(c);
    // Each worker sets its policy, then its affinity, before it reports itself idle: wait
    // for the expected affinity (bounded), then check what the kernel says.
    std::vector<pid_t> workers;
    auto settled = [&] {
      workers = threads_named("lwpd-cpu");
      if (workers.size() < 2) return false;
      for (pid_t t : workers) {
        cpu_set_t set;
        if (sched_getaffinity(t, sizeof set, &set) != 0) return false;
        if ((CPU_COUNT(&set) == 1) != (cs.pinned || nallowed == 1)) return false;
      }
      for (const CpuInfo& ci : k.snapshot_cpus())
        if ((ci.host_cpu >= 0) != cs.pinned) return false;
      return true;
    };
    const auto give_up = Clock::now() + std::chrono::seconds(10);
    while (!settled() && Clock::now() < give_up) std::this_thread::yield();
    ASSERT_TRUE(settled());
    if (!cs.pinned) {
      for (pid_t t : workers) {
        cpu_set_t set;
        ASSERT_EQ(sched_getaffinity(t, sizeof set, &set), 0);
        EXPECT_TRUE(CPU_EQUAL(&set, &allowed)) << "worker " << t << " is restricted";
      }
    }
  }
}

}  // namespace
}  // namespace lwpd::emul
