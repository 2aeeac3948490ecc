// Per-uid and system-wide limits, NetBSD-style: kern.maxproc with the last slots kept for
// root, RLIMIT_NPROC per non-root uid, and IDs kept back from LWP creation so that LWPs
// alone never exhaust the PID space that new processes need.

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "emul/idalloc.h"
#include "harness.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;

// A user side that never runs anything: its processes stay as the kernel made them, their
// main LWPs holding the vCPU in turn (the kernel revokes each after limits_config's short
// kick timeout, so the next one, or an exit, gets dispatched).
class NullPort final : public UserPort {
 public:
  void lwp_return(lwpid_t, const SysReturn&, uint64_t) override {}
  void lwp_kick(lwpid_t, uint64_t) override {}
  void lwp_signal(lwpid_t, const SigInfo&) override {}
  void lwp_exited(lwpid_t) override {}
  void proc_exited(const ExitStatus&) override {}
};

KResult<ProcRef> make(Kernel& k, uint32_t uid) {
  return k.proc_create(
      ProcSpec{.uid = uid, .comm = "limits", .port = std::make_shared<NullPort>()});
}

// Kill `p` and free its slot once it is a zombie (bounded).
bool kill_and_release(Kernel& k, const ProcRef& p) {
  k.proc_abandon(p);
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < end) {
    if (k.proc_release(p).ok()) return true;
    std::this_thread::yield();
  }
  return false;
}

KernelConfig limits_config() {
  KernelConfig cfg = test_config(1);
  cfg.kick_timeout = std::chrono::milliseconds(20);
  return cfg;
}

int nprocs_of(const LimitInfo& li, uint32_t uid) {
  for (const auto& u : li.uids)
    if (u.uid == uid) return u.nprocs;
  return 0;
}

TEST(Limits, MaxprocKeepsTheLastSlotsForRoot) {
  KernelConfig cfg = limits_config();
  cfg.maxproc = 12;
  cfg.maxuprc = 100;
  Kernel k(cfg);
  std::vector<ProcRef> held;
  for (int i = 0; i < 12 - netbsd::NPROC_ROOT_RESERVE; i++) {
    auto r = make(k, 1000 + i % 2);  // two uids, each under its own limit
    ASSERT_TRUE(r.ok()) << i;
    held.push_back(r.release());
  }
  auto refused = make(k, 1002);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error(), Errno::kEAGAIN);
  for (int i = 0; i < netbsd::NPROC_ROOT_RESERVE; i++) {  // root can still attach
    auto r = make(k, 0);
    ASSERT_TRUE(r.ok()) << i;
    held.push_back(r.release());
  }
  auto over = make(k, 0);  // and not past kern.maxproc
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error(), Errno::kEAGAIN);

  // A released slot is taken again.
  ASSERT_TRUE(kill_and_release(k, held.front()));
  held.erase(held.begin());
  EXPECT_TRUE(make(k, 0).ok());
  EXPECT_EQ(k.check_invariants(), "");
}

TEST(Limits, RlimitNprocIsPerUidAndRootIsExempt) {
  KernelConfig cfg = limits_config();
  cfg.maxuprc = 3;
  Kernel k(cfg);
  std::vector<ProcRef> held;
  for (int i = 0; i < 3; i++) held.push_back(make(k, 1000).release());
  auto refused = make(k, 1000);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error(), Errno::kEAGAIN);
  // Another uid, and root, are not held back by uid 1000's processes.
  for (int i = 0; i < 3; i++) EXPECT_TRUE(make(k, 1001).ok());
  for (int i = 0; i < 5; i++) EXPECT_TRUE(make(k, 0).ok());
  LimitInfo li = k.snapshot_limits();
  EXPECT_EQ(li.maxuprc, 3);
  EXPECT_EQ(nprocs_of(li, 1000), 3);
  EXPECT_EQ(nprocs_of(li, 1001), 3);
  EXPECT_EQ(nprocs_of(li, 0), 5);

  ASSERT_TRUE(kill_and_release(k, held.back()));
  held.pop_back();
  EXPECT_EQ(nprocs_of(k.snapshot_limits(), 1000), 2);
  EXPECT_TRUE(make(k, 1000).ok());
  EXPECT_EQ(k.check_invariants(), "");
}

