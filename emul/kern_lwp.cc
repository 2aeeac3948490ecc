// The core of the emulated NetBSD LWP subsystem.
//
// ---------------------------------------------------------------------------
// Model
//
// An LWP's user code runs on a host thread of the client; the kernel only
// decides *when* it may run. An LWP is either in user mode (LSONPROC with no
// pending kernel entry) or in the kernel with a pending entry (its start, a
// syscall, or a trap after a kick). The pending entry is answered through the
// process's UserPort by lwp_userret(), which first does the work NetBSD's
// lwp_userret() does: exit, suspend, stop, give up the vCPU. No host thread of
// the daemon ever blocks for an emulated sleep: a blocking syscall leaves the
// LWP on a sleep queue with its continuation (SleepKind); a wakeup re-runs it.
//
// States (l_stat) and the transitions lwp_set_state() allows:
//
//   from \ to   IDL RUN ONPROC SLEEP STOP ZOMB SUSPENDED  freed
//   (new)        x
//   IDL              x                  x                   x  (create aborted)
//   RUN                  x
//   ONPROC           x          x     x    x      x
//   SLEEP            x                  x
//   STOP             x          x
//   SUSPENDED        x
//   ZOMB                                                    x
//
//   RUN -> ONPROC only by a vCPU's dispatch; ONPROC -> SLEEP only from a
//   syscall; ONPROC -> STOP/SUSPENDED/ZOMB only in userret or _lwp_exit;
//   SLEEP -> STOP only for interruptible sleeps while the process stops.
//   An LWP in LSRUN is never freed or dequeued except by dispatch, so a vCPU
//   that popped it may take its process lock afterwards.
//
// Process states (p_stat) and the transitions proc_set_stat() (kern_proc.cc) allows:
//
//   from \ to   ACTIVE DYING STOP ZOMB  freed
//   (new)         x
//   ACTIVE              x     x    x
//   STOP          x     x
//   DYING                          x
//   ZOMB                                 x  (Kernel::proc_release)
//
//   ACTIVE -> STOP once a stopping process (PS_STOPPING) has no LWP left that may
//   run; STOP -> ACTIVE on SIGCONT or a tracer's resume; -> DYING when an exit
//   begins (PS_WEXIT, set exactly from then on); -> ZOMB when the last live LWP
//   leaves (ACTIVE -> ZOMB: its last LWP called _lwp_exit). PS_STOPPING only
//   while ACTIVE. SIDL is never used: a process is created whole.
//
// Counters, all under Proc::mu and recomputed by Kernel::check_invariants():
//   nlwps    = LWPs in the table (embryos and zombies included)
//   nrlwps   = LWPs in IDL, RUN, ONPROC or SLEEP
//   nzlwps   = zombies + LWPs inside lwp_exit
//   ndlwps   = detached LWPs, live or zombie
//   nlwpwait = LWPs inside _lwp_wait
//
// Locks, and what they cover:
//   Kernel::table_mu_  the process table (pid -> Proc)
//   Proc::mu           everything about one process and its LWPs, including
//                      sleep queues and the lwpctl slot bitmap
//   Cpu::mu            one vCPU: run queue, current LWP, resched flags, and
//                      the run-queue links of the LWPs queued there
//   IdAllocator, Callout, uid accounting, UserPort implementations: inner
//
// Lock order: the daemon's one order (emul/ and server/) is on one line in
// emul/lock.h, with the annotated Mutex, its guards and the LockRank enum; in
// short  table_mu_ -> Proc::mu -> Cpu::mu -> {Callout, IdAllocator, uid, port}.
//   Never two Proc locks, never two Cpu locks. A vCPU worker holds no lock
//   when it takes a Proc lock; it learns what to do under Cpu::mu, drops it,
//   and re-validates under Proc::mu. Assertion builds abort on a lock taken
//   out of rank order. Fields say their lock in GUARDED_BY and functions their
//   contract in REQUIRES/EXCLUDES (kern.h), checked by clang -Wthread-safety.
//
// Deferred wakeups: a broadcast of the process condvar only marks it pending;
// DeferringProcLock runs the sleepers' continuations just before unlocking, so no
// continuation runs while its waker is half-way through (e.g. a waiter
// reaping an LWP that is still inside lwp_exit).
//
// Kicks and revocation: a kick asks an LWP running user code to enter the kernel; the
// first kick of a user-run generation arms a deadline on its vCPU (Scheduler::note_kick,
// KernelConfig::kick_timeout). If the LWP is still in user mode in that generation when
// the deadline passes, the vCPU worker takes it back by force (lwp_revoke): the process
// is killed as by SIGKILL and the user port told (proc_unresponsive), so a client that
// blocks the kick signal or never traps cannot keep a vCPU.
//
// Files: kern_lwp.cc (this: LWP states, creation, exit, kernel entry and return,
// _lwp_wait, _lwp_suspend), kern_sleep.cc (sleeping and waking: one object per
// sleep kind), kern_proc.cc (process states, signals, stop and continue, exit),
// kern_ptrace.cc (tracing), sys_lwp.cc (the syscalls' argument checks and bodies).
//
// Tracing (kern_ptrace.cc): work that needs another process's lock -- waking
// a tracer's wait(2), killing the tracees of an exited tracer -- is recorded
// under Proc::mu and run by DeferringProcLock right after it unlocks, holding
// nothing (the guard's name says at each call site that its release runs work).
// ---------------------------------------------------------------------------

