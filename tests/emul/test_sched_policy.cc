// Scheduler tests: an idle kernel's CPU use, the FIFO/OTHER/RR policies and sched_yield.
// LWPs are real threads (see harness.h); timing rules: sched_util.h.
#include "sched_util.h"

namespace lwpd::test {
namespace {

// ---------------------------------------------------------------------------------------
// An idle kernel burns no CPU: neither with every LWP parked forever, nor
// after all processes have exited.

// CPU time (ns) consumed so far by this process's kernel threads (vCPU
// workers and the callout), and how many of them were found.
std::pair<uint64_t, int> kernel_threads_cpu_ns() {
  uint64_t total = 0;
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return {0, 0};
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string base = std::string("/proc/self/task/") + e->d_name;
    std::string comm;
    std::ifstream(base + "/comm") >> comm;
    if (comm.rfind("lwpd-cpu", 0) != 0 && comm != "lwpd-callout") continue;
    uint64_t ns = 0;
    std::ifstream ss(base + "/schedstat");
    if (!(ss >> ns)) {
      // No schedstat: utime + stime from stat, in clock ticks.
      std::ifstream st(base + "/stat");
      std::string line;
      std::getline(st, line);
      auto rp = line.rfind(')');
      std::istringstream is(line.substr(rp + 2));
      std::string f;
      uint64_t ut = 0, stt = 0;
      for (int i = 3; i <= 15 && is >> f; i++) {
        if (i == 14) ut = std::stoull(f);
        if (i == 15) stt = std::stoull(f);
      }
      ns = (ut + stt) * (1000000000ull / sysconf(_SC_CLK_TCK));
    }
    total += ns;
    n++;
  }
  closedir(d);
  return {total, n};
}

TEST(Sched, IdleKernelUsesNoCpu) {
  Kernel k(test_config(2));
  auto measure = [&](const char* what) {
    auto [before, n] = kernel_threads_cpu_ns();
    ASSERT_GE(n, 3) << "kernel threads (lwpd-cpu*, lwpd-callout) not found";
    // Monitoring window, not synchronisation.
    std::this_thread::sleep_for(300ms);
    auto [after, n2] = kernel_threads_cpu_ns();
    ASSERT_EQ(n, n2);
    EXPECT_LT(after - before, 5'000'000u)
        << what << ": kernel threads used " << (after - before) / 1000 << " us in 300 ms";
  };

  // A process that did some work (slicing, timeouts) and now has every LWP parked.
  std::atomic<int> parked{0};
  std::atomic<bool> stop{false};
  auto tp = TestProc::start(k, [&](U& u) {
    for (int i = 0; i < 3; i++) {
      U_EXPECT_EQ(u, start_lwp(u, [&](U& c) {
        auto end = Clock::now() + 100ms;
        c.spin_until([&] { return Clock::now() > end; });
        for (int j = 0; j < 3; j++) c.park(Timespec{0, 5'000'000});
        parked++;
        c.park();  // forever
        c.proc().fail("parked LWP returned");
      }, 0, nullptr), Errno::kOk);
    }
    u.spin_until([&] { return parked.load() == 3 || stop.load(); });
    u.park();
    u.proc().fail("parked main LWP returned");
  });
  Finally fin{[&] { stop = true; kill_if_alive(k, *tp); }};
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) {
    if (pi.lwps.size() != 4) return false;
    for (auto& l : pi.lwps)
      if (l.stat != LwpStat::kSleep || l.wchan != "parked") return false;
    return true;
  }));
  measure("all LWPs parked");

  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGKILL).ok());
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->signaled);

  // A second process that ran to completion.
  auto tp2 = TestProc::start(k, [&](U& u) {
    lwpid_t c = 0;
    U_EXPECT_EQ(u, start_lwp(u, [&](U& cu) {
      auto end = Clock::now() + 60ms;
      cu.spin_until([&] { return Clock::now() > end; });
      cu.park(Timespec{0, 20'000'000});
    }, 0, &c), Errno::kOk);
    auto end = Clock::now() + 60ms;
    u.spin_until([&] { return Clock::now() > end; });
    U_EXPECT_EQ(u, u.wait(c), Errno::kOk);
  });
  Finally fin2{[&] { kill_if_alive(k, *tp2); }};
  ASSERT_TRUE(tp2->wait_exit().has_value());
  ASSERT_TRUE(k.proc_release(tp->ref()).ok());
  ASSERT_TRUE(k.proc_release(tp2->ref()).ok());
  EXPECT_TRUE(k.snapshot_procs().empty());
  ASSERT_TRUE(eventually([&] {
    for (auto& c : k.snapshot_cpus())
      if (c.cur_pid != 0 || c.runq_len != 0) return false;
    return true;
  }));
  measure("no processes");
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_TRUE(tp2->failures().empty()) << first_failure(*tp2);
  EXPECT_EQ(k.check_invariants(), "");
}

