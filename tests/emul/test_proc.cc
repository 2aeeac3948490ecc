// Process lifecycle tests: stop/continue (semantics §4.2) and process exit by
// exit(2) or SIGKILL (§4.3), with LWPs spinning, parked, suspended and
// waiting. Orderings use atomics and kernel snapshots; sampling windows only
// observe that nothing moves while it must not.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "harness.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using netbsd::Errno;
using netbsd::LwpStat;
using netbsd::ProcStat;
using Clock = std::chrono::steady_clock;

struct Finally {
  std::function<void()> fn;
  ~Finally() {
    if (fn) fn();
  }
};

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s) {
  auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

// Observe for `d` that `pred` holds at every sample (a monitoring window).
bool holds_for(const std::function<bool()>& pred, std::chrono::milliseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) {
    if (!pred()) return false;
    std::this_thread::yield();
  }
  return pred();
}

std::optional<LwpInfo> find(const ProcInfo& pi, lwpid_t lid) {
  for (const auto& l : pi.lwps)
    if (l.lid == lid) return l;
  return std::nullopt;
}

bool is(const ProcInfo& pi, lwpid_t lid, LwpStat st, const char* wchan = nullptr) {
  auto l = find(pi, lid);
  return l && l->stat == st && (wchan == nullptr || l->wchan == wchan);
}

std::string describe(const ProcInfo& pi) {
  std::string s = std::string("proc ") + netbsd::proc_stat_name(pi.stat) + ":";
  for (auto& l : pi.lwps) {
    s += " " + std::to_string(l.lid) + "=" + netbsd::lwp_stat_name(l.stat);
    if (!l.wchan.empty()) s += "(" + l.wchan + ")";
  }
  return s;
}

std::string describe(Kernel& k, pid_t pid) {
  auto pi = k.snapshot_proc(pid);
  return pi ? describe(*pi) : std::string("(no such process)");
}