#include <algorithm>
#include <cassert>

#include "emul/callout.h"
#include "emul/idalloc.h"
#include "emul/kern.h"
#include "emul/sched.h"

namespace lwpd::emul {

using namespace netbsd;

namespace {

bool counts_running(LwpStat s) {
  return s == LwpStat::kIdl || s == LwpStat::kRun || s == LwpStat::kOnProc || s == LwpStat::kSleep;
}

}  // namespace

// ---- DeferringProcLock ------------------------------------------------------------

DeferringProcLock::DeferringProcLock(Proc& p) : p_(&p) { p.mu.lock(); }

DeferringProcLock::~DeferringProcLock() {
  if (p_ != nullptr) unlock_and_run_deferred();
}

// The analysis sees p_ as an alias of the Proc::mu the constructor acquired; it cannot
// follow a member pointer back to the capability, hence the AssertHeld.
void DeferringProcLock::unlock_and_run_deferred() {
  Proc& p = *std::exchange(p_, nullptr);
  p.mu.AssertHeld();
  proc_drain(p);
  // A kernel entry's direct switch, once every wake-up of the entry is known (sched.cc).
  if (Scheduler::end_entry_on(p)) proc_drain(p);
  // Tracing work that needs another process's lock runs after ours drops.
  const pid_t notify = std::exchange(p.traced.notify, 0);
  std::vector<std::shared_ptr<Proc>> orphans = std::move(p.tracing.orphans);
  p.tracing.orphans.clear();
  std::vector<std::function<void()>> fire;
  if (!p.tracing.fire.empty()) fire.swap(p.tracing.fire);
  // Nothing of p may be read once it is unlocked: the lock may have been all that kept it
  // alive. A vCPU whose dispatched LWP ends the process drops its own reference in
  // switch_out; the moment we unlock, another thread can release the zombie and free it
  // (found by fuzz_syscalls: a tracer exiting on a vCPU, then released by the test thread).
  Kernel& k = p.kernel();
  const pid_t pid = p.pid;
  p.mu.unlock();
  if (notify != 0 || !orphans.empty()) trace_after_unlock(k, pid, notify, std::move(orphans));
  for (auto& f : fire) f();  // a debugger's woken waits, after every lock is dropped
}

// ---- state machine ---------------------------------------------------------------

bool lwp_transition_ok(LwpStat from, LwpStat to) {
  using S = LwpStat;
  switch (from) {
    case S::kIdl:
      return to == S::kRun || to == S::kStop;
    case S::kRun:
      return to == S::kOnProc;
    case S::kOnProc:
      return to == S::kRun || to == S::kSleep || to == S::kStop || to == S::kZomb ||
             to == S::kSuspended;
    case S::kSleep:
      return to == S::kRun || to == S::kStop;
    case S::kStop:
      return to == S::kRun || to == S::kSleep;
    case S::kSuspended:
      return to == S::kRun;
    case S::kZomb:
      return false;
  }
  return false;
}

// The one place an LWP changes state: checks the transition, keeps nrlwps
// exact and runs the side effects of leaving and entering LSONPROC and LSRUN.
void lwp_set_state(Lwp& l, LwpStat to, bool run_at_head) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  const LwpStat from = l.stat;
  assert(lwp_transition_ok(from, to));
  Scheduler& s = p.kernel().sched();

