// A process as a whole: its state machine, the signals posted to it, stop and continue,
// and its exit (NetBSD spreads these over kern_proc.c, kern_sig.c and kern_exit.c).
//
// The process-state machine is drawn beside the LWP one at the top of kern_lwp.cc;
// proc_set_stat() below is the one place a process changes state, and
// Kernel::check_invariants() checks the flags that go with each state.

#include <cassert>

#include "emul/kern.h"

namespace lwpd::emul {

using namespace netbsd;

// ---- state machine ---------------------------------------------------------------------

bool proc_transition_ok(ProcStat from, ProcStat to) {
  using S = ProcStat;
  switch (from) {
    case S::kActive:
      return to == S::kDying || to == S::kStop || to == S::kZomb;
    case S::kStop:
      return to == S::kActive || to == S::kDying;
    case S::kDying:
      return to == S::kZomb;
    case S::kIdl:
    case S::kZomb:
      return false;
  }
  return false;
}

// The one place a process changes state.
void proc_set_stat(Proc& p, ProcStat to) {
  p.mu.AssertHeld();
  assert(proc_transition_ok(p.stat, to));
  assert(to != ProcStat::kDying || (p.sflag & PS_WEXIT));
  assert(to != ProcStat::kStop || !(p.sflag & PS_STOPPING));
  assert(to != ProcStat::kZomb || p.nlwps == 0);
  p.stat = to;
}

// ---- exit ------------------------------------------------------------------------------

// The last live LWP leaves: free every zombie and the LWP itself, and report
// the process's end. The PID stays allocated until Kernel::proc_release().
void proc_finish_exit(Proc& p, Lwp& last) {
  lwp_assert_locked(last);
  assert(p.live_lwps() == 1 && last.stat == LwpStat::kOnProc);
  std::vector<Lwp*> zombies;
  for (Lwp* o : p.order)
    if (o != &last) zombies.push_back(o);
  for (Lwp* z : zombies) {
    lwp_assert_locked(*z);
    assert(z->stat == LwpStat::kZomb);
    lwp_free(*z);
  }
  const lwpid_t lid = last.lid;
  p.nzlwps++;
  last.exiting = true;
  lwp_set_state(last, LwpStat::kZomb);
  last.exiting = false;
  lwp_free(last);
  p.lwpcv_sleepers.clear();
  p.lwpcv_pending = false;
  proc_set_stat(p, ProcStat::kZomb);
  p.sflag &= ~PS_STOPPING;
  p.lwpctl.reset();
  trace_proc_exited(p);
  p.kernel().emit(KEvent{.kind = KEvent::Kind::kProcExit, .pid = p.pid, .lid = lid});
  p.port->lwp_exited(lid);
  p.port->proc_exited(p.xstat);
}

// Every other LWP exits at its next return to user; blocked syscalls are
// interrupted and never return. `caller` (exit(2)) waits for them, or, when
// the signal came from outside, the last LWP to exit finishes the process.
//
// LWPs running user code are not kicked but taken into the kernel here: a
// process that exits needs nothing more from its user side (which ends when
// it learns of the exit), and a thread that cannot answer a kick -- e.g. a
// new LWP whose creator died before learning its LID, so no host thread was
// ever started for it -- must not keep the process from finishing.
void proc_exit_begin(Proc& p, ExitStatus st, Lwp* caller) {
  p.mu.AssertHeld();
  if (p.sflag & PS_WEXIT) return;
  p.sflag |= PS_WEXIT;
  p.sflag &= ~PS_STOPPING;
  p.xstat = st;
  proc_set_stat(p, ProcStat::kDying);
  if (caller != nullptr) {
    lwp_assert_locked(*caller);
    caller->flag |= LW_WEXIT;
    p.exiter = caller->lid;
  }
  std::vector<lwpid_t> in_user;
  std::vector<Lwp*> victims;
  for (Lwp* o : p.order) {
    lwp_assert_locked(*o);
    if (o != caller && o->stat != LwpStat::kZomb) victims.push_back(o);
  }
  for (Lwp* o : victims) {
    lwp_assert_locked(*o);
    o->flag |= LW_WEXIT;
    o->flag &= ~LW_DBGSUSPEND;
    switch (o->stat) {
      case LwpStat::kSleep:
        if (o->sleep.interruptible) lwp_wake(*o, WakeReason::kExit);
        break;
      case LwpStat::kStop:
        // Only interruptible sleepers stop, so the wakeup ends the sleep
        // (leaving it LSSTOP); then it runs to its exit.
        lwp_wake(*o, WakeReason::kExit);
        assert(o->sleep.kind == SleepKind::kNone);
        lwp_set_state(*o, LwpStat::kRun);
        break;
      case LwpStat::kSuspended:
        lwp_set_state(*o, LwpStat::kRun);
        break;
      case LwpStat::kOnProc:
        if (o->user_mode()) in_user.push_back(o->lid);
        break;
      default:
        break;
    }
  }
  // By LID: each exit may free others (the last one frees the process).
  for (lwpid_t lid : in_user) {
    Lwp* o = p.find_lwp(lid);
    if (o == nullptr) continue;
    lwp_assert_locked(*o);
    if (!o->user_mode()) continue;
    o->in_kernel = true;
    o->ret = SysReturn{.kind = ReturnKind::kResume};
    lwp_userret(*o);
  }
}

// ---- signals -------------------------------------------------------------------------

void lwp_post_signal(Lwp& l, const SigInfo& si) {
  if (l.user_mode()) {
    l.proc->port->lwp_signal(l.lid, si);
    return;
  }
  // Held until the LWP next returns to user mode (suspended and stopped LWPs
  // take it once they run again); an interruptible sleep is cut short.
  l.sigq.push_back(si);
  l.sigpend |= sigmask_of(si.signo);
  if (l.stat == LwpStat::kSleep && l.sleep.interruptible && !(l.sigmask & sigmask_of(si.signo))) {
    lwp_wake(l, WakeReason::kSignal);
  }
}

namespace {

// `l`, an LWP of the locked process, blocks `signo`.
bool lwp_blocks(const Lwp& l, int signo) {
  lwp_assert_locked(l);
  return l.sigmask & sigmask_of(signo);
}

}  // namespace

// Signals that act on the whole process regardless of the target LWP.
void proc_post_signal(Proc& p, Lwp* target, const SigInfo& si, bool catch_traced) {
  if (catch_traced && trace_signal(p, target, si)) return;
  switch (si.signo) {
    case NB_SIGKILL:
      proc_exit_begin(p, ExitStatus{.signaled = true, .code = NB_SIGKILL}, nullptr);
      return;
    case NB_SIGSTOP:
      proc_stop(p);
      return;
    case NB_SIGCONT:
      proc_continue(p);
      break;  // and delivered, for a handler
    default:
      break;
  }
  if (target == nullptr) {
    // Process-directed: the first LWP that does not block it, else the first.
    for (Lwp* o : p.order) {
      lwp_assert_locked(*o);
      if (o->stat == LwpStat::kZomb) continue;
      if (target == nullptr || !lwp_blocks(*o, si.signo)) {
        bool better = target == nullptr || lwp_blocks(*target, si.signo);
        if (better) target = o;
      }
    }
  }
  if (target != nullptr) {
    lwp_assert_locked(*target);
    lwp_post_signal(*target, si);
  }
}

// ---- stop and continue ---------------------------------------------------------------

void proc_stop(Proc& p) {
  p.mu.AssertHeld();
  if ((p.sflag & (PS_WEXIT | PS_STOPPING)) || p.stat == ProcStat::kStop) return;
  p.sflag |= PS_STOPPING;
  std::vector<Lwp*> lwps(p.order.begin(), p.order.end());
  for (Lwp* o : lwps) {
    lwp_assert_locked(*o);
    if (o->stat == LwpStat::kSleep && o->sleep.interruptible) {
      lwp_set_state(*o, LwpStat::kStop);
    } else if (o->stat == LwpStat::kOnProc) {
      lwp_kick(*o);
    }
  }
  proc_stop_check(p);
}

void proc_stop_check(Proc& p) {
  p.mu.AssertHeld();
  if (!(p.sflag & PS_STOPPING)) return;
  // Embryos count in nrlwps but wait for their (stopped) creator's return.
  int running = p.nrlwps;
  if (running > 0) {
    for (const Lwp* o : p.order) {
      lwp_assert_locked(*o);
      if (o->stat == LwpStat::kIdl) running--;
    }
  }
  if (running == 0) {
    p.sflag &= ~PS_STOPPING;
    proc_set_stat(p, ProcStat::kStop);
    p.kernel().emit(KEvent{.kind = KEvent::Kind::kProcStop, .pid = p.pid});
    trace_note_stop(p);
  }
}

void proc_continue(Proc& p) {
  p.mu.AssertHeld();
  if (p.stat != ProcStat::kStop && !(p.sflag & PS_STOPPING)) return;
  if (p.stat == ProcStat::kStop) proc_set_stat(p, ProcStat::kActive);
  p.sflag &= ~PS_STOPPING;
  p.kernel().emit(KEvent{.kind = KEvent::Kind::kProcCont, .pid = p.pid});
  std::vector<Lwp*> lwps(p.order.begin(), p.order.end());
  for (Lwp* o : lwps) {
    lwp_assert_locked(*o);
    if (o->stat != LwpStat::kStop || (o->flag & LW_DBGSUSPEND)) continue;
    if (o->sleep.kind == SleepKind::kNone) {
      lwp_set_state(*o, LwpStat::kRun);
      continue;
    }
    const bool recheck = o->sleep.woken.has_value();
    o->sleep.woken.reset();
    lwp_set_state(*o, LwpStat::kSleep);
    // Deferred to the lock's release: re-evaluating here could reap an LWP
    // that is still further down `lwps` (ASan caught exactly that).
    if (recheck) proc_broadcast(p);
  }
}

}  // namespace lwpd::emul
