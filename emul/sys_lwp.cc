// The syscall layer: decode and validate arguments, resolve IDs to LWPs, call
// the core (kern_lwp.cc). Each function runs with the caller's process lock
// held, the caller LSONPROC in the kernel. Comments list the errors as NetBSD
// returns them (../shared/netbsd-lwp-semantics.md §3).

#include <cassert>
#include <cstring>

#include "emul/callout.h"
#include "emul/kern.h"
#include "emul/sched.h"

namespace lwpd::emul {

using namespace netbsd;

namespace {

using std::chrono::nanoseconds;

// ---- exit(2) ---------------------------------------------------------------------
Outcome sys_proc_exit(Lwp& l, const ProcExitArgs& a) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  if (p.sflag & PS_WEXIT) {
    // Someone else is already taking the process down: just go.
    lwp_exit(l);
    return Outcome::gone();
  }
  proc_exit_begin(p, ExitStatus{.code = a.status & 0xff}, &l);
  if (p.live_lwps() == 1) {
    lwp_exit(l);
    return Outcome::gone();
  }
  // Everyone else exits at their next userret; wait for them uninterruptibly.
  auto r = lwp_sleep(l, SleepSpec{.kind = SleepKind::kExitWait, .interruptible = false});
  assert(!r);
  return Outcome::blocked();
}

// ---- _lwp_create: EINVAL (ucontext), EAGAIN (RLIMIT_NTHR), EFAULT (new_lwp) --------
Outcome sys_lwp_create(Lwp& l, const LwpCreateArgs& a) REQUIRES(l.proc->mu) {
  if (!(a.uc_flags & UC_CPU)) return Outcome::error(Errno::kEINVAL);
  // amd64 cpu_mcontext_validate: the static RFLAGS bits and the PC range.
  if ((a.rflags & PSL_USERSTATIC) != PSL_MBO) return Outcome::error(Errno::kEINVAL);
  if (a.pc >= VM_MAXUSER_ADDRESS) return Outcome::error(Errno::kEINVAL);
  const SigSet mask = (a.uc_flags & UC_SIGMASK) ? a.sigmask : l.sigmask;
  const uint64_t priv = (a.uc_flags & UC_TLSBASE) ? a.tls_base : 0;
  auto created = lwp_create(*l.proc, &l, a.flags, mask, priv);
  if (!created.ok()) return Outcome::error(created.error());
  Lwp* nl = created.value();
  lwp_assert_locked(*nl);
  if (!a.lid_out_ok) {
    // The new LID cannot be copied out: the embryo never runs.
    lwp_free(*nl);
    return Outcome::error(Errno::kEFAULT);
  }
  // Started when this return reaches the user side (lwp_userret).
  assert(l.pending_child == nullptr);
  l.pending_child = nl;
  l.pending_child_flags = a.flags;
  return Outcome::of(SysReturn::ok(nl->lid));
}

Outcome sys_lwp_exit(Lwp& l, const LwpExitArgs&) REQUIRES(l.proc->mu) {
  // A traced process reports the exit first: userret stops, then exits.
  if (trace_lwp_exit(l)) return Outcome::of(SysReturn{});
  lwp_exit(l);
  return Outcome::gone();
}

Outcome sys_lwp_self(Lwp& l, const LwpSelfArgs&) REQUIRES(l.proc->mu) {
  return Outcome::of(SysReturn::ok(l.lid));
}

// ---- _lwp_wait: ESRCH, EINVAL (detached), EDEADLK, EINTR/ERESTART -----------------
Outcome sys_lwp_wait(Lwp& l, const LwpWaitArgs& a) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  p.nlwpwait++;
  l.in_lwpwait = true;
  l.waitingfor = a.wait_for;
  if (auto r = lwp_wait_scan(l)) return Outcome::of(std::move(*r));
  if (auto r = lwp_sleep(l, SleepSpec{.kind = SleepKind::kLwpWait})) {
    lwp_wait_leave(l);
    return Outcome::of(std::move(*r));
  }
  return Outcome::blocked();
}