  if (from == LwpStat::kOnProc) {
    s.switch_out(l);
    if (l.lwpctl_slot >= 0) {
      p.lwpctl->set_curcpu(l.lwpctl_slot,
                           to == LwpStat::kZomb ? LWPCTL_CPU_EXITED : LWPCTL_CPU_NONE);
    }
  }
  if (counts_running(from) && !counts_running(to)) p.nrlwps--;
  if (!counts_running(from) && counts_running(to)) p.nrlwps++;
  assert(p.nrlwps >= 0 && p.nrlwps <= p.nlwps);
  l.stat = to;

  p.kernel().emit(KEvent{.kind = KEvent::Kind::kState,
                         .pid = p.pid,
                         .lid = l.lid,
                         .from = from,
                         .to = to,
                         .cpu = l.cpu});

  if (to == LwpStat::kOnProc) {
    assert(l.cpu >= 0);
    l.switches++;
    if (l.lwpctl_slot >= 0) p.lwpctl->switch_in(l.lwpctl_slot, l.cpu);
  } else if (to == LwpStat::kRun) {
    s.enqueue(l, run_at_head);
  }
}

int Lwp::eff_prio() const {
  // A time-sharing LWP woken from a kernel sleep runs at a kernel priority
  // until it returns to user mode (l_kpriority).
  if (kboost && base_prio < PRI_KERNEL) return base_prio / 2 + PRI_KERNEL;
  return base_prio;
}

// ---- creation ---------------------------------------------------------------------

KResult<Lwp*> lwp_create(Proc& p, Lwp* creator, uint64_t flags, SigSet sigmask,
                         uint64_t private_ptr) {
  Kernel& k = p.kernel();
  const bool first = p.nlwps == 0;
  if (!first) {
    // Root may exceed RLIMIT_NTHR (kauth RLIMIT_BYPASS).
    int limit = p.uid == 0 ? INT32_MAX : p.rlimit_nthr;
    if (!k.uid_nthr_add(p.uid, limit)) return Errno::kEAGAIN;
  }
  lwp_drain_zomb(p);
  auto lid = k.ids().alloc_lid(p.pid, first ? 0 : k.config().id_reserve);
  if (!lid.ok()) {
    if (!first) k.uid_nthr_sub(p.uid);
    return lid.error();
  }
  auto owned = std::make_unique<Lwp>(lid.value(), &p);
  Lwp* l = owned.get();
  lwp_assert_locked(*l);
  l->sigmask = sigmask;
  l->private_ptr = private_ptr;
  if (creator != nullptr) {
    lwp_assert_locked(*creator);
    l->policy = creator->policy;
    l->base_prio = creator->base_prio;
    l->affinity = creator->affinity;
    l->cpu = creator->cpu;
    l->flag |= creator->flag & (LW_WEXIT | LW_WREBOOT | LW_WCORE);
  }
  // A process's first LWP is not "created" for a tracer (NetBSD reports
  // PTRACE_LWP_CREATE only from _lwp_create's new LWPs), even when an attach
  // stops it before its first return to user mode.
  if (creator == nullptr) l->trace_create_done = true;
  if (flags & LWP_DETACHED) {
    l->detached = true;
    p.ndlwps++;
  }
  l->ret = SysReturn{.kind = ReturnKind::kStart};
  p.lwps.emplace(l->lid, std::move(owned));
  p.order.push_front(l);
  l->order_it = p.order.begin();
  p.nlwps++;
  p.nrlwps++;  // an embryo is pre-counted as running
  k.emit(KEvent{.kind = KEvent::Kind::kCreate,
                .pid = p.pid,
                .lid = l->lid,
                .to = LwpStat::kIdl,
                .cpu = l->cpu});
  return l;
}

