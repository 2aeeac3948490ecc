// The kernel's event observer sees every transition of a scripted scenario,
// in order, with strictly increasing sequence numbers.
#include <atomic>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace lwpd::test {
namespace {

using netbsd::LwpStat;
using netbsd::NB_SIGCONT;
using netbsd::NB_SIGKILL;
using netbsd::NB_SIGSTOP;
using netbsd::ProcStat;

class Recorder : public KernelObserver {
 public:
  void on_event(const KEvent& e) override {
    std::lock_guard g(mu_);
    events_.push_back(e);
  }
  std::vector<KEvent> of(pid_t pid, lwpid_t lid) {
    std::lock_guard g(mu_);
    std::vector<KEvent> out;
    for (auto& e : events_)
      if (e.pid == pid && e.lid == lid) out.push_back(e);
    return out;
  }
  std::vector<KEvent> all() {
    std::lock_guard g(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<KEvent> events_;
};

std::string describe(const std::vector<KEvent>& v) {
  std::string s;
  for (auto& e : v) {
    s += std::to_string(static_cast<int>(e.kind)) + ":" + netbsd::lwp_stat_name(e.from) + "->" +
         netbsd::lwp_stat_name(e.to) + " ";
  }
  return s;
}

TEST(Observer, ScriptedScenarioArrivesInOrder) {
  Recorder rec;
  KernelConfig cfg = test_config(1);
  cfg.observer = &rec;
  Kernel k(cfg);
  lwpid_t child = 0;
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, u.create([](U& c) { c.park(); }, 0, &child), Errno::kOk);
    // Let the child park: wait until the kernel shows it asleep.
    U_EXPECT(u, u.spin_until([&] {
      auto li = u.proc().lwp_info(child);
      return li && li->stat == LwpStat::kSleep;
    }));
    U_EXPECT_EQ(u, u.unpark(child), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(child), Errno::kOk);
  });
  ASSERT_TRUE(tp->wait_exit().has_value());
  ASSERT_TRUE(tp->failures().empty()) << tp->failures().front();

  using K = KEvent::Kind;
  struct Step {
    K kind;
    LwpStat from, to;
  };
  // The child: created, queued, dispatched, parks, woken, dispatched, exits,
  // reaped. (On one vCPU no preemption can interleave extra switches: the
  // child only runs while the main LWP sleeps or after it is woken.)
  const std::vector<Step> want = {
      {K::kCreate, LwpStat{}, LwpStat::kIdl},        {K::kState, LwpStat::kIdl, LwpStat::kRun},
      {K::kState, LwpStat::kRun, LwpStat::kOnProc},  {K::kState, LwpStat::kOnProc, LwpStat::kSleep},
      {K::kState, LwpStat::kSleep, LwpStat::kRun},   {K::kState, LwpStat::kRun, LwpStat::kOnProc},
      {K::kState, LwpStat::kOnProc, LwpStat::kZomb}, {K::kFree, LwpStat::kZomb, LwpStat{}},
  };
  auto got = rec.of(tp->pid(), child);
  // Preemptions (ONPROC -> RUN -> ONPROC pairs) may interleave when the main
  // LWP is woken; drop such pairs before comparing.
  std::vector<KEvent> core;
  for (size_t i = 0; i < got.size(); i++) {
    if (got[i].kind == K::kState && got[i].from == LwpStat::kOnProc && got[i].to == LwpStat::kRun &&
        i + 1 < got.size() && got[i + 1].from == LwpStat::kRun &&
        got[i + 1].to == LwpStat::kOnProc) {
      i++;
      continue;
    }
    core.push_back(got[i]);
  }
  ASSERT_EQ(core.size(), want.size()) << describe(got);
  for (size_t i = 0; i < want.size(); i++) {
    EXPECT_EQ(core[i].kind, want[i].kind) << i << ": " << describe(got);
    if (want[i].kind == K::kState) {
      EXPECT_EQ(core[i].from, want[i].from) << i << ": " << describe(got);
      EXPECT_EQ(core[i].to, want[i].to) << i << ": " << describe(got);
    }
  }
  // Sequence numbers strictly increase, and the process exit is the last event.
  auto all = rec.all();
  for (size_t i = 1; i < all.size(); i++) EXPECT_LT(all[i - 1].seq, all[i].seq);
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back().kind, K::kProcExit);
  EXPECT_EQ(all.back().pid, tp->pid());
}

