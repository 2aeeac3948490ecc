// Internal: the core operations of the emulated kernel (kern_lwp.cc: LWPs; kern_sleep.cc:
// sleeping and waking; kern_proc.cc: process state, signals, stop, exit) used by
// the syscall layer (sys_lwp.cc), the scheduler and the Kernel facade. Each
// declaration states its lock contract in clang's thread-safety attributes
// (emul/lock.h): REQUIRES(l.proc->mu) / REQUIRES(p.mu) -- the caller holds the
// process lock (through a DeferringProcLock) -- or EXCLUDES(...) for the few
// that take it themselves.
#pragma once

#include <optional>

#include "emul/proc.h"
#include "emul/syscalls.h"

namespace lwpd::emul {

// What a syscall implementation tells the dispatcher.
struct Outcome {
  enum What { kReturn, kBlocked, kNoReturn } what = kReturn;
  SysReturn ret;
  static Outcome of(SysReturn r) { return Outcome{kReturn, std::move(r)}; }
  static Outcome error(Errno e) { return Outcome{kReturn, SysReturn::err(e)}; }
  static Outcome blocked() { return Outcome{kBlocked, {}}; }
  static Outcome gone() { return Outcome{kNoReturn, {}}; }
};

// ---- state machine ----
bool lwp_transition_ok(LwpStat from, LwpStat to);
void lwp_set_state(Lwp& l, LwpStat to, bool run_at_head = false) REQUIRES(l.proc->mu);
bool proc_transition_ok(netbsd::ProcStat from, netbsd::ProcStat to);
void proc_set_stat(Proc& p, netbsd::ProcStat to) REQUIRES(p.mu);  // kern_proc.cc

// ---- creation, exit, freeing ----
// Errors: EAGAIN (RLIMIT_NTHR, LID space).
KResult<Lwp*> lwp_create(Proc& p, Lwp* creator, uint64_t flags, netbsd::SigSet sigmask,
                         uint64_t private_ptr) REQUIRES(p.mu);
void lwp_start(Lwp& l, uint64_t flags) REQUIRES(l.proc->mu);
void lwp_exit(Lwp& l) REQUIRES(l.proc->mu);  // never returns to user
void lwp_free(Lwp& l) REQUIRES(l.proc->mu);
void lwp_drain_zomb(Proc& p) REQUIRES(p.mu);

// ---- sleeping and waking ----
struct SleepSpec {
  SleepKind kind = SleepKind::kKernel;
  bool interruptible = true;
  std::optional<Clock::time_point> deadline;
  lwpid_t target = 0;
  bool ts_relative = false;
};
// A sleep kind's behaviour (kern_sleep.cc): one object per SleepKind.
class SleepClass {
 public:
  virtual ~SleepClass() = default;
  virtual const char* wchan() const = 0;  // the wait channel's name (lwpstat, Inspect)
  virtual bool on_lwpcv() const = 0;      // sleeps on the process condvar
  // What wakeup `why` means to sleeper `l`: its entry's return value (the sleep ends) or
  // nothing (it sleeps on). May consume the flags that woke it and undo the sleep's own
  // bookkeeping (_lwp_wait's).
  virtual std::optional<SysReturn> wake(Lwp& l, WakeReason why) const REQUIRES(l.proc->mu) = 0;
};
const SleepClass& sleep_class(SleepKind k);  // any kind but kNone
const char* sleep_wchan(SleepKind k);        // "" for kNone
// Put the calling LWP to sleep. Returns a result instead when an
// interruptible sleep may not begin (LW_CANCELLED, pending signal, exiting).
std::optional<SysReturn> lwp_sleep(Lwp& l, const SleepSpec& s) REQUIRES(l.proc->mu);
// Deliver a wakeup; the sleeper's kind decides what it means.
void lwp_wake(Lwp& l, WakeReason why) REQUIRES(l.proc->mu);
// End the sleep with `r` as the entry's return value and make it runnable.
void lwp_end_sleep(Lwp& l, SysReturn r) REQUIRES(l.proc->mu);
// Broadcast the process condvar; sleepers re-evaluate when the lock drops.
void proc_broadcast(Proc& p) REQUIRES(p.mu);
void proc_drain(Proc& p) REQUIRES(p.mu);
Errno lwp_sig_error(const Lwp& l, int signo)
    REQUIRES(l.proc->mu);  // EINTR or ERESTART (SA_RESTART)

// ---- kernel entry and return ----
void lwp_userret(Lwp& l) REQUIRES(l.proc->mu);
void lwp_kick(Lwp& l) REQUIRES(l.proc->mu);               // ask a user-mode LWP to enter the kernel
void lwp_dispatch(Lwp& l, int cpu) EXCLUDES(l.proc->mu);  // vCPU worker
// l (claimed by vCPU `cpu`, LSRUN) runs there: LSONPROC, then back to user mode.
void lwp_run_on(Lwp& l, int cpu) REQUIRES(l.proc->mu);
void lwp_kick_current(const std::shared_ptr<Proc>& p, lwpid_t lid, int cpu)
    EXCLUDES(p->mu);  // takes the lock
void lwp_timeout(const std::shared_ptr<Proc>& p, lwpid_t lid, uint64_t seq)
    EXCLUDES(p->mu);  // takes the lock
// A kick of LWP `lid` in user-run generation `gen` on `cpu` went unanswered for `waited`:
// if it is still running user code in that generation, its process is killed (takes the
// lock; the vCPU worker calls it holding nothing).
void lwp_revoke(const std::shared_ptr<Proc>& p, lwpid_t lid, int cpu, uint64_t gen,
                std::chrono::milliseconds waited) EXCLUDES(p->mu);

// ---- signals, stop/continue, process exit ----
void lwp_post_signal(Lwp& l, const SigInfo& si) REQUIRES(l.proc->mu);
// `catch_traced`: a traced process's tracer sees the signal first (a stop);
// false delivers it (PT_CONTINUE's signal).
void proc_post_signal(Proc& p, Lwp* target, const SigInfo& si, bool catch_traced = true)
    REQUIRES(p.mu);
void proc_stop(Proc& p) REQUIRES(p.mu);
void proc_continue(Proc& p) REQUIRES(p.mu);
void proc_stop_check(Proc& p) REQUIRES(p.mu);
void proc_exit_begin(Proc& p, ExitStatus st, Lwp* caller) REQUIRES(p.mu);
// The last live LWP `last` leaves (from lwp_exit): every LWP is freed and the process
// becomes a zombie. The PID stays allocated until Kernel::proc_release().
void proc_finish_exit(Proc& p, Lwp& last) REQUIRES(p.mu);

// ---- _lwp_wait and _lwp_suspend bodies (re-run on every wakeup) ----
std::optional<SysReturn> lwp_wait_scan(Lwp& l) REQUIRES(l.proc->mu);
void lwp_wait_leave(Lwp& l) REQUIRES(l.proc->mu);
std::optional<SysReturn> lwp_suspend_check(Lwp& l) REQUIRES(l.proc->mu);
// Ask `t` to suspend (LW_WSUSPEND) and get it to a kernel boundary; `caller` is the
// suspending LWP or nullptr for the kernel acting from outside (admin).
void lwp_suspend_arm(Lwp& t, const Lwp* caller) REQUIRES(t.proc->mu);
// _lwp_continue's body for target `t`.
void lwp_continue_target(Lwp& t) REQUIRES(t.proc->mu);

// ---- tracing (kern_ptrace.cc) ----
// ptrace(2) / wait(2) of LWP `lid` of `t`, which Kernel::syscall has marked
// in the kernel and whose lock it has dropped: these calls lock other
// processes, one at a time. Takes the locks itself.
void trace_syscall(const std::shared_ptr<Proc>& t, lwpid_t lid, const SysArgs& args)
    EXCLUDES(t->mu);
Outcome sys_ptrace(Lwp& l, const PtraceArgs& a)
    REQUIRES(l.proc->mu);  // not reached (see trace_syscall)
Outcome sys_wait(Lwp& l, const WaitArgs& a)
    REQUIRES(l.proc->mu);  // not reached (see trace_syscall)
// What one ptrace request changes in the caller's tracee map (the caller applies it
// under its own lock): PT_ATTACH adds `add`, PT_DETACH removes the pid.
struct TracerChange {
  std::shared_ptr<Proc> add;
  bool remove = false;
};
// ptrace(2) by tracer `t` (a process or a debugger), which holds no lock.
SysReturn ptrace_on(Proc& t, const PtraceArgs& a, TracerChange* ch) EXCLUDES(t.mu);
// wait(2) of a tracer: the options known (WNOHANG), then one look at its tracees -- the
// result, or nullopt when the caller must wait unless t's TracerState::seq moved from
// `*seq0` meanwhile (the caller checks under the lock it waits with).
bool wait_args_ok(const WaitArgs& a);
std::optional<SysReturn> wait_pass(Proc& t, const WaitArgs& a, uint64_t* seq0) EXCLUDES(t.mu);
// A signal for a traced process becomes a trace stop; true = taken.
bool trace_signal(Proc& p, Lwp* target, const SigInfo& si) REQUIRES(p.mu);
// lwp_userret: report this LWP's create/exit event (or exit after it);
// true = the LWP does not return to user now.
bool trace_userret(Lwp& l) REQUIRES(l.proc->mu);
// _lwp_exit: true = the exit waits for userret to report PTRACE_LWP_EXIT.
bool trace_lwp_exit(Lwp& l) REQUIRES(l.proc->mu);
// The process is now fully stopped: its tracer must be told.
void trace_note_stop(Proc& p) REQUIRES(p.mu);
// The process has exited: tell its tracer, orphan its own tracees.
void trace_proc_exited(Proc& p) REQUIRES(p.mu);
// Run by DeferringProcLock after it unlocked `self`: notify a tracer, kill orphans.
void trace_after_unlock(Kernel& k, pid_t self, pid_t notify,
                        std::vector<std::shared_ptr<Proc>> orphans);

// ---- the syscall layer (sys_lwp.cc) ----
Outcome sys_dispatch(Lwp& l, const SysArgs& args) REQUIRES(l.proc->mu);

}  // namespace lwpd::emul
