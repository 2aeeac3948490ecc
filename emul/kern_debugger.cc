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
#include <sstream>

#include "emul/idalloc.h"
#include "emul/kern.h"
#include "emul/sched.h"

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

// A debugger's requests are inputs from outside the program (Scheduler::InputGate): in
// deterministic mode each takes effect between two kernel events and is recorded with its
// result ("dbg-ptrace <debugger> <request> ... = <errno> <retval>"), which a replay compares
// (Kernel::apply_input). A replay refuses live debuggers (EBUSY at debugger_open).

namespace {

std::string ptrace_input(pid_t dbg, const PtraceArgs& a, const SysReturn& r) {
  return "dbg-ptrace " + std::to_string(dbg) + " " + std::to_string(a.request) + " " +
         std::to_string(a.pid) + " " + std::to_string(a.addr_is_one ? 1 : 0) + " " +
         std::to_string(a.data) + " " + std::to_string(a.in.event_mask) + " " +
         std::to_string(a.in.lwpid) + " = " + std::to_string(static_cast<int>(r.error)) + " " +
         std::to_string(r.retval);
}

std::string wait_input(pid_t dbg, const WaitArgs& a, const SysReturn& r) {
  return "dbg-wait " + std::to_string(dbg) + " " + std::to_string(a.pid) + " " +
         std::to_string(a.options) + " = " + std::to_string(static_cast<int>(r.error)) + " " +
         std::to_string(r.retval);
}

}  // namespace

KResult<ProcRef> Kernel::debugger_open(uint32_t uid) {
  Scheduler::InputGate in(sched());
  if (in.refused()) return Errno::kEBUSY;
  const pid_t pid = TRY(ids_->alloc_pid());
  auto d = std::make_shared<Proc>(*this, pid, ProcSpec{.uid = uid, .comm = "debugger"},
                                  /*is_debugger=*/true);
  {
    MutexLock t(table_mu_);
    debuggers_.emplace(pid, d);
  }
  in.record("dbg-open " + std::to_string(pid) + " " + std::to_string(uid));
  return d;
}

std::optional<SysReturn> Kernel::debugger_ptrace(const ProcRef& d, const PtraceArgs& a) {
  assert(d->is_debugger());
  Scheduler::InputGate in(sched());
  if (in.refused()) return SysReturn::err(Errno::kEBUSY);
  SysReturn r;
  {
    DebuggerCall call(d);
    if (!call.open()) return std::nullopt;
    TracerChange ch;
    r = ptrace_on(*d, a, &ch);
    DeferringProcLock g(*d);
    if (ch.add) {
      if (d->dbg->closed) {
        d->tracing.orphans.push_back(ch.add);  // attached during the close: dies with it
      } else {
        d->tracing.tracees[a.pid] = ch.add;
      }
    }
    if (ch.remove) d->tracing.tracees.erase(a.pid);
  }
  in.record(ptrace_input(d->pid, a, r));
  return r;
}

Kernel::DebuggerWait Kernel::debugger_wait(const ProcRef& d, const WaitArgs& a, uint64_t key,
                                           std::function<void()> on_change) {
  assert(d->is_debugger());
  Scheduler::InputGate in(sched());
  if (in.refused()) return DebuggerWait{.ret = SysReturn::err(Errno::kEBUSY)};
  DebuggerCall call(d);
  if (!call.open()) return DebuggerWait{.kind = DebuggerWait::kClosed};
  if (!wait_args_ok(a)) return DebuggerWait{.ret = SysReturn::err(Errno::kEINVAL)};
  for (;;) {
    uint64_t seq0 = 0;
    std::optional<SysReturn> r = wait_pass(*d, a, &seq0);
    if (r) {
      in.record(wait_input(d->pid, a, *r));  // (a collected status changes the tracee)
      return DebuggerWait{.ret = std::move(*r)};
    }
    DeferringProcLock g(*d);
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
  Scheduler::InputGate in(sched());
  if (in.refused()) return;
  in.record("dbg-undo " + std::to_string(d->pid) + " " + std::to_string(pid));
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
  Scheduler::InputGate in(sched());
  if (in.refused()) return;
  in.record("dbg-delivered " + std::to_string(d->pid) + " " + std::to_string(pid));
  ProcRef forget;  // the zombie's last reference may go: after the lock
  DeferringProcLock g(*d);
  if (auto e = d->dbg->exits.find(pid); e != d->dbg->exits.end()) {
    forget = std::move(e->second);
    d->dbg->exits.erase(e);
  }
}

void Kernel::debugger_close(const ProcRef& d) {
  assert(d->is_debugger());
  Scheduler::InputGate in(sched());
  if (in.refused()) return;
  in.record("dbg-close " + std::to_string(d->pid));
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

// A recorded debugger request, replayed: the debugger the record names is the one this
// replay opened at the same point ("" when the request acted as recorded).
std::string Kernel::apply_debugger_input(const std::string& what) {
  std::istringstream in(what);
  std::string op, eq;
  pid_t dbg = 0;
  in >> op >> dbg;
  auto lookup = [&]() -> ProcRef {
    MutexLock g(replay_mu_);
    auto it = replay_dbgs_.find(dbg);
    return it == replay_dbgs_.end() ? nullptr : it->second;
  };
  if (op == "dbg-open") {
    uint32_t uid = 0;
    in >> uid;
    auto r = debugger_open(uid);
    if (!r.ok())
      return "failed: " + std::string("errno ") + std::to_string(static_cast<int>(r.error()));
    const ProcRef d = r.value();
    MutexLock g(replay_mu_);
    replay_dbgs_[dbg] = d;
    return d->pid == dbg ? "" : "opened debugger " + std::to_string(d->pid);
  }
  const ProcRef d = lookup();
  if (d == nullptr) return "names a debugger this replay has not opened";
  if (op == "dbg-ptrace") {
    PtraceArgs a;
    int one = 0;
    in >> a.request >> a.pid >> one >> a.data >> a.in.event_mask >> a.in.lwpid;
    a.addr_is_one = one != 0;
    auto r = debugger_ptrace(d, a);
    if (!r) return "found the debugger closed";
    const std::string now = ptrace_input(dbg, a, *r);
    return now == what ? "" : "gave " + now.substr(now.find('=') + 2);
  }
  if (op == "dbg-wait") {
    WaitArgs a;
    in >> a.pid >> a.options;
    auto w = debugger_wait(d, a, 0, [] {});
    if (w.kind == DebuggerWait::kPending) {
      debugger_wait_cancel(d, 0);
      return "found nothing to collect";
    }
    if (w.kind == DebuggerWait::kClosed) return "found the debugger closed";
    const std::string now = wait_input(dbg, a, w.ret);
    return now == what ? "" : "gave " + now.substr(now.find('=') + 2);
  }
  pid_t pid = 0;
  in >> pid;
  if (op == "dbg-undo") {
    debugger_wait_undo(d, pid);
  } else if (op == "dbg-delivered") {
    debugger_wait_delivered(d, pid);
  } else if (op == "dbg-close") {
    debugger_close(d);
    MutexLock g(replay_mu_);
    replay_dbgs_.erase(dbg);
  } else {
    return "is not an input this daemon knows";
  }
  return "";
}

}  // namespace lwpd::emul