// The admin path: Kernel::lwp_suspend_ext / lwp_continue_ext act on an LWP from
// outside the process, and a SIGSTOP/SIGCONT from outside reports process-level
// kProcStop / kProcCont events once the stop is complete / on continue.
TEST(Observer, ExternalSuspendContinueAndProcessStopEvents) {
  Recorder rec;
  KernelConfig cfg = test_config(1);
  cfg.observer = &rec;
  Kernel k(cfg);
  std::atomic<lwpid_t> child{0};
  std::atomic<bool> done{false};
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u,
                u.create(
                    [&](U& x) {
                      while (!done.load()) x.park();  // a spurious wake parks again
                    },
                    0, &c),
                Errno::kOk);
    child = c;
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
  });
  auto asleep = [&](const ProcInfo& pi) {
    for (const auto& l : pi.lwps)
      if (l.lid == child.load()) return l.stat == LwpStat::kSleep && l.wchan == "parked";
    return false;
  };
  ASSERT_TRUE(tp->await(asleep)) << describe(rec.all());
  // An interruptible sleeper is woken and suspends on its way out of the kernel.
  auto st = k.lwp_suspend_ext(tp->ref(), child.load());
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(tp->await([&](const ProcInfo&) {
    auto li = tp->lwp_info(child.load());
    return li && li->stat == LwpStat::kSuspended;
  }));
  auto ev = rec.of(tp->pid(), child.load());
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().to, LwpStat::kSuspended) << describe(ev);
  // Suspending again reports the state at once.
  st = k.lwp_suspend_ext(tp->ref(), child.load());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st.value(), LwpStat::kSuspended);
  EXPECT_EQ(k.lwp_suspend_ext(tp->ref(), 999).error(), Errno::kESRCH);
  EXPECT_EQ(k.lwp_continue_ext(tp->ref(), 999).error(), Errno::kESRCH);
  st = k.lwp_continue_ext(tp->ref(), child.load());
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st.value(), LwpStat::kRun);
  ASSERT_TRUE(tp->await(asleep)) << describe(rec.of(tp->pid(), child.load()));

  using K = KEvent::Kind;
  auto count = [&](K kind) {
    int n = 0;
    for (const auto& e : rec.all())
      if (e.kind == kind && e.pid == tp->pid()) n++;
    return n;
  };
  EXPECT_EQ(count(K::kProcStop), 0);
  ASSERT_TRUE(k.proc_signal(tp->ref(), NB_SIGSTOP).ok());
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) { return pi.stat == ProcStat::kStop; }));
  EXPECT_EQ(count(K::kProcStop), 1);
  EXPECT_EQ(count(K::kProcCont), 0);
  ASSERT_TRUE(k.proc_signal(tp->ref(), NB_SIGCONT).ok());
  EXPECT_EQ(count(K::kProcCont), 1);
  ASSERT_TRUE(tp->await(asleep));
  // kProcStop comes after every LWP's transition to LSSTOP.
  auto all = rec.all();
  size_t stop_at = 0;
  for (size_t i = 0; i < all.size(); i++)
    if (all[i].kind == K::kProcStop) stop_at = i;
  for (size_t i = stop_at; i < all.size(); i++)
    EXPECT_FALSE(all[i].kind == K::kState && all[i].to == LwpStat::kStop) << describe(all);
  done = true;
  ASSERT_TRUE(k.proc_signal(tp->ref(), NB_SIGKILL).ok());
  ASSERT_TRUE(tp->wait_exit().has_value());
}

}  // namespace
}  // namespace lwpd::test
