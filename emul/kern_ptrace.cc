// ptrace(2) and the tracer's wait(2): NetBSD's LWP tracing interface
// (../shared/netbsd-lwp-semantics.md §5).
//
// ---------------------------------------------------------------------------
// Model
//
// lwpd has no parent/child processes: any attached process may PT_ATTACH to
// another (same uid, or root), and the tracer then collects the tracee's
// stops and exit with wait(2) (pid -1 = any of its tracees).
//
// State (proc.h), each under the lock of the process that holds it:
//   Proc::traced   (TraceeState) its tracer, event mask, the current trace stop
//                  (xsig, si, report_event/lwp, waited), sigq (signals caught
//                  while a stop was being reported: each is reported in turn),
//                  exit_seen, notify.
//   Proc::tracing  (TracerState) tracees (pid -> ProcRef: keeps an exited
//                  tracee's status after its session released the PID), seq,
//                  orphans, fire.
//   Proc::dbg      (DebuggerState) a debugger's own: kern_debugger.cc.
//   Lwp            trace_create_done, trace_exit_pending, trace_exit_done.
// The two sides are never locked together: a ptrace or wait call runs
// outside its caller's process lock (Kernel::syscall routes it here with the
// LWP marked in the kernel, still LSONPROC) and takes the caller's lock and
// each tracee's lock one after the other.
//
// Stops. Every signal but SIGKILL posted to a traced process is caught by
// trace_signal(): it becomes the process's trace stop (p_xsig) and the whole
// process stops as for SIGSTOP. LWP events stop it the same way with SIGTRAP
// / TRAP_LWP, reported by the LWP concerned in lwp_userret (trace_userret):
// a new LWP before it first runs user code (its pending entry is its start),
// an exiting LWP after _lwp_exit let it back to userret and before it becomes
// a zombie. If a stop is already under way, userret stops with it first and
// the event is reported once the process runs again (eventswitch's retry).
// PT_CONTINUE clears the stop; its `data` signal is then delivered without
// being caught again.
//
// Waking the tracer. When a tracee becomes fully stopped or exits, it sets
// traced.notify under its own lock; DeferringProcLock, after unlocking, takes the
// tracer's lock, bumps tracing.seq and ends every kTraceWait sleep of the
// tracer with EREISSUE, which the user side reissues at once. wait(2) reads
// tracing.seq before it looks at the tracees and sleeps only if it is unchanged
// when it retakes its own lock, so a notification in between is not lost.
// The sleeping tracer holds no vCPU and no daemon thread.
//
// Tracer exit: as NetBSD's exit1() does with "orphaned traced process"es,
// every live tracee is killed (SIGKILL) once the tracer's lock drops.
//
// Debuggers (kern_debugger.cc): tracers that are no emulated process, which
// use ptrace_on() and wait_pass() below as a process's ptrace and wait do.
//
// Lock order: emul/lock.h (KernelTable -> Proc); never two Proc locks.
// ---------------------------------------------------------------------------

#include <cassert>
#include <climits>
#include <optional>

#include "emul/idalloc.h"
#include "emul/kern.h"