void kill_if_alive(Kernel& k, TestProc& tp) {
  if (!tp.exited()) {
    (void)k.proc_signal(tp.ref(), netbsd::NB_SIGKILL);
    tp.wait_exit(2s);
  }
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
// SIGSTOP stops spinning LWPs (at their next kernel entry), parked and waiting
// ones (LSSTOP at once) and leaves a suspended one LSSUSPENDED; nothing runs
// user code until SIGCONT, after which the spinners advance again and the
// sleepers sleep on.
TEST(Proc, StopAndContinue) {
  Kernel k(test_config(2));
  ASSERT_TRUE(eventually([] { return user_counter().now.load() == 0; }, 2s))
      << "another process is still running user code";
  std::array<std::atomic<uint64_t>, 2> cnt{};
  std::atomic<bool> stop{false}, pk_exit{false}, setup{false};
  std::atomic<int> pk_returns{0}, pk_parks{0};
  std::atomic<lwpid_t> s1{0}, s2{0}, pk{0}, su{0};

  auto tp = TestProc::start(k, [&](U& u) {
    auto spinner = [&](int i) {
      return [&, i](U& s) {
        U_EXPECT(s, s.spin_until([&] {
          cnt[i].fetch_add(1, std::memory_order_relaxed);
          return stop.load();
        }, 30s));
      };
    };
    lwpid_t l = 0;
    U_EXPECT_EQ(u, start_lwp(u, spinner(0), 0, &l), Errno::kOk);
    s1 = l;
    U_EXPECT_EQ(u, start_lwp(u, spinner(1), 0, &l), Errno::kOk);
    s2 = l;
    U_EXPECT_EQ(u, start_lwp(u, [&](U& p) {
      while (!pk_exit.load()) {
        pk_parks++;
        p.park();
        pk_returns++;
      }
    }, 0, &l), Errno::kOk);
    pk = l;
    U_EXPECT_EQ(u, start_lwp(u, [&](U& s) {
      U_EXPECT(s, s.spin_until([&] { return stop.load(); }, 30s));
    }, 0, &l), Errno::kOk);
    su = l;
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = su}), Errno::kOk);
    setup = true;
    U_EXPECT_EQ(u, u.wait(s1), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(s2), Errno::kOk);
    U_EXPECT_EQ(u, u.err(LwpContinueArgs{.target = su}), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(su), Errno::kOk);
    pk_exit = true;
    U_EXPECT_EQ(u, u.unpark(pk), Errno::kOk);
    U_EXPECT_EQ(u, u.wait(pk), Errno::kOk);
  });
  Finally fin{[&] { stop = pk_exit = true; kill_if_alive(k, *tp); }};

  const lwpid_t M = tp->pid();
  ASSERT_TRUE(eventually([&] { return setup.load(); }));
  ASSERT_TRUE(tp->await([&](const ProcInfo& pi) {
    return is(pi, pk, LwpStat::kSleep, "parked") && is(pi, su, LwpStat::kSuspended) &&
           is(pi, M, LwpStat::kSleep, "lwpwait");
  })) << describe(k, M);
  {
    uint64_t c0 = cnt[0], c1 = cnt[1];
    ASSERT_TRUE(eventually([&] { return cnt[0] > c0 && cnt[1] > c1; })) << "spinners not running";
  }

  // ---- stop ----
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGSTOP).ok());
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) { return pi.stat == ProcStat::kStop; }, 5s))
      << "process never reached SSTOP: " << describe(k, M);
  auto pi = k.snapshot_proc(M);
  ASSERT_TRUE(pi);
  EXPECT_EQ(pi->nrlwps, 0);
  for (auto& l : pi->lwps) {
    EXPECT_TRUE(l.stat == LwpStat::kStop || l.stat == LwpStat::kSuspended)
        << "lwp " << l.lid << " is " << netbsd::lwp_stat_name(l.stat);
  }
  EXPECT_TRUE(is(*pi, s1, LwpStat::kStop));
  EXPECT_TRUE(is(*pi, s2, LwpStat::kStop));
  EXPECT_TRUE(is(*pi, pk, LwpStat::kStop, "parked")) << "a stopped sleeper keeps its sleep";
  EXPECT_TRUE(is(*pi, M, LwpStat::kStop, "lwpwait"));
  EXPECT_TRUE(is(*pi, su, LwpStat::kSuspended));
  EXPECT_EQ(user_counter().now.load(), 0) << "a thread runs user code in a stopped process";
  const uint64_t c0 = cnt[0], c1 = cnt[1];
  const int returns = pk_returns;
  EXPECT_TRUE(holds_for([&] {
    return cnt[0] == c0 && cnt[1] == c1 && pk_returns == returns &&
           user_counter().now.load() == 0;
  }, 250ms)) << "something ran while the process was stopped";
  EXPECT_EQ(k.check_invariants(), "");
  // A second SIGSTOP changes nothing.
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGSTOP).ok());
  EXPECT_EQ(k.snapshot_proc(M)->stat, ProcStat::kStop);

  // ---- continue ----
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGCONT).ok());
  EXPECT_TRUE(eventually([&] { return cnt[0] > c0 && cnt[1] > c1; }))
      << "spinners did not resume: " << describe(k, M);
  ASSERT_TRUE(tp->await([&](const ProcInfo& pi) {
    return pi.stat == ProcStat::kActive && is(pi, M, LwpStat::kSleep, "lwpwait") &&
           is(pi, su, LwpStat::kSuspended) && is(pi, pk, LwpStat::kSleep, "parked");
  })) << describe(k, M);
  EXPECT_EQ(k.check_invariants(), "");

  stop = true;
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value()) << describe(k, M);
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->code, 0);
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(k.check_invariants(), "");
}

// A park timeout that fires while the process is stopped ends the sleep but
// leaves the LWP LSSTOP; only SIGCONT lets it return (ETIMEDOUT).
TEST(Proc, ParkTimeoutWhileStoppedWaitsForContinue) {
  Kernel k(test_config(2));
  std::atomic<bool> continued{false}, returned{false}, returned_before_cont{false};
  std::atomic<Errno> err{Errno::kOk};
  std::atomic<bool> ts_zero{false};
  std::atomic<lwpid_t> pk{0};

  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t l = 0;
    U_EXPECT_EQ(u, start_lwp(u, [&](U& p) {
      SysReturn r;
      p.park(Timespec{0, 500'000'000}, 0, 0, netbsd::NB_CLOCK_MONOTONIC, &r);
      returned_before_cont = !continued.load();
      err = r.error;
      ts_zero = r.ts.has_value() && *r.ts == Timespec{0, 0};
      returned = true;
    }, 0, &l), Errno::kOk);
    pk = l;
    U_EXPECT_EQ(u, u.wait(l), Errno::kOk);
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  const lwpid_t M = tp->pid();

  ASSERT_TRUE(tp->await([&](const ProcInfo& pi) {
    return pk != 0 && is(pi, pk, LwpStat::kSleep, "parked") && is(pi, M, LwpStat::kSleep);
  })) << describe(k, M);
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGSTOP).ok());
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) { return pi.stat == ProcStat::kStop; }))
      << describe(k, M);
  EXPECT_TRUE(is(*k.snapshot_proc(M), pk, LwpStat::kStop, "parked")) << describe(k, M);
  // The timeout fires: the sleep ends (no wait channel), the LWP stays stopped.
  ASSERT_TRUE(tp->await([&](const ProcInfo& pi) {
    auto l = find(pi, pk);
    return !l || l->wchan.empty() || returned.load();
  }, 5s));
  EXPECT_TRUE(is(*k.snapshot_proc(M), pk, LwpStat::kStop, "")) << describe(k, M);
  EXPECT_TRUE(holds_for([&] {
    auto pi = k.snapshot_proc(M);
    return !returned.load() && pi && pi->stat == ProcStat::kStop && is(*pi, pk, LwpStat::kStop);
  }, 150ms)) << "the timed-out LWP ran while stopped: " << describe(k, M);
  EXPECT_EQ(k.check_invariants(), "");

  continued = true;
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGCONT).ok());
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value()) << describe(k, M);
  EXPECT_TRUE(returned.load());
  EXPECT_FALSE(returned_before_cont.load());
  EXPECT_EQ(err.load(), Errno::kETIMEDOUT);
  EXPECT_TRUE(ts_zero.load()) << "a timed-out relative park writes back 0";
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(k.check_invariants(), "");
}

