// Sleeping and waking: how an LWP blocks in the kernel without blocking a host thread.
//
// A blocking syscall calls lwp_sleep(), which records the sleep in Lwp::sleep, queues the
// LWP on the process condvar if its kind waits there, arms its deadline, and leaves it
// LSSLEEP (or LSSTOP if its process is stopping). Nothing waits on the host side: every
// later event that may end the sleep calls lwp_wake(l, reason), and the sleep's kind
// decides what that reason means.
//
// A kind is an object (SleepClass below, in the spirit of NetBSD's sync objects): its
// wait channel's name, whether it sleeps on the process condvar, and one `wake` that
// answers every reason -- broadcast, unpark, timeout, _lwp_wakeup, signal, exit, spurious
// -- with the entry's return value (the sleep ends) or nothing (it sleeps on). Adding a
// sleep kind is one class and one table entry; the compiler names every reason a class
// does not answer.
//
// The process condvar (Proc::lwpcv_sleepers) is broadcast lazily: proc_broadcast() marks it
// pending and proc_drain() -- run by DeferringProcLock just before it unlocks -- re-runs the
// sleepers' checks, so no continuation runs while its waker is half-way through a change.

#include <cassert>

#include "emul/callout.h"
#include "emul/kern.h"

namespace lwpd::emul {

using namespace netbsd;

namespace {

std::atomic<uint64_t> g_sleep_seq{0};

// The first pending signal that would interrupt an interruptible sleep.
int lwp_deliverable_signal(const Lwp& l) REQUIRES(l.proc->mu) {
  SigSet s = l.sigpend & ~l.sigmask;
  return s == 0 ? 0 : __builtin_ctzll(s) + 1;
}

// An interruption by a signal: EINTR, or ERESTART for an SA_RESTART handler.
Errno interrupted_by_signal(const Lwp& l) REQUIRES(l.proc->mu) {
  int sig = lwp_deliverable_signal(l);
  return sig ? lwp_sig_error(l, sig) : Errno::kEINTR;
}

void lwp_sleep_dequeue(Lwp& l) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  if (l.sleep.on_lwpcv) p.lwpcv_sleepers.erase(l.cv_it);
  if (l.sleep.deadline) p.kernel().callout().cancel({*l.sleep.deadline, l.sleep.seq});
  l.sleep = Sleep{};
}

// ---- the sleep kinds --------------------------------------------------------------------

// ___lwp_park60: ended by an unpark, its deadline, _lwp_wakeup, a signal or the exit; a
// relative timeout gets the time left written back. Not on the condvar.
class ParkSleep final : public SleepClass {
 public:
  const char* wchan() const override { return "parked"; }
  bool on_lwpcv() const override { return false; }
  std::optional<SysReturn> wake(Lwp& l, WakeReason why) const override REQUIRES(l.proc->mu) {
    SysReturn r;
    switch (why) {
      case WakeReason::kBroadcast:
        return std::nullopt;
      case WakeReason::kUnpark:
      case WakeReason::kSpurious:
        break;
      case WakeReason::kTimeout:
        r.error = Errno::kETIMEDOUT;
        break;
      case WakeReason::kCancel:
        // _lwp_wakeup's flags are consumed by the park they interrupted.
        l.flag &= ~(LW_CANCELLED | LW_UNPARKED);
        r.error = Errno::kEINTR;
        break;
      case WakeReason::kSignal:
      case WakeReason::kExit:
        r.error = Errno::kEINTR;
        break;
    }
    write_back_time_left(l, r, why == WakeReason::kTimeout);
    return r;
  }