namespace lwpd::emul {

using namespace netbsd;

namespace {

constexpr int kKnownEvents = PTRACE_FORK | PTRACE_VFORK | PTRACE_VFORK_DONE | PTRACE_LWP_CREATE |
                             PTRACE_LWP_EXIT | PTRACE_POSIX_SPAWN;
constexpr int NB_SIGTTIN = 21;
constexpr int NB_SIGTTOU = 22;

bool is_stop_signal(int sig) {
  return sig == NB_SIGSTOP || sig == NB_SIGTSTP || sig == NB_SIGTTIN || sig == NB_SIGTTOU;
}

bool lwp_live(const Lwp& l) REQUIRES(l.proc->mu) {
  return l.stat != LwpStat::kIdl && l.stat != LwpStat::kZomb;
}

void trace_clear_stop(Proc& q) REQUIRES(q.mu) {
  q.traced.xsig = 0;
  q.traced.waited = false;
  q.traced.si = SigInfo{};
  q.traced.report_event = 0;
  q.traced.report_lwp = 0;
}

// Begin the trace stop that reports `si` (and the LWP event, if any): the
// whole process stops; its tracer is told once it is fully stopped.
void trace_stop_begin(Proc& q, const SigInfo& si, int event, lwpid_t event_lwp) REQUIRES(q.mu) {
  q.traced.xsig = si.signo;
  q.traced.si = si;
  q.traced.report_event = event;
  q.traced.report_lwp = event_lwp;
  q.traced.waited = false;
  if (q.stat == ProcStat::kStop) {
    trace_note_stop(q);
  } else {
    proc_stop(q);
  }
}

bool trace_wants(const Proc& p, int event) REQUIRES(p.mu) {
  return p.traced.tracer != 0 && (p.traced.events & event) && !(p.sflag & PS_WEXIT) && p.traced.xsig == 0;
}

// The calling LWP reports `event` and stops with the rest of its process.
void trace_report_event(Lwp& l, int event) REQUIRES(l.proc->mu) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  trace_stop_begin(p, SigInfo{.signo = NB_SIGTRAP, .code = NB_TRAP_LWP, .lid = l.lid}, event,
                   l.lid);
  lwp_set_state(l, LwpStat::kStop);
  proc_stop_check(p);
}

// The tracer LWP `lid` (in the kernel, LSONPROC) returns `r`. Caller holds
// the tracer's lock.
void trace_return(Proc& t, lwpid_t lid, SysReturn r) REQUIRES(t.mu) {
  Lwp* l = t.find_lwp(lid);
  assert(l != nullptr);
  lwp_assert_locked(*l);
  assert(l->stat == LwpStat::kOnProc && l->in_kernel);
  l->ret = std::move(r);
  lwp_userret(*l);
}

// ---- admission and LWP resolution (§5.3) ----------------------------------------

Errno trace_admit(const Proc& q, pid_t caller, bool need_stopped) REQUIRES(q.mu) {
  if (q.stat == ProcStat::kZomb) return Errno::kESRCH;
  if (q.traced.tracer == 0) return Errno::kEPERM;
  if (q.traced.tracer != caller) return Errno::kEBUSY;
  if (q.sflag & PS_WEXIT) return Errno::kEBUSY;
  if (need_stopped && !(q.stat == ProcStat::kStop && q.traced.waited)) return Errno::kEBUSY;
  return Errno::kOk;
}

// ptrace_update_lwp: no lookup at all for lid 0, the first LWP, or a
// single-LWP process (so a bogus LID "works" there, as in NetBSD).
Lwp* trace_resolve_lwp(Proc& q, lwpid_t lid, Errno* e) REQUIRES(q.mu) {
  Lwp* first = q.first_live_lwp();
  if (lid == 0 || (first != nullptr && lid == first->lid) || q.live_lwps() == 1) return first;
  Lwp* l = q.find_lwp(lid);
  if (l == nullptr) *e = Errno::kESRCH;
  return l;
}

// The live LWP after `after` in list order (newest first); 0 = the first.
Lwp* trace_next_lwp(Proc& q, lwpid_t after, Errno* e) REQUIRES(q.mu) {
  auto it = q.order.begin();
  if (after != 0) {
    Lwp* l = q.find_lwp(after);
    if (l == nullptr) {
      *e = Errno::kESRCH;
      return nullptr;
    }
    lwp_assert_locked(*l);
    it = std::next(l->order_it);
  }
  for (; it != q.order.end(); ++it) {
    lwp_assert_locked(**it);
    if (lwp_live(**it)) return *it;
  }
  return nullptr;
}

void lwp_status_out(const Lwp& l, PtraceOut* o) REQUIRES(l.proc->mu) {
  o->lwpid = l.lid;
  o->sigpend = l.sigpend;
  o->sigmask = l.sigmask;
  o->name = l.name.value_or("");
  o->private_ptr = l.private_ptr;
}

// ---- resuming --------------------------------------------------------------------

bool all_suspended(const Proc& q) REQUIRES(q.mu) {
  for (const Lwp* o : q.order) {
    lwp_assert_locked(*o);
    if (lwp_live(*o) && !(o->flag & (LW_WSUSPEND | LW_DBGSUSPEND))) return false;
  }
  return true;
}

// Resume one LWP of a stopped process; the others stay LSSTOP (lwp_unstop).
void lwp_unstop_one(Proc& q, Lwp& l) REQUIRES(q.mu) {
  lwp_assert_locked(l);
  q.sflag &= ~PS_STOPPING;
  if (q.stat == ProcStat::kStop) proc_set_stat(q, ProcStat::kActive);
  if (l.stat != LwpStat::kStop) return;
  if (l.sleep.kind == SleepKind::kNone) {
    lwp_set_state(l, LwpStat::kRun);
    return;
  }
  const bool recheck = l.sleep.woken.has_value();
  l.sleep.woken.reset();
  lwp_set_state(l, LwpStat::kSleep);
  if (recheck) proc_broadcast(q);
}

// After a resume: deliver the tracer's signal uncaught, then report the next
// signal that arrived while the stop was being reported.
void trace_after_resume(Proc& q, const SigInfo& stop_si, int sig) REQUIRES(q.mu) {
  if (sig != 0) {
    SigInfo si = stop_si;
    if (si.signo != sig) si = SigInfo{.signo = sig, .code = NB_SI_USER};
    Lwp* t = si.lid != 0 ? q.find_lwp(si.lid) : nullptr;
    si.lid = t != nullptr ? t->lid : 0;
    proc_post_signal(q, t, si, /*catch_traced=*/false);
  }
  if (q.traced.tracer != 0 && !q.traced.sigq.empty() && !(q.sflag & PS_WEXIT)) {
    SigInfo next = q.traced.sigq.front();
    q.traced.sigq.pop_front();
    trace_stop_begin(q, next, 0, 0);
  }
}

// PT_CONTINUE and PT_DETACH (§5.7). Errors: EINVAL, ESRCH, EDEADLK.
SysReturn trace_resume(Proc& q, const PtraceArgs& a, bool detach) REQUIRES(q.mu) {
  Lwp* one = nullptr;
  if (a.data < 0) {
    if (detach) return SysReturn::err(Errno::kEINVAL);
    if (a.data == INT_MIN) return SysReturn::err(Errno::kESRCH);
    one = q.find_lwp(-a.data);
    if (one == nullptr) return SysReturn::err(Errno::kESRCH);
    lwp_assert_locked(*one);
    if (one->flag & (LW_WSUSPEND | LW_DBGSUSPEND)) return SysReturn::err(Errno::kEDEADLK);
  } else {
    if (a.data >= NB_NSIG) return SysReturn::err(Errno::kEINVAL);
    if (!detach && all_suspended(q)) return SysReturn::err(Errno::kEDEADLK);
  }
  const int sig = a.data > 0 ? a.data : 0;
  const SigInfo stop_si = q.traced.si;
  trace_clear_stop(q);
  if (detach) {
    // Unlike NetBSD, debugger suspensions end with the debugger: nobody
    // could PT_RESUME them afterwards.
    q.traced.tracer = 0;
    q.traced.events = 0;
    q.traced.sigq.clear();
    for (Lwp* o : q.order) {
      lwp_assert_locked(*o);
      o->flag &= ~LW_DBGSUSPEND;
    }
  } else if (is_stop_signal(sig)) {
    // Stays stopped; the tracer is told again.
    trace_stop_begin(q, SigInfo{.signo = sig, .code = NB_SI_USER}, 0, 0);
    return SysReturn{};
  }
  if (one != nullptr) {
    lwp_unstop_one(q, *one);
  } else {
    proc_continue(q);
  }
  trace_after_resume(q, stop_si, sig);
  return SysReturn{};
}

// ---- the requests -----------------------------------------------------------------

SysReturn pt_attach(Proc& q, const Proc& caller, TracerChange* ch) REQUIRES(q.mu) {
  if (q.stat == ProcStat::kZomb) return SysReturn::err(Errno::kESRCH);
  if (q.traced.tracer != 0) return SysReturn::err(Errno::kEBUSY);
  if (q.sflag & PS_WEXIT) return SysReturn::err(Errno::kEBUSY);
  if (caller.uid != 0 && caller.uid != q.uid) return SysReturn::err(Errno::kEPERM);
  q.traced.tracer = caller.pid;
  q.traced.events = 0;
  q.traced.exit_seen = false;
  q.traced.sigq.clear();
  trace_clear_stop(q);
  proc_post_signal(
      q, nullptr,
      SigInfo{.signo = NB_SIGSTOP, .code = NB_SI_USER, .pid = caller.pid, .uid = caller.uid});
  ch->add = q.shared_from_this();
  return SysReturn{};
}

SysReturn pt_stop(Proc& q, const Proc& caller) REQUIRES(q.mu) {
  const SigInfo si{.signo = NB_SIGSTOP, .code = NB_SI_USER, .pid = caller.pid, .uid = caller.uid};
  if (q.stat == ProcStat::kStop) {
    // Already stopped: re-arm the notification (another SIGSTOP stop).
    trace_stop_begin(q, si, 0, 0);
  } else {
    proc_post_signal(q, nullptr, si);
  }
  return SysReturn{};
}

SysReturn pt_kill(Proc& q) REQUIRES(q.mu) {
  trace_clear_stop(q);
  q.traced.sigq.clear();
  proc_exit_begin(q, ExitStatus{.signaled = true, .code = NB_SIGKILL}, nullptr);
  return SysReturn{};
}

SysReturn pt_event_mask(Proc& q, const PtraceArgs& a) REQUIRES(q.mu) {
  if (a.data != PTRACE_EVENT_SIZE) return SysReturn::err(Errno::kEINVAL);
  SysReturn r;
  if (a.request == PT_SET_EVENT_MASK) {
    q.traced.events = a.in.event_mask & kKnownEvents;
  } else {
    r.trace.event_mask = q.traced.events;
  }
  return r;
}

SysReturn pt_process_state(Proc& q, const PtraceArgs& a) REQUIRES(q.mu) {
  if (a.data != PTRACE_STATE_SIZE) return SysReturn::err(Errno::kEINVAL);
  SysReturn r;
  if (q.traced.si.signo == NB_SIGTRAP && q.traced.si.code == NB_TRAP_LWP) {
    r.trace.report_event = q.traced.report_event;
    r.trace.pe_lwp = q.traced.report_lwp;
  }
  return r;
}

SysReturn pt_get_siginfo(Proc& q, const PtraceArgs& a) REQUIRES(q.mu) {
  if (a.data != PTRACE_SIGINFO_SIZE) return SysReturn::err(Errno::kEINVAL);
  SysReturn r;
  r.trace.stop_signo = q.traced.si.signo;
  r.trace.stop_code = q.traced.si.code;
  r.trace.stop_pid = q.traced.si.pid;
  r.trace.stop_uid = q.traced.si.uid;
  r.trace.psi_lwpid = q.traced.si.lid;
  return r;
}

SysReturn pt_lwpinfo(Proc& q, const PtraceArgs& a) REQUIRES(q.mu) {
  if (a.data != PTRACE_LWPINFO_SIZE) return SysReturn::err(Errno::kEINVAL);
  Errno e = Errno::kOk;
  Lwp* l = trace_next_lwp(q, a.in.lwpid, &e);
  if (e != Errno::kOk) return SysReturn::err(e);
  SysReturn r;
  if (l == nullptr) return r;  // pl_lwpid 0: the end
  lwp_assert_locked(*l);
  r.trace.lwpid = l->lid;
  if (l->flag & LW_WSUSPEND) {
    r.trace.pl_event = PL_EVENT_SUSPENDED;
  } else if (q.traced.xsig != 0 && (q.traced.si.lid == l->lid || q.traced.si.lid == 0)) {
    r.trace.pl_event = PL_EVENT_SIGNAL;
  }
  return r;
}

SysReturn pt_lwpstatus(Proc& q, const PtraceArgs& a) REQUIRES(q.mu) {
  if (a.data < static_cast<int>(sizeof(lwpid_t)) || a.data > PTRACE_LWPSTATUS_SIZE)
    return SysReturn::err(Errno::kEINVAL);
  Errno e = Errno::kOk;
  Lwp* l = a.request == PT_LWPNEXT ? trace_next_lwp(q, a.in.lwpid, &e)
                                   : trace_resolve_lwp(q, a.in.lwpid, &e);
  if (e != Errno::kOk) return SysReturn::err(e);
  SysReturn r;
  if (l != nullptr) {
    lwp_assert_locked(*l);
    lwp_status_out(*l, &r.trace);
  }
  return r;
}

SysReturn pt_suspend_resume(Proc& q, const PtraceArgs& a) REQUIRES(q.mu) {
  Errno e = Errno::kOk;
  Lwp* l = trace_resolve_lwp(q, a.data, &e);
  if (e != Errno::kOk) return SysReturn::err(e);
  if (l == nullptr) return SysReturn::err(Errno::kESRCH);
  lwp_assert_locked(*l);
  if (a.request == PT_SUSPEND) {
    l->flag |= LW_DBGSUSPEND;
  } else {
    // It is LSSTOP with the process and runs with the next continue.
    l->flag &= ~LW_DBGSUSPEND;
  }
  return SysReturn{};
}

bool request_known(int req) {
  switch (req) {
    case PT_TRACE_ME:
    case PT_CONTINUE:
    case PT_KILL:
    case PT_ATTACH:
    case PT_DETACH:
    case PT_LWPINFO:
    case PT_SET_EVENT_MASK:
    case PT_GET_EVENT_MASK:
    case PT_GET_PROCESS_STATE:
    case PT_GET_SIGINFO:
    case PT_RESUME:
    case PT_SUSPEND:
    case PT_STOP:
    case PT_LWPSTATUS:
    case PT_LWPNEXT:
      return true;
    default:
      return false;
  }
}

// One request on a tracee other than PT_ATTACH, under the tracee's lock.
SysReturn pt_request(Proc& q, const Proc& caller, const PtraceArgs& a, TracerChange* ch)
    REQUIRES(q.mu) {
  const bool running_ok = a.request == PT_KILL || a.request == PT_STOP;
  if (Errno e = trace_admit(q, caller.pid, !running_ok); e != Errno::kOk) return SysReturn::err(e);
  switch (a.request) {
    case PT_CONTINUE:
      return trace_resume(q, a, false);
    case PT_DETACH: {
      SysReturn r = trace_resume(q, a, true);
      ch->remove = r.error == Errno::kOk;
      return r;
    }
    case PT_KILL:
      return pt_kill(q);
    case PT_STOP:
      return pt_stop(q, caller);
    case PT_SET_EVENT_MASK:
    case PT_GET_EVENT_MASK:
      return pt_event_mask(q, a);
    case PT_GET_PROCESS_STATE:
      return pt_process_state(q, a);
    case PT_GET_SIGINFO:
      return pt_get_siginfo(q, a);
    case PT_LWPINFO:
      return pt_lwpinfo(q, a);
    case PT_LWPSTATUS:
    case PT_LWPNEXT:
      return pt_lwpstatus(q, a);
    case PT_SUSPEND:
    case PT_RESUME:
      return pt_suspend_resume(q, a);
  }
  return SysReturn::err(Errno::kEINVAL);
}

}  // namespace