// An LWP created while the process is stopping does not run before SIGCONT (it
// waits as an embryo for its stopped creator; NetBSD makes it LSSTOP). Named
// after the NetBSD rule it adapts. It runs only
// after SIGCONT. The creator is running user code that has not yet reached a
// preemption point when the stop is posted, and then calls _lwp_create (the
// race NetBSD has between a stop signal and a syscall already on its way).
TEST(Proc, LwpCreatedWhileStoppingStartsStopped) {
  Kernel k(test_config(2));
  std::atomic<bool> stop_posted{false}, n_ran{false}, ran_before_cont{false}, continued{false};
  std::atomic<lwpid_t> n{0};
  std::atomic<Errno> create_err{Errno::kEFAULT};

  auto tp = TestProc::start(k, [&](U& u) {
    // Plain user code: no poll(), so the stop's kick is not noticed here.
    auto end = Clock::now() + 20s;
    while (!stop_posted.load() && Clock::now() < end) {
    }
    U_EXPECT(u, stop_posted.load());
    lwpid_t l = 0;
    create_err = u.create([&](U&) {
      ran_before_cont = !continued.load();
      n_ran = true;
    }, 0, &l);
    n = l;
    U_EXPECT_EQ(u, u.wait(l), Errno::kOk);
  });
  Finally fin{[&] { stop_posted = true; kill_if_alive(k, *tp); }};
  const lwpid_t M = tp->pid();

  ASSERT_TRUE(tp->await([&](const ProcInfo& pi) {
    return is(pi, M, LwpStat::kOnProc) && !find(pi, M)->in_kernel;
  }));
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGSTOP).ok());
  // M runs user code, so the process is stopping, not yet stopped.
  EXPECT_NE(k.snapshot_proc(M)->stat, ProcStat::kStop);
  stop_posted = true;
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) {
    return pi.stat == ProcStat::kStop && pi.lwps.size() == 2;
  }, 5s)) << describe(k, M);
  auto pi = k.snapshot_proc(M);
  ASSERT_TRUE(pi);
  const LwpInfo& nl = pi->lwps.front();  // newest first
  EXPECT_NE(nl.lid, M);
  // NetBSD starts it inside _lwp_create, so it goes LSIDL -> LSSTOP (§3.1
  // step 8). lwpd starts a new LWP only when its creator's return is
  // delivered (README, compatibility notes: the user side cannot run an LWP
  // whose LID it does not know yet), so while the creator is stopped at that
  // return the new LWP is still an embryo, and it must not hold up the stop.
  EXPECT_EQ(std::string(netbsd::lwp_stat_name(nl.stat)), netbsd::lwp_stat_name(LwpStat::kIdl))
      << describe(*pi);
  EXPECT_EQ(nl.switches, 0u) << "the new LWP ran before the process was continued";
  EXPECT_TRUE(is(*pi, M, LwpStat::kStop)) << describe(*pi);
  EXPECT_TRUE(holds_for([&] { return !n_ran.load(); }, 150ms));
  EXPECT_EQ(k.check_invariants(), "");

  continued = true;
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGCONT).ok());
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value()) << describe(k, M);
  EXPECT_EQ(create_err.load(), Errno::kOk);
  EXPECT_EQ(n.load(), nl.lid);
  EXPECT_TRUE(n_ran.load());
  EXPECT_FALSE(ran_before_cont.load());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_EQ(k.check_invariants(), "");
}