void lwp_start(Lwp& l, uint64_t flags) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  assert(l.stat == LwpStat::kIdl);
  // LWP_SUSPENDED only arms the suspension: the LWP suspends itself in
  // userret before its first user instruction, so a _lwp_continue that comes
  // first simply disarms it.
  if (flags & LWP_SUSPENDED) l.flag |= LW_WSUSPEND;
  if (p.stat == ProcStat::kStop || (p.sflag & PS_STOPPING)) {
    lwp_set_state(l, LwpStat::kStop);
    proc_stop_check(p);
  } else {
    lwp_set_state(l, LwpStat::kRun);
  }
}

// ---- freeing ----------------------------------------------------------------------

void lwp_free(Lwp& l) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  Kernel& k = p.kernel();
  assert(l.stat == LwpStat::kZomb || l.stat == LwpStat::kIdl);
  assert(l.sleep.kind == SleepKind::kNone);
  if (p.zomblwp == &l) p.zomblwp = nullptr;
  if (l.stat == LwpStat::kZomb) p.nzlwps--;
  if (l.stat == LwpStat::kIdl) p.nrlwps--;
  if (l.detached) p.ndlwps--;
  p.nlwps--;
  // The first LWP of a process was not counted against RLIMIT_NTHR; the
  // matching rule on the way out is that the last one is not uncounted.
  if (p.nlwps > 0) k.uid_nthr_sub(p.uid);
  if (l.lwpctl_slot >= 0) p.lwpctl->free_slot(l.lwpctl_slot);
  k.ids().free_lid(p.pid, l.lid);
  k.emit(KEvent{
      .kind = KEvent::Kind::kFree, .pid = p.pid, .lid = l.lid, .from = l.stat, .cpu = l.cpu});
  p.order.erase(l.order_it);
  proc_broadcast(p);
  p.lwps.erase(l.lid);  // destroys l
}

void lwp_drain_zomb(Proc& p) {
  if (Lwp* z = p.zomblwp) {
    lwp_assert_locked(*z);
    lwp_free(*z);
  }
}
// ---- exit ---------------------------------------------------------------------------

void lwp_exit(Lwp& l) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  assert(l.stat == LwpStat::kOnProc && l.in_kernel);
  // The creator never returns, so its new LWP never starts: creation aborted.
  if (Lwp* child = std::exchange(l.pending_child, nullptr)) {
    lwp_assert_locked(*child);
    lwp_free(*child);
  }
  if (p.live_lwps() == 1) {
    // The last live LWP takes the whole process with it (exit status 0 unless
    // an exit was already under way with its own status).
    if (!(p.sflag & PS_WEXIT)) p.xstat = ExitStatus{};
    proc_finish_exit(p, l);
    return;
  }
  p.nzlwps++;
  l.exiting = true;
  if (l.detached) {
    lwp_drain_zomb(p);
    p.zomblwp = &l;
  }
  if (l.name) l.name = "(zombie)";
  lwp_set_state(l, LwpStat::kZomb);
  l.exiting = false;
  l.in_kernel = false;
  proc_broadcast(p);
  p.port->lwp_exited(l.lid);
}