// ---- _lwp_suspend: ESRCH, EDEADLK, ERESTART ---------------------------------------
}  // namespace

// Shared with the admin path (Kernel::lwp_suspend_ext), where `caller` is nullptr.
void lwp_suspend_arm(Lwp& t, const Lwp* caller) {
  t.flag |= LW_WSUSPEND;
  switch (t.stat) {
    case LwpStat::kOnProc:
      lwp_kick(t);
      break;
    case LwpStat::kSleep:
      // An interruptible sleeper wakes spuriously and suspends at userret.
      if (t.sleep.interruptible && &t != caller) lwp_wake(t, WakeReason::kSpurious);
      break;
    case LwpStat::kStop:
      // It runs briefly in the kernel to suspend itself. A stopped sleeper is
      // woken first; one whose sleep goes on (an _lwp_wait with nothing to
      // collect) stays stopped and suspends after it returns.
      if (t.sleep.kind != SleepKind::kNone) lwp_wake(t, WakeReason::kSpurious);
      if (t.sleep.kind == SleepKind::kNone) lwp_set_state(t, LwpStat::kRun);
      break;
    default:
      break;
  }
}

namespace {

Outcome sys_lwp_suspend(Lwp& l, const LwpSuspendArgs& a) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  Lwp* t = p.find_lwp(a.target);
  if (t == nullptr) return Outcome::error(Errno::kESRCH);
  lwp_assert_locked(*t);
  if ((t == &l && p.nrlwps == 1) || (l.flag & (LW_WCORE | LW_WEXIT))) {
    return Outcome::error(Errno::kEDEADLK);
  }
  if (t->flag & LW_DBGSUSPEND) return Outcome::of({});
  lwp_suspend_arm(*t, &l);
  if (t->stat == LwpStat::kSuspended) return Outcome::of({});
  auto r = lwp_sleep(l, SleepSpec{.kind = SleepKind::kSuspendWait, .target = t->lid});
  if (r) {
    if (r->error == Errno::kEINTR) r->error = Errno::kERESTART;
    return Outcome::of(std::move(*r));
  }
  return Outcome::blocked();
}

}  // namespace

// _lwp_continue's body, shared with the admin path (Kernel::lwp_continue_ext).
void lwp_continue_target(Lwp& t) {
  if (t.flag & LW_WREBOOT) return;
  const bool armed = t.flag & LW_WSUSPEND;
  t.flag &= ~LW_WSUSPEND;
  if (t.stat == LwpStat::kSuspended && !(t.flag & LW_DBGSUSPEND)) {
    lwp_set_state(t, LwpStat::kRun);
    proc_broadcast(*t.proc);
  } else if (armed) {
    // Suspenders (and a self-suspended caller) re-check now rather than at
    // some unrelated later broadcast.
    proc_broadcast(*t.proc);
  }
}

namespace {

// ---- _lwp_continue: ESRCH ----------------------------------------------------------
Outcome sys_lwp_continue(Lwp& l, const LwpContinueArgs& a) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  Lwp* t = p.find_lwp(a.target);
  if (t == nullptr) return Outcome::error(Errno::kESRCH);
  lwp_assert_locked(*t);
  lwp_continue_target(*t);
  return Outcome::of({});
}

// ---- _lwp_wakeup: ESRCH, ENODEV (not sleeping), EBUSY (uninterruptible) -----------
Outcome sys_lwp_wakeup(Lwp& l, const LwpWakeupArgs& a) REQUIRES(l.proc->mu) {
  Lwp* t = l.proc->find_lwp(a.target);
  if (t == nullptr) return Outcome::error(Errno::kESRCH);
  lwp_assert_locked(*t);
  t->flag |= LW_CANCELLED | LW_UNPARKED;  // sticky, even when an error follows
  if (t->stat != LwpStat::kSleep) return Outcome::error(Errno::kENODEV);
  if (!t->sleep.interruptible) return Outcome::error(Errno::kEBUSY);
  lwp_wake(*t, WakeReason::kCancel);
  return Outcome::of({});
}