// ---------------------------------------------------------------------------------------
// Process exit with LWPs in every kind of state.

struct Zoo {
  // LWPs: parked (no timeout), parked with a long timeout, spinning, suspended,
  // waiting in _lwp_wait. None of their blocked calls may ever return.
  std::atomic<int> returned{0};
  std::atomic<uint64_t> spin{0};
  std::atomic<bool> ready{false};
  std::atomic<lwpid_t> pk{0}, pt{0}, sp{0}, su{0}, wt{0};
  static constexpr int kThreads = 6;  // the five above and the main LWP

  // Called by the main LWP; returns once everything is in place.
  void build(U& u) {
    lwpid_t l = 0;
    U_EXPECT_EQ(u, start_lwp(u, [this](U& p) {
      p.park();
      returned++;
      p.proc().fail("park returned");
    }, 0, &l), Errno::kOk);
    pk = l;
    U_EXPECT_EQ(u, start_lwp(u, [this](U& p) {
      p.park(Timespec{20, 0});
      returned++;
      p.proc().fail("timed park returned");
    }, 0, &l), Errno::kOk);
    pt = l;
    U_EXPECT_EQ(u, start_lwp(u, [this](U& s) {
      s.spin_until([&] {
        spin.fetch_add(1, std::memory_order_relaxed);
        return false;
      }, 30s);
      returned++;
      s.proc().fail("spinner returned");
    }, 0, &l), Errno::kOk);
    sp = l;
    U_EXPECT_EQ(u, start_lwp(u, [this](U& s) {
      s.spin_until([] { return false; }, 30s);
      returned++;
      s.proc().fail("suspended spinner returned");
    }, 0, &l), Errno::kOk);
    su = l;
    U_EXPECT_EQ(u, u.err(LwpSuspendArgs{.target = su}), Errno::kOk);
    U_EXPECT_EQ(u, start_lwp(u, [this](U& w) {
      w.wait(pk);
      returned++;
      w.proc().fail("_lwp_wait returned");
    }, 0, &l), Errno::kOk);
    wt = l;
    ready = true;
  }

  // Test thread: wait until every LWP is where it should be.
  bool settled(TestProc& tp) {
    if (!eventually([&] { return ready.load(); })) return false;
    if (!tp.await([&](const ProcInfo& pi) {
          return is(pi, pk, LwpStat::kSleep, "parked") && is(pi, pt, LwpStat::kSleep, "parked") &&
                 is(pi, su, LwpStat::kSuspended) && is(pi, wt, LwpStat::kSleep, "lwpwait");
        }))
      return false;
    uint64_t s0 = spin;
    return eventually([&] { return spin > s0; });
  }
};

void check_gone(Kernel& k, TestProc& tp, int nthreads) {
  EXPECT_TRUE(eventually([&] { return tp.finished_threads() == nthreads; }))
      << tp.finished_threads() << " of " << nthreads << " LWP threads finished";
  auto pi = k.snapshot_proc(tp.pid());
  ASSERT_TRUE(pi) << "released too early";
  EXPECT_EQ(pi->stat, ProcStat::kZomb);
  EXPECT_EQ(pi->nlwps, 0);
  EXPECT_TRUE(pi->lwps.empty()) << describe(*pi);
  EXPECT_EQ(k.check_invariants(), "");
  EXPECT_TRUE(eventually([&] {
    for (auto& c : k.snapshot_cpus())
      if (c.cur_pid == tp.pid() || c.runq_len != 0) return false;
    return true;
  })) << "a vCPU still holds an LWP of the exited process";
  // Signals to a dead process fail; release frees the PID.
  EXPECT_EQ(k.proc_signal(tp.ref(), netbsd::NB_SIGKILL).error(), Errno::kESRCH);
  ASSERT_TRUE(k.proc_release(tp.ref()).ok());
  for (auto& p : k.snapshot_procs()) EXPECT_NE(p.pid, tp.pid());
  EXPECT_EQ(k.proc_lookup(tp.pid()), nullptr);
  EXPECT_FALSE(k.snapshot_proc(tp.pid()).has_value());
  EXPECT_EQ(k.check_invariants(), "");
}