// ---- kernel entry and return to user --------------------------------------------------

void lwp_kick(Lwp& l) {
  if (!l.user_mode()) return;
  l.proc->port->lwp_kick(l.lid, l.ugen);
  l.proc->kernel().sched().note_kick(l);
}

// The kernel owns its vCPUs: a user side that does not answer a kick (it blocked the
// kick signal, its host process is stopped, or a raw client never traps) cannot keep
// one. The LWP is still in user mode in the kicked generation, so nothing it asked for
// is pending: its process is killed as by SIGKILL, and process exit takes every LWP
// running user code into the kernel without the user side's help (proc_exit_begin).
void lwp_revoke(const std::shared_ptr<Proc>& p, lwpid_t lid, int cpu, uint64_t gen,
                std::chrono::milliseconds waited) {
  DeferringProcLock g(*p);
  Lwp* l = p->find_lwp(lid);
  if (l == nullptr) return;  // it left meanwhile
  lwp_assert_locked(*l);
  if (l->stat != LwpStat::kOnProc || l->cpu != cpu || !l->user_mode() || l->ugen != gen ||
      (p->sflag & PS_WEXIT))
    return;  // it answered (or left) meanwhile
  Kernel& k = p->kernel();
  k.count_unresponsive_kill();
  k.log(2, "pid " + std::to_string(p->pid) + " lid " + std::to_string(lid) + ": no kernel entry " +
               std::to_string(waited.count()) + " ms after a kick; the LWP loses vCPU " +
               std::to_string(cpu) + " and its process is killed (unresponsive)");
  p->port->proc_unresponsive(lid);
  proc_exit_begin(*p, ExitStatus{.signaled = true, .code = NB_SIGKILL}, nullptr);
  // Exit may have freed `l`: look it up again.
  if ([[maybe_unused]] const Lwp* after = p->find_lwp(lid)) {
    lwp_assert_locked(*after);
    assert(!after->user_mode());
  }
}

void lwp_kick_current(const std::shared_ptr<Proc>& p, lwpid_t lid, int cpu) {
  DeferringProcLock g(*p);
  Lwp* l = p->find_lwp(lid);
  if (l == nullptr) return;
  lwp_assert_locked(*l);
  if (l->stat == LwpStat::kOnProc && l->cpu == cpu) lwp_kick(*l);
}

void lwp_dispatch(Lwp& l, int cpu) {
  DeferringProcLock g(*l.proc);
  lwp_run_on(l, cpu);
}

void lwp_run_on(Lwp& l, int cpu) {
  assert(l.stat == LwpStat::kRun && l.in_kernel);
  l.cpu = cpu;
  lwp_set_state(l, LwpStat::kOnProc);
  lwp_userret(l);
}

// Return to user mode, unless something must happen first. Mirrors NetBSD's
// lwp_userret(): exit, then suspension, then a process stop, then preemption.
void lwp_userret(Lwp& l) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  assert(l.stat == LwpStat::kOnProc && l.in_kernel);
  if ((l.flag & LW_WEXIT) || (p.sflag & PS_WEXIT)) {
    lwp_exit(l);
    return;
  }
  if (l.flag & LW_WSUSPEND) {
    lwp_set_state(l, LwpStat::kSuspended);
    proc_broadcast(p);
    proc_stop_check(p);
    return;
  }
  if ((p.sflag & PS_STOPPING) || p.stat == ProcStat::kStop) {
    lwp_set_state(l, LwpStat::kStop);
    proc_stop_check(p);
    return;
  }
  if (trace_userret(l)) return;
  Scheduler& s = p.kernel().sched();
  if (s.take_resched(l)) {
    lwp_set_state(l, LwpStat::kRun, l.policy == NB_SCHED_FIFO);
    return;
  }
  if (l.kboost) {
    l.kboost = false;
    s.set_cur_prio(l);
  }
  if (Lwp* child = std::exchange(l.pending_child, nullptr)) {
    lwp_assert_locked(*child);
    lwp_start(*child, l.pending_child_flags);
  }
  for (const SigInfo& si : l.sigq) p.port->lwp_signal(l.lid, si);
  l.sigq.clear();
  l.sigpend = 0;
  l.in_kernel = false;
  l.ugen++;
  p.port->lwp_return(l.lid, l.ret, l.ugen);
}

