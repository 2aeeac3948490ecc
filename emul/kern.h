// Internal: the core operations of the emulated kernel (kern_lwp.cc) used by
// the syscall layer (sys_lwp.cc), the scheduler and the Kernel facade. Unless
// a name ends in "Unlocked" or says otherwise, the caller holds Proc::mu of
// the process concerned (through a ProcLock).
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
void lwp_set_state(Lwp& l, LwpStat to, bool run_at_head = false);

// ---- creation, exit, freeing ----
// Errors: EAGAIN (RLIMIT_NTHR, LID space).
KResult<Lwp*> lwp_create(Proc& p, Lwp* creator, uint64_t flags, netbsd::SigSet sigmask,
                         uint64_t private_ptr);
void lwp_start(Lwp& l, uint64_t flags);
void lwp_exit(Lwp& l);  // never returns to user
void lwp_free(Lwp& l);
void lwp_drain_zomb(Proc& p);

// ---- sleeping and waking ----
struct SleepSpec {
  SleepKind kind = SleepKind::kKernel;
  bool interruptible = true;
  std::optional<Clock::time_point> deadline;
  lwpid_t target = 0;
  bool ts_relative = false;
};
// Put the calling LWP to sleep. Returns a result instead when an
// interruptible sleep may not begin (LW_CANCELLED, pending signal, exiting).
std::optional<SysReturn> lwp_sleep(Lwp& l, const SleepSpec& s);
// Deliver a wakeup; the sleeper's kind decides what it means.
void lwp_wake(Lwp& l, WakeReason why);
// End the sleep with `r` as the entry's return value and make it runnable.
void lwp_end_sleep(Lwp& l, SysReturn r);
// Broadcast the process condvar; sleepers re-evaluate when the lock drops.
void proc_broadcast(Proc& p);
void proc_drain(Proc& p);
Errno lwp_sig_error(const Lwp& l, int signo);  // EINTR or ERESTART (SA_RESTART)

// ---- kernel entry and return ----
void lwp_userret(Lwp& l);
void lwp_kick(Lwp& l);               // ask a user-mode LWP to enter the kernel
void lwp_dispatch(Lwp& l, int cpu);  // vCPU worker
void lwp_kick_current(const std::shared_ptr<Proc>& p, lwpid_t lid, int cpu);  // takes the lock
void lwp_timeout(const std::shared_ptr<Proc>& p, lwpid_t lid, uint64_t seq);  // takes the lock
// A kick of LWP `lid` in user-run generation `gen` on `cpu` went unanswered for `waited`:
// if it is still running user code in that generation, its process is killed (takes the
// lock; the vCPU worker calls it holding nothing).
void lwp_revoke(const std::shared_ptr<Proc>& p, lwpid_t lid, int cpu, uint64_t gen,
                std::chrono::milliseconds waited);

// ---- signals, stop/continue, process exit ----
void lwp_post_signal(Lwp& l, const SigInfo& si);
// `catch_traced`: a traced process's tracer sees the signal first (a stop);
// false delivers it (PT_CONTINUE's signal).
void proc_post_signal(Proc& p, Lwp* target, const SigInfo& si, bool catch_traced = true);
void proc_stop(Proc& p);
void proc_continue(Proc& p);
void proc_stop_check(Proc& p);
void proc_exit_begin(Proc& p, ExitStatus st, Lwp* caller);

// ---- _lwp_wait and _lwp_suspend bodies (re-run on every wakeup) ----
std::optional<SysReturn> lwp_wait_scan(Lwp& l);
void lwp_wait_leave(Lwp& l);
std::optional<SysReturn> lwp_suspend_check(Lwp& l);
// Ask `t` to suspend (LW_WSUSPEND) and get it to a kernel boundary; `caller` is the
// suspending LWP or nullptr for the kernel acting from outside (admin).
void lwp_suspend_arm(Lwp& t, const Lwp* caller);
// _lwp_continue's body for target `t`.
void lwp_continue_target(Lwp& t);

// ---- tracing (kern_ptrace.cc) ----
// ptrace(2) / wait(2) of LWP `lid` of `t`, which Kernel::syscall has marked
// in the kernel and whose lock it has dropped: these calls lock other
// processes, one at a time. Takes the locks itself.
void trace_syscall(const std::shared_ptr<Proc>& t, lwpid_t lid, const SysArgs& args);
Outcome sys_ptrace(Lwp& l, const PtraceArgs& a);  // not reached (see trace_syscall)
Outcome sys_wait(Lwp& l, const WaitArgs& a);      // not reached (see trace_syscall)
// A signal for a traced process becomes a trace stop; true = taken.
bool trace_signal(Proc& p, Lwp* target, const SigInfo& si);
// lwp_userret: report this LWP's create/exit event (or exit after it);
// true = the LWP does not return to user now.
bool trace_userret(Lwp& l);
// _lwp_exit: true = the exit waits for userret to report PTRACE_LWP_EXIT.
bool trace_lwp_exit(Lwp& l);
// The process is now fully stopped: its tracer must be told.
void trace_note_stop(Proc& p);
// The process has exited: tell its tracer, orphan its own tracees.
void trace_proc_exited(Proc& p);
// Run by ProcLock after it unlocked `self`: notify a tracer, kill orphans.
void trace_after_unlock(Kernel& k, pid_t self, pid_t notify,
                        std::vector<std::shared_ptr<Proc>> orphans);

// ---- the syscall layer (sys_lwp.cc) ----
Outcome sys_dispatch(Lwp& l, const SysArgs& args);

}  // namespace lwpd::emul