// exit(2) from the main LWP while the others park, spin, are suspended or wait.
TEST(Proc, ExitFromOneLwpEndsAllOthers) {
  Kernel k(test_config(2));
  Zoo z;
  std::atomic<bool> go{false};
  auto tp = TestProc::start(k, [&](U& u) {
    z.build(u);
    U_EXPECT(u, u.spin_until([&] { return go.load(); }, 30s));
    u.sys(ProcExitArgs{.status = 42});
    z.returned++;
    u.proc().fail("exit returned");
  });
  Finally fin{[&] { go = true; kill_if_alive(k, *tp); }};
  ASSERT_TRUE(z.settled(*tp)) << describe(k, tp->pid());
  EXPECT_EQ(k.proc_release(tp->ref()).error(), Errno::kEBUSY);
  go = true;
  auto st = tp->wait_exit(5s);
  ASSERT_TRUE(st.has_value()) << "process did not exit: " << describe(k, tp->pid());
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->code, 42);
  check_gone(k, *tp, Zoo::kThreads);
  EXPECT_EQ(z.returned.load(), 0);
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
}

// exit(2) while another LWP is also in exit-ish territory: the process's
// status is that of the first exit(2); a second LWP calling exit(2) at about
// the same time never returns either.
TEST(Proc, TwoLwpsCallExit) {
  Kernel k(test_config(2));
  std::atomic<bool> go{false};
  std::atomic<int> returned{0};
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t l = 0;
    U_EXPECT_EQ(u, start_lwp(u, [&](U& c) {
      U_EXPECT(c, c.spin_until([&] { return go.load(); }, 30s));
      c.sys(ProcExitArgs{.status = 7});
      returned++;
    }, 0, &l), Errno::kOk);
    U_EXPECT(u, u.spin_until([&] { return go.load(); }, 30s));
    u.sys(ProcExitArgs{.status = 7});
    returned++;
  });
  Finally fin{[&] { go = true; kill_if_alive(k, *tp); }};
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) { return pi.lwps.size() == 2; }));
  go = true;
  auto st = tp->wait_exit(5s);
  ASSERT_TRUE(st.has_value()) << "process did not exit: " << describe(k, tp->pid());
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->code, 7);
  check_gone(k, *tp, 2);
  EXPECT_EQ(returned.load(), 0);
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
}

// SIGKILL from outside with the same cast of LWPs (the main one waiting too).
TEST(Proc, SigkillFromOutsideEndsAllLwps) {
  Kernel k(test_config(2));
  Zoo z;
  auto tp = TestProc::start(k, [&](U& u) {
    z.build(u);
    u.wait(z.sp);
    z.returned++;
    u.proc().fail("main's _lwp_wait returned");
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  ASSERT_TRUE(z.settled(*tp)) << describe(k, tp->pid());
  ASSERT_TRUE(tp->await([&](const ProcInfo& pi) {
    return is(pi, tp->pid(), LwpStat::kSleep, "lwpwait");
  }));
  EXPECT_EQ(k.proc_release(tp->ref()).error(), Errno::kEBUSY);
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGKILL).ok());
  auto st = tp->wait_exit(5s);
  ASSERT_TRUE(st.has_value()) << "process did not exit: " << describe(k, tp->pid());
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->code, netbsd::NB_SIGKILL);
  check_gone(k, *tp, Zoo::kThreads);
  EXPECT_EQ(z.returned.load(), 0);
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
}

// SIGKILL ends a stopped process too, including its stopped sleepers.
TEST(Proc, SigkillEndsStoppedProcess) {
  Kernel k(test_config(2));
  Zoo z;
  auto tp = TestProc::start(k, [&](U& u) {
    z.build(u);
    u.wait(z.sp);
    z.returned++;
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  ASSERT_TRUE(z.settled(*tp)) << describe(k, tp->pid());
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGSTOP).ok());
  ASSERT_TRUE(tp->await([](const ProcInfo& pi) { return pi.stat == ProcStat::kStop; }))
      << describe(k, tp->pid());
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGKILL).ok());
  auto st = tp->wait_exit(3s);
  ASSERT_TRUE(st.has_value()) << "stopped process did not die: " << describe(k, tp->pid());
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->code, netbsd::NB_SIGKILL);
  check_gone(k, *tp, Zoo::kThreads);
  EXPECT_EQ(z.returned.load(), 0);
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
}

// The last LWP leaving with _lwp_exit ends the process with status 0, and the
// process can then be released.
TEST(Proc, LastLwpExitEndsProcess) {
  Kernel k(test_config(2));
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t l = 0;
    U_EXPECT_EQ(u, u.create([](U&) {}, netbsd::LWP_DETACHED, &l), Errno::kOk);
    u.lwp_exit();  // the detached child may still run; the process ends with the last one
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  auto st = tp->wait_exit(5s);
  ASSERT_TRUE(st.has_value()) << describe(k, tp->pid());
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->code, 0);
  check_gone(k, *tp, 2);
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
}

}  // namespace
}  // namespace lwpd::test
