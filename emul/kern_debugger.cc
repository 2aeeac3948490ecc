// The debugger facade (Kernel::debugger_*): tracers that are no emulated process -- a
// client holding the daemon's admin token (the Trace service).
//
// A debugger is a Proc without LWPs, port or place in the process table
// (Kernel::debuggers_, seen only by tracer_lookup), with a PID from the process allocator
// so a tracee's `tracer` is unambiguous, and a DebuggerState of its own (Proc::dbg). Its
// ptrace runs synchronously on the caller's thread (ptrace_on, as a process's does); its
// wait either answers at once (wait_pass) or registers a callback under a caller-chosen
// key (DebuggerState::waiters), run by a tracee's notification after every lock is
// dropped -- the same TracerState::seq protocol as a process's wait(2): a notification
// between the scan and the registration is seen as a moved seq. Closing it is a
// tracer's exit: tracees killed, callbacks run, PID freed by the last call in progress
// (DebuggerCall).
//
// Lock order: emul/lock.h (KernelTable -> Proc); never two Proc locks.

#include <cassert>

#include "emul/idalloc.h"
#include "emul/kern.h"

namespace lwpd::emul {

using namespace netbsd;

namespace {

// Brackets one call on a debugger: refused once it is closed. The last call to end
// after debugger_close releases the PID, so a tracee that a racing PT_ATTACH gave to
// the closing debugger has lost that tracer (killed as an orphan) before the PID can
// name anyone else.
class DebuggerCall {
 public:
  explicit DebuggerCall(const ProcRef& d) : d_(d) {
    DeferringProcLock g(*d_);
    open_ = !d_->dbg->closed;
    if (open_) d_->dbg->calls++;
  }
  ~DebuggerCall() {
    if (!open_) return;
    bool last = false;
    {
      DeferringProcLock g(*d_);
      last = --d_->dbg->calls == 0 && d_->dbg->closed;
    }
    if (last) d_->kernel().debugger_forget(d_);
  }
  DebuggerCall(const DebuggerCall&) = delete;
  DebuggerCall& operator=(const DebuggerCall&) = delete;
  bool open() const { return open_; }

 private:
  const ProcRef& d_;
  bool open_ = false;
};

}  // namespace

KResult<ProcRef> Kernel::debugger_open(uint32_t uid) {
  const pid_t pid = TRY(ids_->alloc_pid());
  auto d = std::make_shared<Proc>(*this, pid, ProcSpec{.uid = uid, .comm = "debugger"},
                                  /*is_debugger=*/true);
  MutexLock t(table_mu_);
  debuggers_.emplace(pid, d);
  return d;
}

std::optional<SysReturn> Kernel::debugger_ptrace(const ProcRef& d, const PtraceArgs& a) {
  assert(d->is_debugger());
  DebuggerCall call(d);
  if (!call.open()) return std::nullopt;
  TracerChange ch;
  SysReturn r = ptrace_on(*d, a, &ch);
  DeferringProcLock g(*d);
  if (ch.add) {
    if (d->dbg->closed) {
      d->tracing.orphans.push_back(ch.add);  // attached during the close: dies with it
    } else {
      d->tracing.tracees[a.pid] = ch.add;
    }
  }
  if (ch.remove) d->tracing.tracees.erase(a.pid);
  return r;
}

Kernel::DebuggerWait Kernel::debugger_wait(const ProcRef& d, const WaitArgs& a, uint64_t key,
                                           std::function<void()> on_change) {
  assert(d->is_debugger());
  DebuggerCall call(d);
  if (!call.open()) return DebuggerWait{.kind = DebuggerWait::kClosed};
  if (!wait_args_ok(a)) return DebuggerWait{.ret = SysReturn::err(Errno::kEINVAL)};
  for (;;) {
    uint64_t seq0 = 0;
    std::optional<SysReturn> r = wait_pass(*d, a, &seq0);
    DeferringProcLock g(*d);
    if (r) return DebuggerWait{.ret = std::move(*r)};
    if (d->tracing.seq != seq0) continue;  // a tracee changed meanwhile: look again
    // Closed during the pass: its waiters have been run already; this one never would.
    if (d->dbg->closed) return DebuggerWait{.kind = DebuggerWait::kClosed};
    const bool fresh = d->dbg->waiters.emplace(key, std::move(on_change)).second;
    assert(fresh && "debugger_wait: key already pending");
    (void)fresh;
    return DebuggerWait{.kind = DebuggerWait::kPending};
  }
}

bool Kernel::debugger_wait_cancel(const ProcRef& d, uint64_t key) {
  DeferringProcLock g(*d);
  return d->dbg->waiters.erase(key) == 1;
}

void Kernel::debugger_wait_undo(const ProcRef& d, pid_t pid) {
  assert(d->is_debugger());
  ProcRef q;
  bool exited = false;
  {
    DeferringProcLock g(*d);
    if (d->dbg->closed) return;
    if (auto e = d->dbg->exits.find(pid); e != d->dbg->exits.end()) {
      // Traced again; its status is armed again below (a wait in between finds nothing to
      // collect yet and is told once it is).
      q = std::move(e->second);
      d->dbg->exits.erase(e);
      if (!d->tracing.tracees.emplace(pid, q).second) return;  // the pid names a new tracee now
      exited = true;
    } else if (auto it = d->tracing.tracees.find(pid); it != d->tracing.tracees.end()) {
      q = it->second;
    } else {
      return;
    }
  }
  DeferringProcLock g(*q);
  if (q->traced.tracer != d->pid) return;
  if (exited) {
    q->traced.exit_seen = false;
  } else {
    // Still in the stop that was collected: nothing acted on it (a PT_CONTINUE would have
    // ended it, a PT_STOP re-armed it).
    if (q->stat != ProcStat::kStop || !q->traced.waited || q->traced.xsig == 0) return;
    q->traced.waited = false;
  }
  trace_note_stop(*q);  // the debugger's waits re-scan once g drops
}

void Kernel::debugger_wait_delivered(const ProcRef& d, pid_t pid) {
  assert(d->is_debugger());
  ProcRef forget;  // the zombie's last reference may go: after the lock
  DeferringProcLock g(*d);
  if (auto e = d->dbg->exits.find(pid); e != d->dbg->exits.end()) {
    forget = std::move(e->second);
    d->dbg->exits.erase(e);
  }
}

void Kernel::debugger_close(const ProcRef& d) {
  assert(d->is_debugger());
  bool release = false;
  std::map<pid_t, ProcRef> exits;  // the kept zombies' last references may go: after the lock
  {
    DeferringProcLock g(*d);
    if (d->dbg->closed) return;
    d->dbg->closed = true;
    exits.swap(d->dbg->exits);
    for (auto& [pid, q] : d->tracing.tracees) d->tracing.orphans.push_back(q);
    d->tracing.tracees.clear();
    for (auto& [key, fn] : d->dbg->waiters) d->tracing.fire.push_back(std::move(fn));
    d->dbg->waiters.clear();
    release = d->dbg->calls == 0;
  }  // DeferringProcLock: the orphans are killed, then the waits' callbacks run
  if (release) debugger_forget(d);
}

void Kernel::debugger_forget(const ProcRef& d) {
  MutexLock t(table_mu_);
  auto it = debuggers_.find(d->pid);
  if (it == debuggers_.end() || it->second != d) return;
  debuggers_.erase(it);
  ids_->free_pid(d->pid);
}

}  // namespace lwpd::emul