// Root bypasses RLIMIT_NTHR, but not the IDs kept for processes (KernelConfig::id_reserve,
// passed by lwp_create): fresh LIDs stop while `reserve` IDs are free, and those still
// make processes.
TEST(Limits, LidsLeaveIdsForNewProcesses) {
  IdAllocator ids(/*initial*/ 40, /*ceiling*/ 40);  // IDs 1..39, and no more
  auto pid = ids.alloc_pid();
  ASSERT_TRUE(pid.ok());
  auto own = ids.alloc_lid(pid.value(), 5);  // the process's own slot needs no fresh ID
  ASSERT_TRUE(own.ok());
  EXPECT_EQ(own.value(), pid.value());
  int lids = 0;
  for (;;) {
    auto l = ids.alloc_lid(pid.value(), 5);
    if (!l.ok()) {
      EXPECT_EQ(l.error(), Errno::kEAGAIN);
      break;
    }
    lids++;
  }
  EXPECT_EQ(lids, 39 - 1 - 5);
  for (int i = 0; i < 5; i++) EXPECT_TRUE(ids.alloc_pid().ok()) << i;
  EXPECT_FALSE(ids.alloc_pid().ok());
}

// NetBSD's PID space is not a fixed 30,000: its table grows once 16,384 IDs are in use, and
// pid_max with it. Below that, IDs cycle under PID_MAX however many were handed out.
TEST(Limits, IdSpaceStaysUnderPidMaxUntilItFills) {
  IdAllocator ids;
  std::vector<int> held;
  for (int i = 0; i < 100000; i++) {  // three times round the space, 10 at a time
    auto p = ids.alloc_pid();
    ASSERT_TRUE(p.ok()) << i;
    ASSERT_GT(p.value(), 0);
    ASSERT_LT(p.value(), netbsd::PID_MAX);
    held.push_back(p.value());
    if (held.size() == 10) {
      for (int id : held) ids.free_pid(id);
      held.clear();
    }
  }
  EXPECT_EQ(ids.space(), netbsd::PID_MAX);
}

TEST(Limits, IdSpaceGrowsPastPidMaxAsItFills) {
  IdAllocator ids;
  std::set<int> seen;
  int highest = 0;
  auto take = [&](int n) {
    for (int i = 0; i < n; i++) {
      auto p = ids.alloc_pid();
      ASSERT_TRUE(p.ok()) << seen.size();
      ASSERT_TRUE(seen.insert(p.value()).second) << p.value() << " handed out twice";
      highest = std::max(highest, p.value());
    }
  };
  take(16384);
  EXPECT_LT(highest, netbsd::PID_MAX);  // all of them below PID_MAX
  EXPECT_EQ(ids.space(), netbsd::PID_MAX);
  take(16384);  // past 16,384 in use: the space is 65,536 and IDs above 30,000 appear
  EXPECT_EQ(ids.space(), 65536);
  EXPECT_GE(highest, netbsd::PID_MAX);
  take(100000 - 32768);  // 100,000 at once: doubled at 32,768 and at 65,536 in use
  EXPECT_EQ(ids.space(), 262144);
  EXPECT_LT(highest, 262144);
  EXPECT_EQ(ids.in_use(), 100000);
  // Freed IDs are handed out again; the space does not shrink.
  for (int id : seen) ids.free_pid(id);
  EXPECT_EQ(ids.in_use(), 0);
  EXPECT_TRUE(ids.alloc_pid().ok());
  EXPECT_EQ(ids.space(), 262144);
}

TEST(Limits, IdSpaceStopsAtItsCeiling) {
  IdAllocator ids(/*initial*/ 30000, /*ceiling*/ 40000);
  int n = 0;
  for (;;) {
    auto p = ids.alloc_pid();
    if (!p.ok()) {
      EXPECT_EQ(p.error(), Errno::kEAGAIN);
      break;
    }
    ASSERT_LT(p.value(), 40000);
    n++;
  }
  EXPECT_EQ(n, 39999);
  EXPECT_EQ(ids.space(), 40000);
}

}  // namespace
}  // namespace lwpd::test