// Errors: EINVAL (unknown request, self-attach, sizes), EPERM (PT_TRACE_ME,
// not traced, other uid), ESRCH, EBUSY, EDEADLK.
SysReturn ptrace_on(Proc& t, const PtraceArgs& a, TracerChange* ch) EXCLUDES(t.mu) {
  if (!request_known(a.request)) return SysReturn::err(Errno::kEINVAL);
  // lwpd processes have no parent to be traced by.
  if (a.request == PT_TRACE_ME) return SysReturn::err(Errno::kEPERM);
  if (a.request == PT_ATTACH && a.pid == t.pid) return SysReturn::err(Errno::kEINVAL);
  std::shared_ptr<Proc> q = t.kernel().proc_lookup(a.pid);
  if (!q) {
    DeferringProcLock g(t);  // an exited tracee whose PID was released
    auto it = t.tracing.tracees.find(a.pid);
    if (it != t.tracing.tracees.end()) q = it->second;
  }
  if (!q) return SysReturn::err(Errno::kESRCH);
  DeferringProcLock g(*q);
  if (a.request == PT_ATTACH) return pt_attach(*q, t, ch);
  return pt_request(*q, t, a, ch);
}

namespace {

// ---- wait(2) ---------------------------------------------------------------------

// Collect the tracee's pending stop or exit, if any. Caller holds q's lock.
WaitOut trace_collect(Proc& q) REQUIRES(q.mu) {
  if (q.stat == ProcStat::kZomb) {
    if (q.traced.exit_seen) return {};
    q.traced.exit_seen = true;
    if (q.xstat.signaled) return WaitOut{.kind = WaitOut::kSignaled, .code = q.xstat.code};
    return WaitOut{.kind = WaitOut::kExited, .code = q.xstat.code};
  }
  if (q.stat == ProcStat::kStop && q.traced.xsig != 0 && !q.traced.waited) {
    q.traced.waited = true;
    return WaitOut{.kind = WaitOut::kStopped, .code = q.traced.xsig};
  }
  return {};
}

struct WaitScan {
  int owned = 0;  // candidates still traced by the caller
  std::shared_ptr<Proc> who;
  WaitOut out;
};

WaitScan wait_scan(const std::vector<std::shared_ptr<Proc>>& cands, pid_t caller) {
  WaitScan s;
  for (const auto& q : cands) {
    DeferringProcLock g(*q);
    if (q->traced.tracer != caller) continue;
    s.owned++;
    WaitOut w = trace_collect(*q);
    if (w.kind != WaitOut::kNone) {
      s.who = q;
      s.out = w;
      break;
    }
  }
  return s;
}

std::vector<std::shared_ptr<Proc>> wait_candidates(const Proc& t, pid_t pid) REQUIRES(t.mu) {
  std::vector<std::shared_ptr<Proc>> v;
  if (pid == -1) {
    for (const auto& [tp, q] : t.tracing.tracees) v.push_back(q);
  } else if (auto it = t.tracing.tracees.find(pid); it != t.tracing.tracees.end()) {
    v.push_back(it->second);
  }
  return v;
}

}  // namespace