 private:
  static void write_back_time_left(const Lwp& l, SysReturn& r, bool timed_out)
      REQUIRES(l.proc->mu) {
    if (!l.sleep.ts_relative || !l.sleep.deadline) return;
    Timespec ts{};
    if (!timed_out) {
      auto left =
          std::chrono::duration_cast<std::chrono::nanoseconds>(*l.sleep.deadline - Clock::now());
      if (left.count() > 0) ts = {left.count() / 1000000000, left.count() % 1000000000};
    }
    r.ts = ts;
  }
};

// _lwp_wait: every broadcast (and anything that is not an interruption) re-runs the scan
// for an LWP to reap; an interruption leaves the wait with EINTR / ERESTART.
class LwpWaitSleep final : public SleepClass {
 public:
  const char* wchan() const override { return "lwpwait"; }
  bool on_lwpcv() const override { return true; }
  std::optional<SysReturn> wake(Lwp& l, WakeReason why) const override REQUIRES(l.proc->mu) {
    switch (why) {
      case WakeReason::kBroadcast:
      case WakeReason::kSpurious:
      case WakeReason::kUnpark:
      case WakeReason::kTimeout:
        return lwp_wait_scan(l);
      case WakeReason::kSignal: {
        const Errno e = interrupted_by_signal(l);
        lwp_wait_leave(l);
        return SysReturn::err(e);
      }
      case WakeReason::kCancel:
        l.flag &= ~LW_CANCELLED;
        lwp_wait_leave(l);
        return SysReturn::err(Errno::kEINTR);
      case WakeReason::kExit:
        lwp_wait_leave(l);
        return SysReturn::err(Errno::kEINTR);
    }
    return std::nullopt;
  }
};

// _lwp_suspend waiting for its target to reach the kernel: a broadcast re-checks; any
// interruption restarts the call (NetBSD maps it to ERESTART).
class SuspendWaitSleep final : public SleepClass {
 public:
  const char* wchan() const override { return "lwpsusp"; }
  bool on_lwpcv() const override { return true; }
  std::optional<SysReturn> wake(Lwp& l, WakeReason why) const override REQUIRES(l.proc->mu) {
    if (why == WakeReason::kBroadcast || why == WakeReason::kSpurious) return lwp_suspend_check(l);
    if (why == WakeReason::kCancel) l.flag &= ~LW_CANCELLED;
    return SysReturn::err(Errno::kERESTART);
  }
};

// exit(2) waiting, uninterruptibly, until it is the last live LWP.
class ExitWaitSleep final : public SleepClass {
 public:
  const char* wchan() const override { return "exit"; }
  bool on_lwpcv() const override { return true; }
  std::optional<SysReturn> wake(Lwp& l, WakeReason why) const override REQUIRES(l.proc->mu) {
    if (why == WakeReason::kBroadcast && l.proc->live_lwps() == 1) return SysReturn{};
    return std::nullopt;
  }
};

// A generic uninterruptible kernel sleep: only a directed wakeup ends it.
class KernelSleep final : public SleepClass {
 public:
  const char* wchan() const override { return "kernel"; }
  bool on_lwpcv() const override { return false; }
  std::optional<SysReturn> wake([[maybe_unused]] Lwp& l, WakeReason why) const override
      REQUIRES(l.proc->mu) {
    if (why == WakeReason::kUnpark) return SysReturn{};
    return std::nullopt;
  }
};

// A tracer's wait(2): every wakeup ends it; unless interrupted it is reissued from the
// user side, which re-examines the tracees without holding this process's lock.
class TraceWaitSleep final : public SleepClass {
 public:
  const char* wchan() const override { return "wait"; }
  bool on_lwpcv() const override { return false; }
  std::optional<SysReturn> wake(Lwp& l, WakeReason why) const override REQUIRES(l.proc->mu) {
    switch (why) {
      case WakeReason::kSignal:
        return SysReturn::err(interrupted_by_signal(l));
      case WakeReason::kCancel:
        l.flag &= ~LW_CANCELLED;
        return SysReturn::err(Errno::kEINTR);
      case WakeReason::kExit:
      case WakeReason::kTimeout:
        return SysReturn::err(Errno::kEINTR);
      case WakeReason::kBroadcast:
      case WakeReason::kUnpark:
      case WakeReason::kSpurious:
        return SysReturn::err(Errno::kEREISSUE);
    }
    return std::nullopt;
  }
};

}  // namespace

const SleepClass& sleep_class(SleepKind k) {
  static const ParkSleep park;
  static const LwpWaitSleep lwp_wait;
  static const SuspendWaitSleep suspend_wait;
  static const ExitWaitSleep exit_wait;
  static const KernelSleep kernel;
  static const TraceWaitSleep trace_wait;
  switch (k) {
    case SleepKind::kPark:
      return park;
    case SleepKind::kLwpWait:
      return lwp_wait;
    case SleepKind::kSuspendWait:
      return suspend_wait;
    case SleepKind::kExitWait:
      return exit_wait;
    case SleepKind::kKernel:
      return kernel;
    case SleepKind::kTraceWait:
      return trace_wait;
    case SleepKind::kNone:
      break;
  }
  assert(!"sleep_class(kNone)");
  return kernel;
}