// ---------------------------------------------------------------------------------------
// Policies on one vCPU.

// Two equal-priority spinners of `policy` (the main LWP switches itself to it
// first, and they inherit it) must both progress in every window.
void equals_are_time_sliced(int policy) {
  KernelConfig cfg = test_config(1);
  const auto window = 15 * cfg.quantum;
  Kernel k(cfg);
  ASSERT_TRUE(eventually([] { return user_counter().now.load() == 0; }, 2s))
      << "another process is still running user code";
  user_counter().max = 0;
  std::array<std::atomic<uint64_t>, 2> cnt{};
  std::array<std::atomic<lwpid_t>, 2> lids{};
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  auto tp = TestProc::start(k, [&](U& u) {
    if (policy != netbsd::NB_SCHED_OTHER) {
      U_EXPECT_EQ(u, set_param(u, u.lid(), policy, 5), Errno::kOk);
    }
    for (int i = 0; i < 2; i++) {
      lwpid_t lid = 0;
      U_EXPECT_EQ(u, start_lwp(u, [&, i](U& s) {
        SysReturn r = s.sys(SchedGetparamArgs{.pid = 0, .lid = s.lid()});
        U_EXPECT_EQ(s, r.policy, policy);
        ready++;
        U_EXPECT(s, s.spin_until([&] {
          cnt[i].fetch_add(1, std::memory_order_relaxed);
          return stop.load();
        }, 30s));
      }, 0, &lid), Errno::kOk);
      lids[i] = lid;
    }
    for (int i = 0; i < 2; i++) U_EXPECT_EQ(u, u.wait(lids[i]), Errno::kOk);
  });
  Finally fin{[&] { stop = true; kill_if_alive(k, *tp); }};
  ASSERT_TRUE(eventually([&] { return ready.load() == 2 && lids[1].load() != 0; }))
      << "ready " << ready.load() << ": " << dump(k, tp->pid());
  std::array<uint64_t, 2> sw0{};
  {
    auto pi = k.snapshot_proc(tp->pid());
    ASSERT_TRUE(pi);
    for (int i = 0; i < 2; i++) sw0[i] = find(*pi, lids[i])->switches;
  }
  for (int w = 0; w < 4; w++) {
    std::array<uint64_t, 2> start{cnt[0].load(), cnt[1].load()};
    const uint64_t sw = cpu_switches(k);
    bool ok = monitor_window(window, [&] { return cpu_switches(k) >= sw + 4; }, [&] {
      auto pi = k.snapshot_proc(tp->pid());
      if (!pi) return;
      int onproc = 0;
      for (auto& l : pi->lwps) onproc += l.stat == LwpStat::kOnProc;
      EXPECT_LE(onproc, 1);
    });
    ASSERT_TRUE(ok) << "the vCPU stopped slicing (window " << w << "): " << dump(k, tp->pid());
    for (int i = 0; i < 2; i++) {
      EXPECT_GT(cnt[i].load(), start[i])
          << "spinner " << i << " starved in window " << w << ": " << dump(k, tp->pid());
    }
  }
  {
    auto pi = k.snapshot_proc(tp->pid());
    ASSERT_TRUE(pi);
    for (int i = 0; i < 2; i++) EXPECT_GE(find(*pi, lids[i])->switches, sw0[i] + 3);
  }
  stop = true;
  ASSERT_TRUE(tp->wait_exit().has_value());
  EXPECT_LE(user_counter().max.load(), 1);
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(k.check_invariants(), "");
}

TEST(Sched, OtherEqualsAreTimeSliced) { equals_are_time_sliced(netbsd::NB_SCHED_OTHER); }
TEST(Sched, RrEqualsAreTimeSliced) { equals_are_time_sliced(netbsd::NB_SCHED_RR); }

