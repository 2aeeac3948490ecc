// The run-time half of emul/lock.h: the lock-rank check and Mutex::AssertHeld. A lock taken
// out of the order aborts the process naming both locks (a death test per rule).

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "emul/lock.h"

namespace lwpd {
namespace {

#if LWPD_LOCK_CHECKS
constexpr bool kChecks = true;
#else
constexpr bool kChecks = false;
#endif

class LockOrderDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kChecks) GTEST_SKIP() << "built with NDEBUG: no run-time lock checks";
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(LockOrderDeathTest, InnerThenOuterAborts) {
  Mutex proc{LockRank::kProc};
  Mutex cpu{LockRank::kCpu};
  EXPECT_DEATH(
      {
        MutexLock c(cpu);
        MutexLock p(proc);
      },
      "lock order violation: taking a Proc lock while holding Cpu");
}

TEST_F(LockOrderDeathTest, TwoOfOneRankAbort) {
  Mutex a{LockRank::kProc};
  Mutex b{LockRank::kProc};
  EXPECT_DEATH(
      {
        MutexLock ga(a);
        MutexLock gb(b);
      },
      "lock order violation: taking a Proc lock while holding Proc");
}

TEST_F(LockOrderDeathTest, AssertHeldWithoutTheLockAborts) {
  Mutex a{LockRank::kPort};
  EXPECT_DEATH(a.AssertHeld(), "lock not held: a Port lock");
}

TEST_F(LockOrderDeathTest, AssertHeldByAnotherThreadAborts) {
  Mutex a{LockRank::kPort};
  EXPECT_DEATH(
      {
        MutexLock g(a);
        std::thread([&a] { a.AssertHeld(); }).join();
      },
      "lock not held");
}

// The order of emul/lock.h, outer to inner, and a condition-variable wait in the middle
// (the wait releases and re-takes the innermost lock: the bookkeeping must follow).
TEST(LockOrder, InOrderAndAcrossAWait) {
  Mutex table{LockRank::kKernelTable};
  Mutex proc{LockRank::kProc};
  Mutex cpu{LockRank::kCpu};
  Mutex port{LockRank::kPort};
  CondVar cv;
  {
    MutexLock t(table);
    MutexLock p(proc);
    UniqueLock c(cpu);
    cv.wait_for(c, std::chrono::milliseconds(1));
    cpu.AssertHeld();
    MutexLock q(port);
    port.AssertHeld();
  }
  // Everything was released: the outermost rank may be taken again.
  MutexLock t(table);
  table.AssertHeld();
}

}  // namespace
}  // namespace lwpd