Outcome sys_lwp_getprivate(Lwp& l, const LwpGetprivateArgs&) REQUIRES(l.proc->mu) {
  return Outcome::of(SysReturn::ok(static_cast<int64_t>(l.private_ptr)));
}

Outcome sys_lwp_setprivate(Lwp& l, const LwpSetprivateArgs& a) REQUIRES(l.proc->mu) {
  l.private_ptr = a.ptr;
  return Outcome::of({});
}

// ---- _lwp_kill: EINVAL (signo), ESRCH -------------------------------------------------
Outcome sys_lwp_kill(Lwp& l, const LwpKillArgs& a) REQUIRES(l.proc->mu) {
  if (static_cast<unsigned>(a.signo) >= static_cast<unsigned>(NB_NSIG)) {
    return Outcome::error(Errno::kEINVAL);
  }
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  Lwp* t = p.find_lwp(a.target);
  if (t == nullptr) return Outcome::error(Errno::kESRCH);
  lwp_assert_locked(*t);
  if (a.signo == 0) return Outcome::of({});
  SigInfo si{.signo = a.signo, .code = NB_SI_LWP, .pid = p.pid, .uid = p.uid, .lid = t->lid};
  proc_post_signal(p, t, si);
  return Outcome::of({});
}

// ---- _lwp_detach: ESRCH, EINVAL (already detached) ---------------------------------
Outcome sys_lwp_detach(Lwp& l, const LwpDetachArgs& a) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  Lwp* t = a.target == l.lid ? &l : p.find_lwp_any(a.target);
  if (t == nullptr) return Outcome::error(Errno::kESRCH);
  lwp_assert_locked(*t);
  if (t->detached) return Outcome::error(Errno::kEINVAL);
  t->detached = true;
  p.ndlwps++;
  if (t->stat == LwpStat::kZomb) {
    lwp_free(*t);
  } else {
    proc_broadcast(p);
  }
  return Outcome::of({});
}

// One _lwp_unpark: wake the target if parked, else leave it the token.
Errno lwp_unpark1(Proc& p, lwpid_t lid) REQUIRES(p.mu) {
  Lwp* t = p.find_lwp_any(lid);
  if (t == nullptr) return Errno::kESRCH;
  lwp_assert_locked(*t);
  if (t->sleep.kind == SleepKind::kPark) {
    lwp_wake(*t, WakeReason::kUnpark);
    return Errno::kOk;
  }
  if (t->stat == LwpStat::kZomb) return Errno::kESRCH;
  t->flag |= LW_UNPARKED;
  return Errno::kOk;
}

// ---- _lwp_unpark: ESRCH ----------------------------------------------------------
Outcome sys_lwp_unpark(Lwp& l, const LwpUnparkArgs& a) REQUIRES(l.proc->mu) {
  Errno e = lwp_unpark1(*l.proc, a.target);
  return e == Errno::kOk ? Outcome::of({}) : Outcome::error(e);
}

// ---- _lwp_unpark_all: EINVAL (count), EFAULT, ESRCH (any target) --------------------
Outcome sys_lwp_unpark_all(Lwp& l, const LwpUnparkAllArgs& a) REQUIRES(l.proc->mu) {
  if (a.targets_null) return Outcome::of(SysReturn::ok(LWP_UNPARK_MAX));
  if (a.ntargets == 0 || a.ntargets > LWP_UNPARK_MAX) return Outcome::error(Errno::kEINVAL);
  if (a.targets.size() < a.ntargets) return Outcome::error(Errno::kEFAULT);
  Errno result = Errno::kOk;
  for (size_t i = 0; i < a.ntargets; i++) {
    if (lwp_unpark1(*l.proc, a.targets[i]) != Errno::kOk) result = Errno::kESRCH;
  }
  return result == Errno::kOk ? Outcome::of({}) : Outcome::error(result);
}