// Only WNOHANG is known. A pid of 0 or below -1 names a process group: tracees are in no
// group of the tracer's here, so such a wait finds no child (ECHILD, from wait_pass).
bool wait_args_ok(const WaitArgs& a) { return !(a.options & ~NB_WNOHANG); }

// One look at the tracees of `t` (a process or a debugger): the result, or nullopt when
// the caller must sleep -- unless t's tracing.seq moved from `*seq0` meanwhile (checked by
// the caller under the lock it sleeps with). Errors: ECHILD (no such tracee).
std::optional<SysReturn> wait_pass(Proc& t, const WaitArgs& a, uint64_t* seq0) EXCLUDES(t.mu) {
  std::vector<std::shared_ptr<Proc>> cands;
  {
    DeferringProcLock g(t);
    *seq0 = t.tracing.seq;
    cands = wait_candidates(t, a.pid);
  }
  WaitScan s = wait_scan(cands, t.pid);
  DeferringProcLock g(t);
  if (s.who) {
    if (s.out.kind != WaitOut::kStopped) {
      t.tracing.tracees.erase(s.who->pid);
      if (t.is_debugger()) t.dbg->exits[s.who->pid] = s.who;  // until delivered or undone
    }
    SysReturn r = SysReturn::ok(s.who->pid);
    r.wait = s.out;
    return r;
  }
  if (s.owned == 0) return SysReturn::err(Errno::kECHILD);
  if (a.options & NB_WNOHANG) return SysReturn::ok(0);
  return std::nullopt;
}