const char* sleep_wchan(SleepKind k) { return k == SleepKind::kNone ? "" : sleep_class(k).wchan(); }

Errno lwp_sig_error(const Lwp& l, int signo) {
  return (l.proc->sigrestart & sigmask_of(signo)) ? Errno::kERESTART : Errno::kEINTR;
}

std::optional<SysReturn> lwp_sleep(Lwp& l, const SleepSpec& s) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  assert(l.stat == LwpStat::kOnProc && l.in_kernel && l.sleep.kind == SleepKind::kNone);
  assert(s.kind != SleepKind::kNone);
  if (s.interruptible) {
    if (l.flag & LW_CANCELLED) {
      l.flag &= ~LW_CANCELLED;
      return SysReturn::err(Errno::kEINTR);
    }
    if (int sig = lwp_deliverable_signal(l)) return SysReturn::err(lwp_sig_error(l, sig));
    if (l.flag & (LW_WEXIT | LW_WCORE)) return SysReturn::err(Errno::kEINTR);
  }
  l.sleep = Sleep{.kind = s.kind,
                  .interruptible = s.interruptible,
                  .seq = ++g_sleep_seq,
                  .deadline = s.deadline,
                  .target = s.target,
                  .ts_relative = s.ts_relative};
  if (sleep_class(s.kind).on_lwpcv()) {
    p.lwpcv_sleepers.push_back(&l);
    l.cv_it = std::prev(p.lwpcv_sleepers.end());
    l.sleep.on_lwpcv = true;
  }
  if (s.deadline) {
    p.kernel().callout().arm({*s.deadline, l.sleep.seq}, p.weak_from_this(), l.lid);
  }
  if (s.interruptible && (p.sflag & PS_STOPPING)) {
    lwp_set_state(l, LwpStat::kStop);
    proc_stop_check(p);
  } else {
    lwp_set_state(l, LwpStat::kSleep);
  }
  return std::nullopt;
}

void lwp_end_sleep(Lwp& l, SysReturn r) {
  assert(l.sleep.kind != SleepKind::kNone);
  lwp_sleep_dequeue(l);
  l.ret = std::move(r);
  if (l.stat == LwpStat::kSleep) {
    l.kboost = true;
    lwp_set_state(l, LwpStat::kRun);
  }
  // A stopped sleeper stays LSSTOP with its result; it runs once continued.
}

void lwp_wake(Lwp& l, WakeReason why) {
  if (l.sleep.kind == SleepKind::kNone) return;
  assert(l.stat == LwpStat::kSleep || l.stat == LwpStat::kStop);
  if (l.stat == LwpStat::kStop && why == WakeReason::kBroadcast) {
    l.sleep.woken = SysReturn{};  // re-evaluate once continued
    return;
  }
  if (std::optional<SysReturn> r = sleep_class(l.sleep.kind).wake(l, why))
    lwp_end_sleep(l, std::move(*r));
}

void proc_broadcast(Proc& p) { p.lwpcv_pending = true; }

void proc_drain(Proc& p) {
  p.mu.AssertHeld();
  if (p.draining) return;
  p.draining = true;
  while (p.lwpcv_pending) {
    p.lwpcv_pending = false;
    std::vector<lwpid_t> sleepers;
    sleepers.reserve(p.lwpcv_sleepers.size());
    for (Lwp* l : p.lwpcv_sleepers) sleepers.push_back(l->lid);
    for (lwpid_t lid : sleepers) {
      auto it = p.lwps.find(lid);
      if (it == p.lwps.end()) continue;
      Lwp& l = *it->second;
      lwp_assert_locked(l);
      if (l.sleep.on_lwpcv) lwp_wake(l, WakeReason::kBroadcast);
    }
  }
  p.draining = false;
}

void lwp_timeout(const std::shared_ptr<Proc>& p, lwpid_t lid, uint64_t seq) {
  DeferringProcLock g(*p);
  auto it = p->lwps.find(lid);
  if (it == p->lwps.end()) return;
  Lwp& l = *it->second;
  lwp_assert_locked(l);
  if (l.sleep.kind != SleepKind::kNone && l.sleep.seq == seq) lwp_wake(l, WakeReason::kTimeout);
}

}  // namespace lwpd::emul