// ---- _lwp_setname: ESRCH (a too-long name is truncated, not an error) -------------
Outcome sys_lwp_setname(Lwp& l, const LwpSetnameArgs& a) REQUIRES(l.proc->mu) {
  std::string name = a.name.substr(0, std::min(a.name.find('\0'), MAXCOMLEN - 1));
  Lwp* t = a.target == 0 ? &l : l.proc->find_lwp(a.target);
  if (t == nullptr) return Outcome::error(Errno::kESRCH);
  lwp_assert_locked(*t);
  t->name = std::move(name);
  return Outcome::of({});
}

// ---- _lwp_getname: ESRCH, ENAMETOOLONG (buffer too small; partial copy) ------------
Outcome sys_lwp_getname(Lwp& l, const LwpGetnameArgs& a) REQUIRES(l.proc->mu) {
  const Lwp* t = a.target == 0 ? &l : l.proc->find_lwp(a.target);
  if (t == nullptr) return Outcome::error(Errno::kESRCH);
  lwp_assert_locked(*t);
  const std::string name = t->name.value_or("");
  const size_t limit = std::min<uint64_t>(a.len, MAXCOMLEN);
  SysReturn r;
  if (name.size() + 1 > limit) {
    r.error = Errno::kENAMETOOLONG;
    r.name = name.substr(0, limit);  // what copyoutstr wrote before giving up
  } else {
    r.name = name;
  }
  return Outcome::of(std::move(r));
}

// ---- _lwp_ctl: ENODEV (feature), ENOMEM (slots) -----------------------------------
Outcome sys_lwp_ctl(Lwp& l, const LwpCtlArgs& a) REQUIRES(l.proc->mu) {
  if (a.features & ~(LWPCTL_FEATURE_CURCPU | LWPCTL_FEATURE_PCTR)) {
    return Outcome::error(Errno::kENODEV);
  }
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  if (l.lwpctl_slot < 0) {
    if (!p.lwpctl) {
      auto area = LwpctlArea::create(p.kernel().config().runtime_dir, p.pid, p.uid);
      if (!area.ok()) return Outcome::error(area.error());
      p.lwpctl = area.release();
    }
    auto slot = p.lwpctl->alloc_slot();
    if (!slot.ok()) return Outcome::error(slot.error());
    l.lwpctl_slot = slot.value();
    // The counter of a reused slot is kept, as NetBSD does.
    p.lwpctl->set_curcpu(l.lwpctl_slot, l.cpu);
  }
  SysReturn r;
  r.lwpctl_slot = l.lwpctl_slot;
  return Outcome::of(std::move(r));
}

// ---- scheduling calls --------------------------------------------------------------

// Resolve (pid, lid) for the _sched_* calls. Only the caller's own process is
// visible; `lid == 0` means every LWP (set) or the first LWP (get).
KResult<std::vector<Lwp*>> sched_targets(Lwp& l, pid_t pid, lwpid_t lid, bool all_for_zero)
    REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  if (pid != 0 && pid != p.pid) return Errno::kESRCH;
  std::vector<Lwp*> out;
  if (lid == 0) {
    if (all_for_zero) {
      for (Lwp* o : p.order) {
        lwp_assert_locked(*o);
        if (o->stat != LwpStat::kZomb && o->stat != LwpStat::kIdl) out.push_back(o);
      }
    } else if (Lwp* f = p.first_live_lwp()) {
      out.push_back(f);
    }
  } else if (Lwp* t = p.find_lwp(lid)) {
    out.push_back(t);
  }
  if (out.empty()) return Errno::kESRCH;
  return out;
}