namespace {

// Errors: ECHILD (no such tracee), EINVAL (options), EINTR/ERESTART.
void trace_wait(const std::shared_ptr<Proc>& t, lwpid_t lid, const WaitArgs& a) {
  if (!wait_args_ok(a)) {
    DeferringProcLock g(*t);
    trace_return(*t, lid, SysReturn::err(Errno::kEINVAL));
    return;
  }
  for (;;) {
    uint64_t seq0 = 0;
    std::optional<SysReturn> r = wait_pass(*t, a, &seq0);
    DeferringProcLock g(*t);
    if (r) return trace_return(*t, lid, std::move(*r));
    if (t->tracing.seq != seq0) continue;  // a tracee changed meanwhile: look again
    Lwp* l = t->find_lwp(lid);
    assert(l != nullptr);
    lwp_assert_locked(*l);
    if (auto slept = lwp_sleep(*l, SleepSpec{.kind = SleepKind::kTraceWait})) {
      trace_return(*t, lid, std::move(*slept));
    }
    return;
  }
}

}  // namespace

// ---- hooks called by the core ---------------------------------------------------

bool trace_signal(Proc& p, Lwp* target, const SigInfo& si) {
  if (p.traced.tracer == 0 || si.signo == NB_SIGKILL || (p.sflag & PS_WEXIT)) return false;
  SigInfo s = si;
  s.lid = target != nullptr ? target->lid : 0;
  if (p.traced.xsig != 0) {
    p.traced.sigq.push_back(s);
  } else {
    trace_stop_begin(p, s, 0, 0);
  }
  return true;
}

