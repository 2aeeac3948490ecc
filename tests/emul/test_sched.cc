// Scheduler tests: time slicing, preemption by priority, affinity, idle
// stealing, lwpctl bookkeeping, an idle kernel's CPU use, FIFO/OTHER/RR
// policies and sched_yield. LWPs are real threads (see harness.h); a spinning
// LWP polls for kicks, which is how it gets preempted.
//
// Timing: the host is small and noisy, so every timing bound has a wide
// margin (typically "well under half a quantum of 5 s", or windows of 15
// quanta). Orderings are established with atomics, parks and kernel
// snapshots, never with sleeps; sampling loops only observe.

#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "harness.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using netbsd::Errno;
using netbsd::LwpStat;
using Clock = std::chrono::steady_clock;

// Runs `fn` when leaving the scope (used to end a test's process even when an
// ASSERT bails out early, so no LWP thread outlives the test's variables).
struct Finally {
  std::function<void()> fn;
  ~Finally() {
    if (fn) fn();
  }
};

// Poll `pred` (an observation of atomics or kernel state) until it holds.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s) {
  auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

std::optional<LwpInfo> find(const ProcInfo& pi, lwpid_t lid) {
  for (const auto& l : pi.lwps)
    if (l.lid == lid) return l;
  return std::nullopt;
}

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// The vCPUs' total dispatch count.
uint64_t cpu_switches(Kernel& k) {
  uint64_t n = 0;
  for (auto& c : k.snapshot_cpus()) n += c.switches;
  return n;
}

// A monitoring window: calls `sample` repeatedly for at least `min`, and
// until `enough()` holds (e.g. the vCPUs dispatched N more times). A loaded
// host stretches the window instead of failing the test; a scheduler that
// stops switching never satisfies `enough` and the window fails at `cap`.
bool monitor_window(std::chrono::milliseconds min, const std::function<bool()>& enough,
                    const std::function<void()>& sample, std::chrono::milliseconds cap = 10s) {
  const auto start = Clock::now();
  for (;;) {
    sample();
    const auto el = Clock::now() - start;
    if (el >= min && enough()) return true;
    if (el >= cap) return false;
    std::this_thread::yield();
  }
}

// _lwp_ctl for the calling LWP; returns its slot.
int32_t lwpctl(U& u) {
  SysReturn r = u.sys(LwpCtlArgs{.features = netbsd::LWPCTL_FEATURE_CURCPU |
                                             netbsd::LWPCTL_FEATURE_PCTR});
  U_EXPECT_EQ(u, r.error, Errno::kOk);
  U_EXPECT(u, r.lwpctl_slot >= 0);
  return r.lwpctl_slot;
}

Errno set_affinity(U& u, lwpid_t lid, CpuMask mask) {
  return u.err(SchedSetaffinityArgs{.pid = 0, .lid = lid, .mask = mask});
}

Errno set_param(U& u, lwpid_t lid, int policy, int prio) {
  return u.err(SchedSetparamArgs{.pid = 0, .lid = lid, .policy = policy, .priority = prio});
}

LwpInfo self_info(U& u) {
  auto li = u.proc().lwp_info(u.lid());
  U_EXPECT(u, li.has_value());
  return li.value_or(LwpInfo{});
}

// End the process if it is still alive (after a failed ASSERT) and wait for it.
void kill_if_alive(Kernel& k, TestProc& tp) {
  if (!tp.exited()) {
    (void)k.proc_signal(tp.ref(), netbsd::NB_SIGKILL);
    tp.wait_exit(2s);
  }
}

// Kernel state for failure messages.
std::string dump(Kernel& k, pid_t pid) {
  std::string s;
  if (auto pi = k.snapshot_proc(pid)) {
    s += std::string("proc ") + netbsd::proc_stat_name(pi->stat) + ":";
    for (auto& l : pi->lwps) {
      s += " " + std::to_string(l.lid) + "=" + netbsd::lwp_stat_name(l.stat) + "@" +
           std::to_string(l.cpu) + "/p" + std::to_string(l.priority) + "/sw" +
           std::to_string(l.switches) + (l.in_kernel ? "/k" : "/u");
      if (!l.wchan.empty()) s += "(" + l.wchan + ")";
    }
  }
  for (auto& c : k.snapshot_cpus()) {
    s += "; cpu" + std::to_string(c.index) + " cur=" + std::to_string(c.cur_lid) + " prio=" +
         std::to_string(c.cur_priority) + " runq=" + std::to_string(c.runq_len) +
         " sw=" + std::to_string(c.switches) + " pre=" + std::to_string(c.preemptions);
  }
  return s;
}

// _lwp_create with LWP_SUSPENDED, then _lwp_continue once the harness has
// spawned the new LWP's host thread. (U::create spawns the thread only after
// the creator's syscall returns: a creator preempted at that return would
// leave the new LWP "running user code" on a vCPU with no thread to run it or
// to answer kicks, and the vCPU would never be given back.)
Errno start_lwp(U& u, std::function<void(U&)> fn, uint64_t flags, lwpid_t* lid) {
  lwpid_t l = 0;
  Errno e = u.create(std::move(fn), flags | netbsd::LWP_SUSPENDED, &l);
  if (e != Errno::kOk) return e;
  if (lid != nullptr) *lid = l;
  return u.err(LwpContinueArgs{.target = l});
}

std::string first_failure(TestProc& tp) {
  auto f = tp.failures();
  return f.empty() ? "" : f.front() + (f.size() > 1 ? " (+" + std::to_string(f.size() - 1) + " more)" : "");
}

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