// Apply a new priority: a queued LWP moves to its new queue, a running one
// may have to give way.
void lwp_changepri(Lwp& t, int policy, int prio) REQUIRES(t.proc->mu) {
  t.policy = policy;
  t.base_prio = prio;
  Scheduler& s = t.proc->kernel().sched();
  if (t.stat == LwpStat::kRun) s.requeue(t);
  if (t.stat == LwpStat::kOnProc) s.set_cur_prio(t);
}

// _sched_setparam: EINVAL (policy/priority), ESRCH, EPERM (raise without privilege)
Outcome sys_sched_setparam(Lwp& l, const SchedSetparamArgs& a) REQUIRES(l.proc->mu) {
  if (a.policy < NB_SCHED_NONE || a.policy > NB_SCHED_RR) return Outcome::error(Errno::kEINVAL);
  if (a.priority != PRI_NONE && (a.priority < SCHED_PRI_MIN || a.priority > SCHED_PRI_MAX)) {
    return Outcome::error(Errno::kEINVAL);
  }
  auto targets = sched_targets(l, a.pid, a.lid, true);
  if (!targets.ok()) return Outcome::error(targets.error());
  const bool root = l.proc->uid == 0;
  for (Lwp* t : targets.value()) {
    lwp_assert_locked(*t);
    int policy = a.policy == NB_SCHED_NONE ? t->policy : a.policy;
    int prio = t->base_prio;
    if (policy == NB_SCHED_OTHER) {
      if (a.priority != PRI_NONE) return Outcome::error(Errno::kEINVAL);
      prio = t->policy == NB_SCHED_OTHER ? t->base_prio : PRI_USER;
    } else if (a.priority != PRI_NONE) {
      prio = PRI_USER_RT + a.priority;
    } else if (t->policy == NB_SCHED_OTHER) {
      prio = PRI_USER_RT;
    }
    if (!root && (prio > t->base_prio || (policy != NB_SCHED_OTHER && policy != t->policy))) {
      return Outcome::error(Errno::kEPERM);
    }
    lwp_changepri(*t, policy, prio);
  }
  return Outcome::of({});
}

// _sched_getparam: ESRCH
Outcome sys_sched_getparam(Lwp& l, const SchedGetparamArgs& a) REQUIRES(l.proc->mu) {
  auto targets = sched_targets(l, a.pid, a.lid, false);
  if (!targets.ok()) return Outcome::error(targets.error());
  const Lwp* t = targets.value().front();
  lwp_assert_locked(*t);
  SysReturn r;
  r.policy = t->policy;
  r.priority = t->policy == NB_SCHED_OTHER ? t->base_prio : t->base_prio - PRI_USER_RT;
  return Outcome::of(std::move(r));
}

// _sched_setaffinity: ESRCH, EPERM (privilege; no usable vCPU in the set)
Outcome sys_sched_setaffinity(Lwp& l, const SchedSetaffinityArgs& a) REQUIRES(l.proc->mu) {
  Kernel& k = l.proc->kernel();
  auto targets = sched_targets(l, a.pid, a.lid, true);
  if (!targets.ok()) return Outcome::error(targets.error());
  if (l.proc->uid != 0 && !k.config().user_set_cpu_affinity) return Outcome::error(Errno::kEPERM);
  // vCPUs that do not exist are ignored; a non-empty set with none that do is refused.
  const CpuMask mask = a.mask & k.sched().all_mask();
  if (a.mask != 0 && mask == 0) return Outcome::error(Errno::kEPERM);
  for (Lwp* t : targets.value()) {
    lwp_assert_locked(*t);
    t->affinity = mask;
    if (t->stat == LwpStat::kRun) k.sched().requeue(*t);
    if (t->stat == LwpStat::kOnProc && mask != 0 && !(mask & (CpuMask{1} << t->cpu))) {
      k.sched().resched(*t);
    }
  }
  return Outcome::of({});
}

