// The kernel's event observer sees every transition of a scripted scenario,
// in order, with strictly increasing sequence numbers.
#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "harness.h"

namespace lwpd::test {
namespace {

using netbsd::LwpStat;

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
      {K::kCreate, LwpStat{}, LwpStat::kIdl},
      {K::kState, LwpStat::kIdl, LwpStat::kRun},
      {K::kState, LwpStat::kRun, LwpStat::kOnProc},
      {K::kState, LwpStat::kOnProc, LwpStat::kSleep},
      {K::kState, LwpStat::kSleep, LwpStat::kRun},
      {K::kState, LwpStat::kRun, LwpStat::kOnProc},
      {K::kState, LwpStat::kOnProc, LwpStat::kZomb},
      {K::kFree, LwpStat::kZomb, LwpStat{}},
  };
  auto got = rec.of(tp->pid(), child);
  // Preemptions (ONPROC -> RUN -> ONPROC pairs) may interleave when the main
  // LWP is woken; drop such pairs before comparing.
  std::vector<KEvent> core;
  for (size_t i = 0; i < got.size(); i++) {
    if (got[i].kind == K::kState && got[i].from == LwpStat::kOnProc && got[i].to == LwpStat::kRun &&
        i + 1 < got.size() && got[i + 1].from == LwpStat::kRun && got[i + 1].to == LwpStat::kOnProc) {
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

}  // namespace
}  // namespace lwpd::test
