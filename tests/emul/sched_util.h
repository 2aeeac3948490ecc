// What the scheduler tests share (test_sched.cc: time slicing, preemption by priority,
// affinity, idle stealing, lwpctl bookkeeping; test_sched_policy.cc: an idle kernel's CPU
// use, FIFO/OTHER/RR policies and sched_yield). LWPs are real threads (see harness.h); a spinning
// LWP polls for kicks, which is how it gets preempted.
//
// Timing: the host is small and noisy, so every timing bound has a wide
// margin (typically "well under half a quantum of 5 s", or windows of 15
// quanta). Orderings are established with atomics, parks and kernel
// snapshots, never with sleeps; sampling loops only observe.

#pragma once

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

#include <gtest/gtest.h>

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
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s) {
  auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

inline std::optional<LwpInfo> find(const ProcInfo& pi, lwpid_t lid) {
  for (const auto& l : pi.lwps)
    if (l.lid == lid) return l;
  return std::nullopt;
}

inline int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// The vCPUs' total dispatch count.
inline uint64_t cpu_switches(Kernel& k) {
  uint64_t n = 0;
  for (auto& c : k.snapshot_cpus()) n += c.switches;
  return n;
}

// A monitoring window: calls `sample` repeatedly for at least `min`, and
// until `enough()` holds (e.g. the vCPUs dispatched N more times). A loaded
// host stretches the window instead of failing the test; a scheduler that
// stops switching never satisfies `enough` and the window fails at `cap`.
inline bool monitor_window(std::chrono::milliseconds min, const std::function<bool()>& enough,
                           const std::function<void()>& sample,
                           std::chrono::milliseconds cap = 10s) {
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
inline int32_t lwpctl(U& u) {
  SysReturn r =
      u.sys(LwpCtlArgs{.features = netbsd::LWPCTL_FEATURE_CURCPU | netbsd::LWPCTL_FEATURE_PCTR});
  U_EXPECT_EQ(u, r.error, Errno::kOk);
  U_EXPECT(u, r.lwpctl_slot >= 0);
  return r.lwpctl_slot;
}

inline Errno set_affinity(U& u, lwpid_t lid, CpuMask mask) {
  return u.err(SchedSetaffinityArgs{.pid = 0, .lid = lid, .mask = mask});
}

inline Errno set_param(U& u, lwpid_t lid, int policy, int prio) {
  return u.err(SchedSetparamArgs{.pid = 0, .lid = lid, .policy = policy, .priority = prio});
}

inline LwpInfo self_info(U& u) {
  auto li = u.proc().lwp_info(u.lid());
  U_EXPECT(u, li.has_value());
  return li.value_or(LwpInfo{});
}

// End the process if it is still alive (after a failed ASSERT) and wait for it.
inline void kill_if_alive(Kernel& k, TestProc& tp) {
  if (!tp.exited()) {
    // A daemon replaying a schedule record refuses signals from outside (EBUSY); a client's
    // death it always takes.
    if (k.proc_signal(tp.ref(), netbsd::NB_SIGKILL).error() == Errno::kEBUSY)
      k.proc_abandon(tp.ref());
    tp.wait_exit(2s);
  }
}

// Kernel state for failure messages.
inline std::string dump(Kernel& k, pid_t pid) {
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
    s += "; cpu" + std::to_string(c.index) + " cur=" + std::to_string(c.cur_lid) +
         " prio=" + std::to_string(c.cur_priority) + " runq=" + std::to_string(c.runq_len) +
         " sw=" + std::to_string(c.switches) + " pre=" + std::to_string(c.preemptions);
  }
  return s;
}

// _lwp_create with LWP_SUSPENDED, then _lwp_continue once the harness has
// spawned the new LWP's host thread. (U::create spawns the thread only after
// the creator's syscall returns: a creator preempted at that return would
// leave the new LWP "running user code" on a vCPU with no thread to run it or
// to answer kicks, and the vCPU would never be given back.)
inline Errno start_lwp(U& u, std::function<void(U&)> fn, uint64_t flags, lwpid_t* lid) {
  lwpid_t l = 0;
  Errno e = u.create(std::move(fn), flags | netbsd::LWP_SUSPENDED, &l);
  if (e != Errno::kOk) return e;
  if (lid != nullptr) *lid = l;
  return u.err(LwpContinueArgs{.target = l});
}

inline std::string first_failure(TestProc& tp) {
  auto f = tp.failures();
  return f.empty()
             ? ""
             : f.front() + (f.size() > 1 ? " (+" + std::to_string(f.size() - 1) + " more)" : "");
}

}  // namespace
}  // namespace lwpd::test