// Two SCHED_FIFO LWPs of equal priority on one vCPU: the one running keeps
// the CPU for 15 quanta (no slicing, no preemption), until it yields; then
// the other runs before the yield returns.
TEST(Sched, FifoIsNotTimeSlicedAndYieldsToEqual) {
  KernelConfig cfg = test_config(1);  // 20 ms quantum
  Kernel k(cfg);
  std::atomic<int> order{0};
  std::atomic<bool> b_ran{false};
  std::atomic<int> a_stat_seen_by_b{0};
  std::atomic<lwpid_t> a_lid{0};
  std::atomic<uint64_t> a_sw_before{0}, a_sw_after{0}, pre_before{0}, pre_after{0};
  std::atomic<bool> b_ran_during_spin{true}, b_ran_after_yield{false};

  auto body = [&](U& s) {
    SysReturn r = s.sys(SchedGetparamArgs{.pid = 0, .lid = s.lid()});
    U_EXPECT_EQ(s, r.policy, netbsd::NB_SCHED_FIFO);
    U_EXPECT_EQ(s, r.priority, 10);
    if (order.fetch_add(1) == 0) {
      // A: spin for 15 quanta while B is queued at the same priority.
      a_lid = s.lid();
      a_sw_before = self_info(s).switches;
      pre_before = k.snapshot_cpus()[0].preemptions;
      auto end = Clock::now() + 15 * cfg.quantum;
      s.spin_until([&] { return Clock::now() > end; });
      a_sw_after = self_info(s).switches;
      pre_after = k.snapshot_cpus()[0].preemptions;
      b_ran_during_spin = b_ran.load();
      U_EXPECT_EQ(s, s.err(SchedYieldArgs{}), Errno::kOk);
      b_ran_after_yield = b_ran.load();
    } else {
      // B: runs only once A yields.
      if (auto a = s.proc().lwp_info(a_lid)) a_stat_seen_by_b = static_cast<int>(a->stat);
      b_ran = true;
    }
  };
  auto tp = TestProc::start(k, [&](U& u) {
    U_EXPECT_EQ(u, set_param(u, u.lid(), netbsd::NB_SCHED_FIFO, 10), Errno::kOk);
    lwpid_t a = 0, b = 0;
    U_EXPECT_EQ(u, u.create(body, 0, &a), Errno::kOk);
    U_EXPECT_EQ(u, u.create(body, 0, &b), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(a), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(b), Errno::kOk);
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(order.load(), 2);
  EXPECT_FALSE(b_ran_during_spin.load()) << "the equal-priority FIFO LWP ran before the yield";
  EXPECT_EQ(a_sw_after.load(), a_sw_before.load())
      << "the running SCHED_FIFO LWP was switched out (time-sliced) while spinning";
  EXPECT_EQ(pre_after.load(), pre_before.load()) << "the vCPU preempted a SCHED_FIFO LWP";
  EXPECT_TRUE(b_ran_after_yield.load()) << "sched_yield did not let the equal LWP run";
  EXPECT_EQ(a_stat_seen_by_b.load(), static_cast<int>(LwpStat::kRun));
  EXPECT_EQ(k.check_invariants(), "");
}

// SCHED_OTHER with a 5 s quantum: the running LWP keeps the CPU until it
// yields; the yield lets the queued equal run, and returns 0 (whatever the
// previous syscall returned).
TEST(Sched, YieldLetsEqualPriorityOtherRun) {
  KernelConfig cfg = test_config(1);
  cfg.quantum = 5s;
  Kernel k(cfg);
  std::atomic<int> order{0};
  std::atomic<bool> b_ran{false}, b_ran_before_yield{true}, b_ran_after_yield{false};
  std::atomic<int64_t> yield_ret{-1};
  std::atomic<Errno> yield_err{Errno::kEFAULT};
  auto body = [&](U& s) {
    if (order.fetch_add(1) == 0) {
      auto end = Clock::now() + 100ms;
      s.spin_until([&] { return Clock::now() > end; });
      b_ran_before_yield = b_ran.load();
      // A failing call first: its result must not leak into the yield's.
      U_EXPECT_EQ(s, s.err(SchedSetparamArgs{.pid = 0, .lid = 0, .policy = 7}), Errno::kEINVAL);
      SysReturn r = s.sys(SchedYieldArgs{});
      yield_err = r.error;
      yield_ret = r.retval;
      b_ran_after_yield = b_ran.load();
    } else {
      b_ran = true;
    }
  };
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t a = 0, b = 0;
    U_EXPECT_EQ(u, u.create(body, 0, &a), Errno::kOk);
    U_EXPECT_EQ(u, u.create(body, 0, &b), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(a), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(b), Errno::kOk);
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_FALSE(b_ran_before_yield.load());
  EXPECT_TRUE(b_ran_after_yield.load()) << "sched_yield did not let the equal LWP run";
  EXPECT_EQ(yield_err.load(), Errno::kOk) << "sched_yield returned " << netbsd::errno_name(yield_err.load());
  EXPECT_EQ(yield_ret.load(), 0);
  EXPECT_EQ(k.check_invariants(), "");
}

}  // namespace
}  // namespace lwpd::test