bool trace_userret(Lwp& l) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  if (l.trace_exit_pending) {
    if (!l.trace_exit_done && trace_wants(p, PTRACE_LWP_EXIT) && p.live_lwps() > 1) {
      l.trace_exit_done = true;
      trace_report_event(l, PTRACE_LWP_EXIT);
      return true;
    }
    lwp_exit(l);
    return true;
  }
  if (l.ret.kind == ReturnKind::kStart && !l.trace_create_done) {
    l.trace_create_done = true;
    if (trace_wants(p, PTRACE_LWP_CREATE)) {
      trace_report_event(l, PTRACE_LWP_CREATE);
      return true;
    }
  }
  return false;
}

bool trace_lwp_exit(Lwp& l) {
  const Proc& p = *l.proc;
  p.mu.AssertHeld();
  if (p.traced.tracer == 0 || !(p.traced.events & PTRACE_LWP_EXIT) || (p.sflag & PS_WEXIT) ||
      p.live_lwps() <= 1) {
    return false;
  }
  l.trace_exit_pending = true;
  return true;
}

void trace_note_stop(Proc& p) {
  if (p.traced.tracer != 0) p.traced.notify = p.traced.tracer;
}

void trace_proc_exited(Proc& p) {
  trace_note_stop(p);
  p.traced.sigq.clear();
  for (auto& [pid, q] : p.tracing.tracees) p.tracing.orphans.push_back(q);
  p.tracing.tracees.clear();
}