// _sched_getaffinity: ESRCH
Outcome sys_sched_getaffinity(Lwp& l, const SchedGetaffinityArgs& a) REQUIRES(l.proc->mu) {
  auto targets = sched_targets(l, a.pid, a.lid, false);
  if (!targets.ok()) return Outcome::error(targets.error());
  const Lwp* t = targets.value().front();
  lwp_assert_locked(*t);
  SysReturn r;
  r.mask = t->affinity;
  return Outcome::of(std::move(r));
}

Outcome sys_sched_yield(Lwp& l, const SchedYieldArgs&) REQUIRES(l.proc->mu) {
  l.ret = SysReturn{};
  lwp_set_state(l, LwpStat::kRun);  // to the tail of its queue
  return Outcome::blocked();
}

// ---- ___lwp_park60: ESRCH (unpark), EINVAL (ts/clock), ETIMEDOUT, EALREADY, EINTR ---
Outcome sys_lwp_park(Lwp& l, const LwpParkArgs& a) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  if (a.unpark != 0) {
    // Unless the park fails early, the target is to run where this LWP is about to sleep.
    p.kernel().sched().entry_expect_leave(l);
    Errno e = lwp_unpark1(p, a.unpark);
    if (e != Errno::kOk) return Outcome::error(e);
  }
  std::optional<Clock::time_point> deadline;
  const bool relative = a.ts && !(a.flags & NB_TIMER_ABSTIME);
  SysReturn early;  // the early-error paths write the relative time back unchanged
  if (relative) early.ts = a.ts;
  auto fail = [&](Errno e) {
    early.error = e;
    return Outcome::of(early);
  };
  if (a.ts) {
    const Timespec& ts = *a.ts;
    if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000) return fail(Errno::kEINVAL);
    if (a.clock_id != NB_CLOCK_REALTIME && a.clock_id != NB_CLOCK_MONOTONIC)
      return fail(Errno::kEINVAL);
    if (ts.tv_sec > (INT64_MAX / 1000000000) - 1) return fail(Errno::kEINVAL);
    int64_t ns = ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (a.flags & NB_TIMER_ABSTIME) {
      const int64_t now = a.clock_id == NB_CLOCK_REALTIME
                              ? std::chrono::duration_cast<nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count()
                              : std::chrono::duration_cast<nanoseconds>(
                                    p.kernel().callout().now().time_since_epoch())
                                    .count();
      ns -= now;
    }
    if (ns <= 0) {
      if (relative) early.ts = Timespec{};
      return fail(Errno::kETIMEDOUT);
    }
    // Kernel timeouts are whole ticks; anything shorter than one tick waits one.
    const int64_t tick = 1000000000 / std::max(1, p.kernel().config().hz);
    ns = (ns + tick - 1) / tick * tick;
    deadline = p.kernel().callout().now() + nanoseconds(ns);
  }
  if (l.flag & (LW_CANCELLED | LW_UNPARKED)) {
    l.flag &= ~(LW_CANCELLED | LW_UNPARKED);
    return fail(Errno::kEALREADY);
  }
  auto r = lwp_sleep(
      l, SleepSpec{.kind = SleepKind::kPark, .deadline = deadline, .ts_relative = relative});
  if (r) {
    if (r->error == Errno::kERESTART) r->error = Errno::kEINTR;  // park is never restarted
    if (relative) r->ts = a.ts;
    return Outcome::of(std::move(*r));
  }
  return Outcome::blocked();
}

}  // namespace

Outcome sys_dispatch(Lwp& l, const SysArgs& args) {
  return std::visit(
      [&l](const auto& a) -> Outcome {
        l.proc->mu.AssertHeld();  // a lambda is analysed on its own: it runs under ours
        using A = std::decay_t<decltype(a)>;
#define LWPD_SYS_CASE(name, num, str, fn) \
  if constexpr (std::is_same_v<A, name##Args>) return fn(l, a);
        LWPD_SYSCALLS(LWPD_SYS_CASE)
#undef LWPD_SYS_CASE
        return Outcome::error(Errno::kEINVAL);  // std::monostate: rejected earlier
      },
      args);
}

}  // namespace lwpd::emul
