// Scheduler tests: time slicing, preemption by priority, affinity, idle stealing and
// lwpctl bookkeeping. LWPs are real threads (see harness.h); timing rules: sched_util.h.
#include "sched_util.h"

namespace lwpd::test {
namespace {

// ---------------------------------------------------------------------------------------
// 2 vCPUs, 4 spinners: never more than 2 on a CPU at once, and all 4 progress.
TEST(Sched, TwoCpusFourSpinnersAreTimeSliced) {
  KernelConfig cfg = test_config(2);  // 20 ms quantum
  const auto window = 15 * cfg.quantum;
  Kernel k(cfg);
  ASSERT_TRUE(eventually([] { return user_counter().now.load() == 0; }, 2s))
      << "another process is still running user code";
  user_counter().max = 0;

  std::array<std::atomic<uint64_t>, 4> cnt{};
  std::array<std::atomic<lwpid_t>, 4> lids{};
  std::atomic<int> ready{0};
  std::atomic<bool> created{false}, stop{false};

  auto tp = TestProc::start(k, [&](U& u) {
    for (int i = 0; i < 4; i++) {
      lwpid_t lid = 0;
      U_EXPECT_EQ(u, start_lwp(u, [&, i](U& s) {
        lwpctl(s);
        ready++;
        bool ok = s.spin_until([&] {
          cnt[i].fetch_add(1, std::memory_order_relaxed);
          return stop.load();
        }, 30s);
        U_EXPECT(s, ok);
      }, 0, &lid), Errno::kOk);
      lids[i] = lid;
    }
    created = true;
    for (int i = 0; i < 4; i++) U_EXPECT_EQ(u, u.wait(lids[i]), Errno::kOk);
  });
  Finally fin{[&] { stop = true; kill_if_alive(k, *tp); }};

  ASSERT_TRUE(eventually([&] { return created.load() && ready.load() == 4; }))
      << dump(k, tp->pid());

  int max_onproc = 0, max_curcpu = 0;
  std::array<uint64_t, 4> sw_start{};
  {
    auto pi = k.snapshot_proc(tp->pid());
    ASSERT_TRUE(pi);
    for (int i = 0; i < 4; i++) sw_start[i] = find(*pi, lids[i])->switches;
  }
  for (int w = 0; w < 5; w++) {
    std::array<uint64_t, 4> start{};
    for (int i = 0; i < 4; i++) start[i] = cnt[i].load();
    const uint64_t sw = cpu_switches(k);
    int samples = 0;
    // At least 15 quanta, and 8 dispatches: enough for a vCPU with three
    // spinners to go round them twice.
    bool ok = monitor_window(window, [&] { return cpu_switches(k) >= sw + 8; }, [&] {
      auto pi = k.snapshot_proc(tp->pid());
      if (!pi) return;
      int onproc = 0, curcpu = 0;
      for (const auto& l : pi->lwps) {
        if (l.stat == LwpStat::kOnProc) onproc++;
        if (l.lc_curcpu >= 0) curcpu++;
        if (l.stat == LwpStat::kOnProc && l.lc_pctr > 0) {
          EXPECT_EQ(l.lc_curcpu, l.cpu) << "lwp " << l.lid;
        }
      }
      EXPECT_LE(onproc, 2) << "more LWPs LSONPROC than vCPUs";
      EXPECT_LE(curcpu, 2) << "more lc_curcpu >= 0 than vCPUs";
      max_onproc = std::max(max_onproc, onproc);
      max_curcpu = std::max(max_curcpu, curcpu);
      int busy = 0;
      for (const auto& c : k.snapshot_cpus()) busy += c.cur_pid != 0;
      EXPECT_LE(busy, 2);
      samples++;
    });
    ASSERT_TRUE(ok) << "the vCPUs stopped switching (window " << w << "): " << dump(k, tp->pid());
    for (int i = 0; i < 4; i++) {
      EXPECT_GT(cnt[i].load(), start[i])
          << "spinner " << i << " made no progress in window " << w << " (" << samples
          << " samples): " << dump(k, tp->pid());
    }
  }
  EXPECT_EQ(max_onproc, 2) << "the two vCPUs were never both used";
  EXPECT_EQ(max_curcpu, 2);
  {
    auto pi = k.snapshot_proc(tp->pid());
    ASSERT_TRUE(pi);
    // At least one vCPU holds two or more spinners: those must have been
    // sliced (a vCPU alone with one spinner has no reason to switch it).
    int sliced = 0;
    for (int i = 0; i < 4; i++) sliced += find(*pi, lids[i])->switches >= sw_start[i] + 2;
    EXPECT_GE(sliced, 2) << "no time slicing between spinners sharing a vCPU";
  }
  stop = true;
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code, 0);
  EXPECT_LE(user_counter().max.load(), 2) << "more threads ran user code than vCPUs";
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(k.check_invariants(), "");
}

// ---------------------------------------------------------------------------------------
// 1 vCPU, 5 s quantum. A SCHED_OTHER LWP spins; a SCHED_FIFO LWP whose park
// times out must get the CPU at once (preemption), not at the end of the slice.
TEST(Sched, HigherPriorityPreemptsSpinner) {
  KernelConfig cfg = test_config(1);
  cfg.quantum = 5s;
  Kernel k(cfg);

  std::atomic<bool> h_parked{false}, h_ran{false};
  std::atomic<uint64_t> spin{0}, spin_at_run{0};
  std::atomic<int64_t> park_ms{-1};
  std::atomic<int> m_stat_at_run{0};
  std::atomic<uint64_t> pre_before{0}, pre_after{0};
  std::atomic<Errno> park_err{Errno::kOk};
  std::atomic<lwpid_t> main_lid{0};

  auto tp = TestProc::start(k, [&](U& u) {
    main_lid = u.lid();
    lwpid_t h = 0;
    U_EXPECT_EQ(u, u.create([&](U& hu) {
      auto t0 = Clock::now();
      h_parked = true;
      park_err = hu.park(Timespec{0, 300'000'000});
      park_ms = ms_since(t0);
      spin_at_run = spin.load();
      if (auto m = hu.proc().lwp_info(main_lid)) m_stat_at_run = static_cast<int>(m->stat);
      pre_after = k.snapshot_cpus()[0].preemptions;
      h_ran = true;
    }, 0, &h), Errno::kOk);
    // H has not run yet (same priority, one vCPU). Raising it to FIFO makes it
    // outrank us: it runs right away and parks before we continue.
    U_EXPECT(u, !h_parked.load());
    U_EXPECT_EQ(u, set_param(u, h, netbsd::NB_SCHED_FIFO, 20), Errno::kOk);
    U_EXPECT(u, h_parked.load());
    pre_before = k.snapshot_cpus()[0].preemptions;
    bool ok = u.spin_until([&] {
      spin.fetch_add(1, std::memory_order_relaxed);
      return h_ran.load();
    }, 15s);
    U_EXPECT(u, ok);
    U_EXPECT_EQ(u, u.wait(h), Errno::kOk);
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};

  auto st = tp->wait_exit(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(park_err.load(), Errno::kETIMEDOUT);
  EXPECT_GE(park_ms.load(), 290);
  EXPECT_LT(park_ms.load(), 2000) << "the FIFO LWP waited for the spinner's 5 s time slice";
  EXPECT_GT(spin_at_run.load(), 0u) << "the SCHED_OTHER LWP was not spinning meanwhile";
  EXPECT_EQ(m_stat_at_run.load(), static_cast<int>(LwpStat::kRun))
      << "the spinner should be preempted (LSRUN) while the FIFO LWP runs";
  EXPECT_GT(pre_after.load(), pre_before.load()) << "CpuInfo.preemptions did not count it";
  EXPECT_EQ(k.check_invariants(), "");
}

// ---------------------------------------------------------------------------------------
// Affinity: two LWPs pinned to vCPU 1 only ever run there (time-sliced against
// each other); re-pinning one to vCPU 0 while it runs migrates it.
TEST(Sched, AffinityPinsLwpToItsCpuAndRepinningMigrates) {
  Kernel k(test_config(2));
  constexpr CpuMask kCpu0 = 1, kCpu1 = 2;
  std::atomic<int> pinned{0};
  std::atomic<int> phase{0};
  std::atomic<bool> moved{false}, stop{false};
  std::array<std::atomic<lwpid_t>, 2> lids{};
  std::array<std::atomic<uint64_t>, 2> cnt{};

  auto tp = TestProc::start(k, [&](U& u) {
    auto pinned_spinner = [&](int i) {
      return [&, i](U& s) {
        lwpctl(s);
        U_EXPECT_EQ(s, set_affinity(s, s.lid(), kCpu1), Errno::kOk);
        // Back in user mode: necessarily on vCPU 1 now.
        LwpInfo li = self_info(s);
        U_EXPECT_EQ(s, li.cpu, 1);
        U_EXPECT_EQ(s, li.lc_curcpu, 1);
        SysReturn r = s.sys(SchedGetaffinityArgs{.pid = 0, .lid = s.lid()});
        U_EXPECT_EQ(s, r.error, Errno::kOk);
        U_EXPECT(s, r.mask == kCpu1);
        pinned++;
        bool ok = s.spin_until([&] {
          cnt[i].fetch_add(1, std::memory_order_relaxed);
          return stop.load();
        }, 30s);
        U_EXPECT(s, ok);
      };
    };
    for (int i = 0; i < 2; i++) {
      lwpid_t lid = 0;
      U_EXPECT_EQ(u, start_lwp(u, pinned_spinner(i), 0, &lid), Errno::kOk);
      lids[i] = lid;
    }
    U_EXPECT(u, u.spin_until([&] { return phase.load() == 1; }, 30s));
    // P (lids[0]) is running or queued on vCPU 1: move it to vCPU 0.
    U_EXPECT_EQ(u, set_affinity(u, lids[0], kCpu0), Errno::kOk);
    SysReturn r = u.sys(SchedGetaffinityArgs{.pid = 0, .lid = lids[0]});
    U_EXPECT(u, r.mask == kCpu0);
    moved = true;
    U_EXPECT(u, u.spin_until([&] { return stop.load(); }, 30s));
    for (int i = 0; i < 2; i++) U_EXPECT_EQ(u, u.wait(lids[i]), Errno::kOk);
  });
  Finally fin{[&] { stop = true; kill_if_alive(k, *tp); }};

  ASSERT_TRUE(eventually([&] { return pinned.load() == 2; })) << dump(k, tp->pid());
  const lwpid_t P = lids[0], Q = lids[1];

  // Phase 1: both pinned to vCPU 1.
  std::array<uint64_t, 2> sw0{};
  std::array<int, 2> onproc{};
  {
    auto pi = k.snapshot_proc(tp->pid());
    ASSERT_TRUE(pi);
    sw0 = {find(*pi, P)->switches, find(*pi, Q)->switches};
  }
  // Sharing vCPU 1, they are time-sliced: many dispatches, all on vCPU 1.
  auto switched = [&] {
    auto pi = k.snapshot_proc(tp->pid());
    return pi && find(*pi, P)->switches >= sw0[0] + 3 && find(*pi, Q)->switches >= sw0[1] + 3;
  };
  bool ok = monitor_window(600ms, switched, [&] {
    auto pi = k.snapshot_proc(tp->pid());
    if (!pi) return;
    for (int i = 0; i < 2; i++) {
      auto l = find(*pi, lids[i]);
      if (!l) continue;
      if (l->stat == LwpStat::kOnProc) {
        onproc[i]++;
        EXPECT_EQ(l->cpu, 1) << "pinned LWP " << l->lid << " ran on vCPU " << l->cpu;
        EXPECT_EQ(l->lc_curcpu, 1) << "pinned LWP " << l->lid;
      } else {
        EXPECT_EQ(l->lc_curcpu, netbsd::LWPCTL_CPU_NONE);
      }
    }
  });
  EXPECT_TRUE(ok) << "the two LWPs pinned to vCPU 1 were not time-sliced: " << dump(k, tp->pid());
  EXPECT_GT(onproc[0], 0);
  EXPECT_GT(onproc[1], 0);

  // Phase 2: re-pin P to vCPU 0 while it runs.
  phase = 1;
  ASSERT_TRUE(eventually([&] { return moved.load(); }));
  ASSERT_TRUE(tp->await([&](const ProcInfo& pi) {
    auto l = find(pi, P);
    return l && l->stat == LwpStat::kOnProc && l->cpu == 0;
  }, 5s)) << "P never ran on vCPU 0 after re-pinning";
  int p_onproc = 0;
  auto end = Clock::now() + 400ms;
  while (Clock::now() < end) {
    auto pi = k.snapshot_proc(tp->pid());
    ASSERT_TRUE(pi);
    auto p = find(*pi, P), q = find(*pi, Q);
    ASSERT_TRUE(p && q);
    if (p->stat == LwpStat::kOnProc) {
      p_onproc++;
      EXPECT_EQ(p->cpu, 0);
      EXPECT_EQ(p->lc_curcpu, 0);
    }
    if (q->stat == LwpStat::kOnProc) {
      EXPECT_EQ(q->cpu, 1);
      EXPECT_EQ(q->lc_curcpu, 1);
    }
    std::this_thread::yield();
  }
  EXPECT_GT(p_onproc, 0);

  stop = true;
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(k.check_invariants(), "");
}

// ---------------------------------------------------------------------------------------
// 2 vCPUs, 5 s quantum. M spins on vCPU a, S1 on vCPU b; W is created and
// queued on a behind M. When S1 exits, b goes idle and must steal W at once
// (M keeps a for its whole 5 s slice).
TEST(Sched, IdleCpuStealsQueuedWork) {
  KernelConfig cfg = test_config(2);
  cfg.quantum = 5s;
  Kernel k(cfg);

  std::atomic<int> a{-1}, s1_cpu{-1}, w_cpu{-1}, w_queue_cpu{-1}, runq_len_a{-1};
  std::atomic<int> w_stat_queued{0};
  std::atomic<bool> s1_running{false}, s1_exit{false}, w_started{false};
  std::atomic<int64_t> latency_ms{-1};
  std::atomic<uint64_t> steals_before{0}, steals_after{0}, m_sw_before{0}, m_sw_after{0};

  auto tp = TestProc::start(k, [&](U& u) {
    a = self_info(u).cpu;
    lwpid_t s1 = 0, w = 0;
    U_EXPECT_EQ(u, u.create([&](U& s) {
      s1_cpu = self_info(s).cpu;
      s1_running = true;
      U_EXPECT(s, s.spin_until([&] { return s1_exit.load(); }, 20s));
    }, 0, &s1), Errno::kOk);
    // S1 went to the idle vCPU; wait until it actually runs there.
    U_EXPECT(u, u.spin_until([&] { return s1_running.load(); }, 10s));
    U_EXPECT(u, s1_cpu.load() != a.load());
    U_EXPECT_EQ(u, u.create([&](U& wu) {
      w_cpu = self_info(wu).cpu;
      w_started = true;
    }, 0, &w), Errno::kOk);
    // Both vCPUs are busy: W waits in a's run queue.
    if (auto wi = u.proc().lwp_info(w)) w_stat_queued = static_cast<int>(wi->stat);
    auto cpus = k.snapshot_cpus();
    runq_len_a = cpus[a].runq_len;
    const int b = 1 - a;
    steals_before = cpus[b].steals;
    m_sw_before = self_info(u).switches;
    auto t0 = Clock::now();
    s1_exit = true;
    U_EXPECT(u, u.spin_until([&] { return w_started.load(); }, 15s));
    latency_ms = ms_since(t0);
    m_sw_after = self_info(u).switches;
    steals_after = k.snapshot_cpus()[b].steals;
    U_EXPECT_EQ(u, u.wait(s1), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(w), Errno::kOk);
  });
  Finally fin{[&] { s1_exit = true; kill_if_alive(k, *tp); }};

  auto st = tp->wait_exit(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  ASSERT_GE(a.load(), 0);
  EXPECT_EQ(w_stat_queued.load(), static_cast<int>(LwpStat::kRun));
  EXPECT_EQ(runq_len_a.load(), 1) << "W was not queued behind the busy vCPU";
  EXPECT_EQ(w_cpu.load(), 1 - a.load()) << "W should run on the vCPU that went idle";
  EXPECT_LT(latency_ms.load(), 2000) << "W waited for the 5 s time slice instead of being stolen";
  EXPECT_EQ(m_sw_after.load(), m_sw_before.load()) << "M lost its vCPU: W was not stolen";
  EXPECT_GT(steals_after.load(), steals_before.load()) << "CpuInfo.steals not counted on the thief";
  EXPECT_EQ(k.check_invariants(), "");
}

// _sched_setaffinity of a queued LWP moves it between run queues (Scheduler::requeue) under
// the process lock, while vCPUs pop and steal from those queues under their own locks alone.
// Found by fuzz_syscalls: the LWP was stolen between requeue's look at which queue held it and
// its taking that queue's lock, and was then "removed" from a queue it was not in. Four
// LWPs yield without end on two vCPUs (always queued, often popped or stolen) while the main LWP
// changes their affinity back and forth; the run queues must stay consistent throughout.
TEST(Sched, RequeueOfAnLwpBeingStolen) {
  Kernel k(test_config(2));
  std::atomic<bool> stop{false};
  const int rounds = 20000;
  auto tp = TestProc::start(k, [&](U& u) {
    auto yielder = [&](U& y) {
      while (!stop.load()) U_EXPECT_EQ(y, y.err(SchedYieldArgs{}), Errno::kOk);
    };
    lwpid_t y[4] = {};
    for (lwpid_t& l : y) U_EXPECT_EQ(u, u.create(yielder, 0, &l), Errno::kOk);
    const uint64_t masks[] = {0x1, 0x2, 0x0, 0x3};
    for (int i = 0; i < rounds; i++) {
      U_EXPECT_EQ(u, u.err(SchedSetaffinityArgs{.lid = y[i % 4], .mask = masks[(i / 4) % 4]}),
                  Errno::kOk);
      if (i % 1000 == 0) U_EXPECT_EQ(u, k.check_invariants(), "");
    }
    stop = true;
    for (lwpid_t l : y) U_EXPECT_EQ(u, u.wait(l), Errno::kOk);
  });
  Finally fin{[&] { stop = true; kill_if_alive(k, *tp); }};
  auto st = tp->wait_exit(60s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(k.check_invariants(), "");
}

// ---------------------------------------------------------------------------------------
// lwpctl: lc_pctr counts switch-ins (same deltas as LwpInfo.switches),
// lc_curcpu == LwpInfo.cpu while LSONPROC, -1 while off CPU (parked,
// queued), -2 once exited (zombie, not yet collected).
TEST(Sched, LwpctlCountsSwitchesAndTracksCpu) {
  Kernel k(test_config(2));
  std::atomic<bool> has_ctl{false}, parking{false}, go_unpark{false}, done_ops{false}, reap{false};
  std::atomic<int64_t> offset{0};  // switches - lc_pctr, constant after _lwp_ctl
  std::atomic<lwpid_t> L{0};

  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t l = 0;
    U_EXPECT_EQ(u, u.create([&](U& lu) {
      lwpctl(lu);
      LwpInfo i0 = self_info(lu);
      U_EXPECT(lu, i0.stat == LwpStat::kOnProc);
      U_EXPECT(lu, i0.lc_curcpu >= 0);
      U_EXPECT_EQ(lu, i0.lc_curcpu, i0.cpu);
      U_EXPECT_EQ(lu, i0.lc_pctr, 0);  // a fresh slot
      offset = static_cast<int64_t>(i0.switches) - i0.lc_pctr;
      has_ctl = true;
      auto check_step = [&](const LwpInfo& before, const char* what) {
        LwpInfo now = self_info(lu);
        const int64_t dsw = static_cast<int64_t>(now.switches - before.switches);
        const int64_t dpc = now.lc_pctr - before.lc_pctr;
        if (dsw < 1 || dpc != dsw || now.lc_curcpu != now.cpu || now.stat != LwpStat::kOnProc) {
          lu.proc().fail(std::string(what) + ": switches +" + std::to_string(dsw) +
                         ", lc_pctr +" + std::to_string(dpc) + ", lc_curcpu " +
                         std::to_string(now.lc_curcpu) + ", cpu " + std::to_string(now.cpu));
        }
        return now;
      };
      LwpInfo cur = self_info(lu);
      for (int i = 0; i < 5; i++) {
        U_EXPECT_EQ(lu, lu.err(SchedYieldArgs{}), Errno::kOk);
        cur = check_step(cur, "yield");
      }
      for (int i = 0; i < 3; i++) {
        U_EXPECT_EQ(lu, lu.park(Timespec{0, 1'000'000}), Errno::kETIMEDOUT);
        cur = check_step(cur, "timed park");
      }
      parking = true;
      U_EXPECT_EQ(lu, lu.park(), Errno::kOk);  // until M unparks us
      cur = check_step(cur, "park/unpark");
      done_ops = true;
    }, 0, &l), Errno::kOk);
    L = l;
    U_EXPECT(u, u.spin_until([&] { return go_unpark.load(); }, 20s));
    U_EXPECT_EQ(u, u.unpark(l), Errno::kOk);
    U_EXPECT(u, u.spin_until([&] { return reap.load(); }, 20s));
    U_EXPECT_EQ(u, u.wait(l), Errno::kOk);
  });
  Finally fin{[&] { go_unpark = reap = true; kill_if_alive(k, *tp); }};

  // Every observation of L after _lwp_ctl must be consistent.
  int bad = 0;
  auto consistent = [&](const LwpInfo& l) {
    if (!has_ctl.load()) return;
    const bool ok =
        static_cast<int64_t>(l.switches) - l.lc_pctr == offset.load() &&
        (l.stat == LwpStat::kOnProc ? l.lc_curcpu == l.cpu && l.cpu >= 0
         : l.stat == LwpStat::kZomb ? l.lc_curcpu == netbsd::LWPCTL_CPU_EXITED
                                    : l.lc_curcpu == netbsd::LWPCTL_CPU_NONE);
    if (!ok && bad++ < 5) {
      ADD_FAILURE() << "lwp " << l.lid << " " << netbsd::lwp_stat_name(l.stat) << " cpu " << l.cpu
                    << " lc_curcpu " << l.lc_curcpu << " switches " << l.switches << " lc_pctr "
                    << l.lc_pctr << " (offset " << offset.load() << ")";
    }
  };
  auto observe = [&](const std::function<bool(const LwpInfo&)>& pred) {
    return tp->await([&](const ProcInfo& pi) {
      auto l = find(pi, L.load());
      if (!l) return false;
      consistent(*l);
      return pred(*l);
    }, 10s);
  };

  ASSERT_TRUE(eventually([&] { return L.load() != 0; }));
  ASSERT_TRUE(observe([&](const LwpInfo& l) {
    return parking.load() && l.stat == LwpStat::kSleep && l.wchan == "parked";
  }));
  auto parked = tp->lwp_info(L);
  ASSERT_TRUE(parked);
  EXPECT_EQ(parked->lc_curcpu, netbsd::LWPCTL_CPU_NONE);
  EXPECT_GE(parked->lc_pctr, 5 + 3) << "yields and timed parks each switch back in";
  go_unpark = true;
  ASSERT_TRUE(observe([&](const LwpInfo& l) { return l.stat == LwpStat::kZomb; }))
      << "L did not become a zombie";
  auto z = tp->lwp_info(L);
  ASSERT_TRUE(z);
  EXPECT_EQ(z->lc_curcpu, netbsd::LWPCTL_CPU_EXITED);
  EXPECT_GE(z->lc_pctr, parked->lc_pctr + 1) << "a switch-in after the unpark";
  EXPECT_TRUE(done_ops.load());
  reap = true;
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(k.check_invariants(), "");
}

}  // namespace
}  // namespace lwpd::test