void trace_after_unlock(Kernel& k, pid_t self, pid_t notify,
                        std::vector<std::shared_ptr<Proc>> orphans) {
  if (notify != 0) {
    if (std::shared_ptr<Proc> t = k.tracer_lookup(notify)) {
      DeferringProcLock g(*t);
      t->tracing.seq++;
      // A debugger's waits: their callbacks run when g drops (DeferringProcLock).
      if (t->is_debugger()) {
        for (auto& [key, fn] : t->dbg->waiters) t->tracing.fire.push_back(std::move(fn));
        t->dbg->waiters.clear();
      }
      std::vector<Lwp*> waiters;
      for (Lwp* o : t->order) {
        lwp_assert_locked(*o);
        if (o->sleep.kind == SleepKind::kTraceWait) waiters.push_back(o);
      }
      for (Lwp* o : waiters) {
        lwp_assert_locked(*o);
        lwp_wake(*o, WakeReason::kUnpark);
      }
    }
  }
  for (auto& q : orphans) {
    DeferringProcLock g(*q);
    if (q->traced.tracer != self) continue;
    q->traced.tracer = 0;
    q->traced.events = 0;
    q->traced.sigq.clear();
    trace_clear_stop(*q);
    if (q->stat != ProcStat::kZomb) {
      k.log(1, "killing orphaned traced process " + std::to_string(q->pid));
      proc_exit_begin(*q, ExitStatus{.signaled = true, .code = NB_SIGKILL}, nullptr);
    }
  }
}

void trace_syscall(const std::shared_ptr<Proc>& t, lwpid_t lid, const SysArgs& args) {
  if (const auto* w = std::get_if<WaitArgs>(&args)) {
    trace_wait(t, lid, *w);
    return;
  }
  const auto& a = std::get<PtraceArgs>(args);
  TracerChange ch;
  SysReturn r = ptrace_on(*t, a, &ch);
  DeferringProcLock g(*t);
  if (ch.add) t->tracing.tracees[a.pid] = ch.add;
  if (ch.remove) t->tracing.tracees.erase(a.pid);
  trace_return(*t, lid, std::move(r));
}

// The dispatcher's entries: Kernel::syscall hands these calls to
// trace_syscall() before taking the caller's lock (they lock other
// processes), so sys_dispatch never sees them.
Outcome sys_ptrace(Lwp&, const PtraceArgs&) { return Outcome::error(Errno::kEINVAL); }
Outcome sys_wait(Lwp&, const WaitArgs&) { return Outcome::error(Errno::kEINVAL); }

}  // namespace lwpd::emul