// ---- _lwp_wait --------------------------------------------------------------------

// Leave _lwp_wait without collecting anything (NetBSD's error exit).
void lwp_wait_leave(Lwp& l) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  assert(l.in_lwpwait);
  if (l.waitingfor != 0) {
    if (Lwp* t = p.find_lwp_any(l.waitingfor)) {
      lwp_assert_locked(*t);
      if (t->waiter == l.lid) t->waiter = 0;
    }
  }
  l.in_lwpwait = false;
  l.waitingfor = 0;
  p.nlwpwait--;
  proc_broadcast(p);
}

// One pass of NetBSD's lwp_wait() loop. Returns the syscall's result, or
// nullopt when the caller must (keep) sleep(ing).
std::optional<SysReturn> lwp_wait_scan(Lwp& l) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  const lwpid_t wait_for = l.waitingfor;
  lwp_drain_zomb(p);
  auto fail = [&](Errno e) {
    l.proc->mu.AssertHeld();  // a lambda is analysed on its own: it runs under ours
    lwp_wait_leave(l);
    return SysReturn::err(e);
  };
  if (wait_for != 0) {
    Lwp* t = p.find_lwp_any(wait_for);
    if (t == nullptr) return fail(Errno::kESRCH);
    lwp_assert_locked(*t);
    if (t->detached) return fail(Errno::kEINVAL);
  }
  int counted = 0;
  for (Lwp* c : p.order) {
    lwp_assert_locked(*c);
    if (wait_for != 0 && c->lid != wait_for) continue;
    if (c->stat == LwpStat::kIdl) continue;
    // Mutual wait (and self-wait: the caller waits for itself).
    if (c->lid == wait_for && c->in_lwpwait && c->waitingfor == l.lid) {
      return fail(Errno::kEDEADLK);
    }
    if (c == &l || c->detached) continue;
    if (wait_for != 0) {
      if (c->waiter == 0) c->waiter = l.lid;
    } else if (c->waiter != 0 && c->waiter != l.lid) {
      counted++;  // reserved for its specific waiter
      continue;
    }
    counted++;
    if (c->stat == LwpStat::kZomb) {
      const lwpid_t departed = c->lid;
      l.in_lwpwait = false;
      l.waitingfor = 0;
      p.nlwpwait--;
      c->waiter = 0;
      lwp_free(*c);
      return SysReturn::ok(departed);
    }
  }
  if (counted == 0) return fail(Errno::kESRCH);
  if (p.nlwpwait == p.nlwps) return fail(Errno::kEDEADLK);
  return std::nullopt;
}

// ---- _lwp_suspend --------------------------------------------------------------------

// The suspender's wait condition, re-run on every broadcast.
std::optional<SysReturn> lwp_suspend_check(Lwp& l) {
  Proc& p = *l.proc;
  p.mu.AssertHeld();
  const lwpid_t tid = l.sleep.kind == SleepKind::kSuspendWait ? l.sleep.target : 0;
  Lwp* t = p.find_lwp(tid);
  if (t == nullptr) return SysReturn::err(Errno::kESRCH);
  lwp_assert_locked(*t);
  if ((l.flag | t->flag) & (LW_WCORE | LW_WEXIT)) return SysReturn::err(Errno::kERESTART);
  if (t->stat == LwpStat::kSuspended || !(t->flag & LW_WSUSPEND)) return SysReturn{};
  return std::nullopt;
}

}  // namespace lwpd::emul
