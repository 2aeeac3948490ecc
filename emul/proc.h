// Internal: the process and LWP objects of the emulated kernel, and the
// process lock guard. Only emul/ includes this file. Each field names its lock:
// GUARDED_BY(mu) / GUARDED_BY(proc->mu) = Proc::mu (checked by clang, emul/lock.h),
// [k] = immutable after construction, [c] = the lock of the Cpu whose run queue
// holds the LWP -- which Cpu depends on rq_cpu, so the analysis cannot name it;
// those links are reached only through a Cpu's RunQueue, itself GUARDED_BY(Cpu::mu).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "emul/kernel.h"
#include "emul/lock.h"
#include "emul/lwpctl.h"
#include "emul/netbsd.h"
#include "emul/syscalls.h"

namespace lwpd::emul {

using Clock = std::chrono::steady_clock;
using netbsd::LwpStat;
using netbsd::ProcStat;

// What a sleeping LWP is waiting for; decides how a wakeup is interpreted.
enum class SleepKind : uint8_t {
  kNone,
  kPark,         // ___lwp_park60, wmesg "parked"
  kLwpWait,      // _lwp_wait on the process condvar, wmesg "lwpwait"
  kSuspendWait,  // _lwp_suspend waiting for its target, wmesg "lwpsusp"
  kExitWait,     // exit(2) waiting for the other LWPs to exit, uninterruptible
  kKernel,       // a generic uninterruptible kernel sleep (tests, internal)
  kTraceWait,    // wait(2) of a tracer for its tracees, wmesg "wait"
};

// Why a sleeper is being woken.
enum class WakeReason : uint8_t {
  kBroadcast,  // the condvar it sleeps on was broadcast: re-evaluate
  kUnpark,     // _lwp_unpark targeted it
  kTimeout,    // its deadline passed
  kCancel,     // _lwp_wakeup (LW_CANCELLED)
  kSignal,     // an unmasked signal was posted
  kExit,       // the process is exiting (LW_WEXIT)
  kSpurious,   // kicked out of an interruptible sleep (suspend, NB_SIGCONT)
};

struct Sleep {
  SleepKind kind = SleepKind::kNone;
  bool interruptible = false;
  uint64_t seq = 0;                           // identifies this sleep to its callout
  std::optional<Clock::time_point> deadline;  // park timeout
  lwpid_t target = 0;                         // kSuspendWait: the LWP being suspended
  bool ts_relative = false;                   // park: write the remaining time back
  bool on_lwpcv = false;                      // queued on Proc::lwpcv_sleepers
  // Set when a stopped sleeper was woken: it returns this once continued.
  std::optional<SysReturn> woken;
};

struct Lwp;
class Proc;

// A process's side of being traced: who traces it and the trace stop being reported.
// Fields of Proc::traced, under Proc::mu.
struct TraceeState {
  pid_t tracer = 0;          // pid of the tracing process or debugger, 0 = not traced
  int events = 0;            // PTRACE_* event mask (pe_set_event)
  int xsig = 0;              // signal of the trace stop being reported (p_xsig)
  bool waited = false;       // that stop was collected by the tracer's wait
  bool exit_seen = false;    // the tracer's wait collected the exit status
  SigInfo si;                // siginfo of the last stop (lid 0 = whole process)
  int report_event = 0;      // PTRACE_LWP_* of the last event stop, else 0
  lwpid_t report_lwp = 0;    // LWP that reported it
  std::deque<SigInfo> sigq;  // signals caught while a stop was reported
  pid_t notify = 0;          // tracer to notify once the lock drops (0 = none)
};

// A process's side of tracing others (a process or a debugger). Proc::tracing, under
// Proc::mu.
struct TracerState {
  // Processes this one traces, by pid. The reference keeps an exited tracee's status
  // collectable after its session released the PID.
  std::map<pid_t, std::shared_ptr<Proc>> tracees;
  uint64_t seq = 0;  // ++ on every notification from a tracee
  // Tracees to kill once the lock drops: this tracer has exited.
  std::vector<std::shared_ptr<Proc>> orphans;
  // Callbacks to run once the lock drops, holding nothing (woken debugger waits).
  std::vector<std::function<void()>> fire;
};

// What only a debugger has (Kernel::debugger_*, kern_debugger.cc). *Proc::dbg, under
// Proc::mu.
struct DebuggerState {
  bool closed = false;  // debugger_close ran: no new calls, no tracees
  int calls = 0;        // debugger_ptrace / debugger_wait calls in progress
  // Pending waits by the caller's key: each callback runs once, when a tracee notifies
  // (TracerState::seq moves) or the debugger closes, unless cancelled first.
  std::map<uint64_t, std::function<void()>> waiters;
  // Exits of tracees that debugger_wait collected (and so stopped tracing), kept until the
  // transport confirms the delivery (debugger_wait_delivered) or gives it back
  // (debugger_wait_undo): a zombie's exit status exists once.
  std::map<pid_t, std::shared_ptr<Proc>> exits;
};

inline constexpr uint32_t PS_STOPPING = 0x1;
inline constexpr uint32_t PS_WEXIT = 0x2;

class Proc : public std::enable_shared_from_this<Proc> {
 public:
  // `is_debugger`: a tracer that is not an emulated process (Kernel::debugger_open).
  Proc(Kernel& k, pid_t id, ProcSpec spec, bool is_debugger = false);
  ~Proc();

  Kernel& kernel() const { return k_; }

  const pid_t pid;                       // [k]
  const uint32_t uid;                    // [k]
  const std::string comm;                // [k]
  const std::shared_ptr<UserPort> port;  // [k]
  const int rlimit_nthr;                 // [k]

  mutable Mutex mu{LockRank::kProc};  // what it covers: kern_lwp.cc; its rank: emul/lock.h

  ProcStat stat GUARDED_BY(mu) = ProcStat::kActive;
  uint32_t sflag GUARDED_BY(mu) = 0;             // PS_*
  ExitStatus xstat GUARDED_BY(mu);               // set when exit begins
  lwpid_t exiter GUARDED_BY(mu) = 0;             // LWP running exit(2), if any
  netbsd::SigSet sigrestart GUARDED_BY(mu) = 0;  // signals with SA_RESTART handlers

  std::unordered_map<lwpid_t, std::unique_ptr<Lwp>> lwps GUARDED_BY(mu);  // owns the LWPs
  std::list<Lwp*> order GUARDED_BY(mu);                                   // newest first
  int nlwps GUARDED_BY(mu) = 0;           // LWPs in `lwps`, embryos and zombies included
  int nrlwps GUARDED_BY(mu) = 0;          // LSIDL/LSRUN/LSONPROC/LSSLEEP
  int nzlwps GUARDED_BY(mu) = 0;          // zombies and LWPs inside lwp_exit
  int ndlwps GUARDED_BY(mu) = 0;          // detached, live or zombie
  int nlwpwait GUARDED_BY(mu) = 0;        // LWPs inside _lwp_wait
  Lwp* zomblwp GUARDED_BY(mu) = nullptr;  // newest detached zombie awaiting reaping

  std::list<Lwp*> lwpcv_sleepers GUARDED_BY(mu);  // LWPs asleep on the process condvar
  bool lwpcv_pending GUARDED_BY(mu) = false;      // a broadcast awaits delivery
  bool draining GUARDED_BY(mu) = false;           // deferred work is being run

  std::unique_ptr<LwpctlArea> lwpctl GUARDED_BY(mu);  // created on first _lwp_ctl

  // ---- tracing (kern_ptrace.cc) and debuggers (kern_debugger.cc) ----
  TraceeState traced GUARDED_BY(mu);   // its side of being traced
  TracerState tracing GUARDED_BY(mu);  // its side of tracing others
  // A debugger's own state; null for an emulated process. The pointer is [k].
  const std::unique_ptr<DebuggerState> dbg PT_GUARDED_BY(mu);
  bool is_debugger() const { return dbg != nullptr; }  // no LWPs, no port, not in the table

  // Lookups. find_lwp hides embryos and zombies (lwp_find); find_lwp_any
  // hides only embryos (proc_find_lwp).
  Lwp* find_lwp(lwpid_t lid) const REQUIRES(mu);
  Lwp* find_lwp_any(lwpid_t lid) const REQUIRES(mu);
  Lwp* first_live_lwp() const REQUIRES(mu);  // newest non-embryo, non-zombie
  int live_lwps() const REQUIRES(mu) { return nlwps - nzlwps; }

 private:
  Kernel& k_;
};

struct Lwp {
  Lwp(lwpid_t id, Proc* owner) : lid(id), proc(owner) {}

  const lwpid_t lid;  // [k]
  Proc* const proc;   // [k]

  LwpStat stat GUARDED_BY(proc->mu) = LwpStat::kIdl;  // changed only by lwp_set_state()
  uint32_t flag GUARDED_BY(proc->mu) = 0;             // LW_*
  bool detached GUARDED_BY(proc->mu) = false;         // LPR_DETACHED
  bool exiting GUARDED_BY(proc->mu) = false;          // inside lwp_exit (counted in nzlwps)
  bool in_lwpwait GUARDED_BY(proc->mu) = false;       // inside _lwp_wait (counted in nlwpwait)
  lwpid_t waiter GUARDED_BY(proc->mu) = 0;            // first LWP waiting for this one specifically
  lwpid_t waitingfor GUARDED_BY(proc->mu) = 0;        // LID this LWP waits for (0 = any)
  uint64_t private_ptr GUARDED_BY(proc->mu) = 0;      // _lwp_setprivate
  std::optional<std::string> name GUARDED_BY(proc->mu);  // _lwp_setname
  netbsd::SigSet sigmask GUARDED_BY(proc->mu) = 0;       // as known to the kernel
  netbsd::SigSet sigpend GUARDED_BY(proc->mu) = 0;       // private pending set
  std::vector<SigInfo> sigq GUARDED_BY(proc->mu);        // pending directed signals, in order

  Sleep sleep GUARDED_BY(proc->mu);
  bool in_kernel GUARDED_BY(proc->mu) = true;  // has a pending entry (start/syscall/trap)
  SysReturn ret GUARDED_BY(proc->mu);          // what the pending entry returns
  uint64_t ugen GUARDED_BY(proc->mu) = 0;      // user-run generation, ++ on each return

  int policy GUARDED_BY(proc->mu) = netbsd::NB_SCHED_OTHER;
  int base_prio GUARDED_BY(proc->mu) = 0;      // kernel priority of its class/param
  bool kboost GUARDED_BY(proc->mu) = false;    // woken sleeper: kernel priority until userret
  CpuMask affinity GUARDED_BY(proc->mu) = 0;   // 0 = any vCPU
  int cpu GUARDED_BY(proc->mu) = -1;           // vCPU it is on (LSONPROC) or last ran on
  uint64_t switches GUARDED_BY(proc->mu) = 0;  // times switched in
  int lwpctl_slot GUARDED_BY(proc->mu) = -1;   // slot in the process's lwpctl area
  // An LWP this one created whose start waits for our return to user
  // mode: a new LWP may not run user code before its creator knows its LID
  // (the user side starts its host thread only then).
  Lwp* pending_child GUARDED_BY(proc->mu) = nullptr;
  uint64_t pending_child_flags GUARDED_BY(proc->mu) = 0;

  // Tracing (kern_ptrace.cc).
  // Its creation was looked at for PTRACE_LWP_CREATE.
  bool trace_create_done GUARDED_BY(proc->mu) = false;
  // In _lwp_exit, exiting after its exit event.
  bool trace_exit_pending GUARDED_BY(proc->mu) = false;
  bool trace_exit_done GUARDED_BY(proc->mu) = false;  // its PTRACE_LWP_EXIT event was reported

  // Run-queue linkage, [c] of the Cpu `rq_cpu` whose queue holds it. rq_cpu is written only
  // under that Cpu's lock, but read under the process lock alone to find which Cpu lock to
  // take (Scheduler::requeue), so it is atomic and the reader checks it again under the lock:
  // a vCPU may pop or steal the LWP in between.
  Lwp* rq_next = nullptr;
  Lwp* rq_prev = nullptr;
  std::atomic<int> rq_cpu{-1};
  int rq_prio = 0;
  // Deterministic mode's PCT priority ([q] = the lock of vCPU 0: sched.cc); 0 = not drawn.
  // Kept here, not in a table of the scheduler, so it goes with the LWP.
  uint64_t pct_prio = 0;
  CpuMask rq_affinity = 0;  // affinity and policy as of the enqueue, for
  int rq_policy = 0;        // decisions made under the Cpu lock alone

  std::list<Lwp*>::iterator order_it GUARDED_BY(proc->mu);  // position in Proc::order
  std::list<Lwp*>::iterator cv_it GUARDED_BY(proc->mu);     // position in Proc::lwpcv_sleepers

  int eff_prio() const REQUIRES(proc->mu);
  bool user_mode() const REQUIRES(proc->mu) { return stat == LwpStat::kOnProc && !in_kernel; }
};

// An LWP reached through its process -- a lookup, a walk of Proc::order -- is guarded by
// the process lock its caller holds, but the analysis cannot see through the pointer that
// l.proc is that process: this tells it so, and checks it in assertion builds.
inline void lwp_assert_locked(const Lwp& l) ASSERT_CAPABILITY(l.proc->mu) {
  l.proc->mu.AssertHeld();
}

// Holds Proc::mu, and on release runs the process's deferred work -- the name says so at
// every call site, since the release is where that work happens:
//   1. still under the lock: sleepers' continuations re-evaluating a condvar broadcast
//      (proc_drain), so every critical section leaves no wakeup undelivered;
//   2. after unlocking, holding nothing: the tracer notification and orphaned-tracee kills
//      recorded under the lock (trace_after_unlock), then woken debugger waits' callbacks.
// unlock_and_run_deferred() does the same before the scope ends; the destructor does it
// if the guard still holds the lock.
class SCOPED_CAPABILITY DeferringProcLock {
 public:
  explicit DeferringProcLock(Proc& p) ACQUIRE(p.mu);
  ~DeferringProcLock() RELEASE();
  DeferringProcLock(const DeferringProcLock&) = delete;
  DeferringProcLock& operator=(const DeferringProcLock&) = delete;

  void unlock_and_run_deferred() RELEASE();

 private:
  Proc* p_;  // nullptr once released
};

}  // namespace lwpd::emul
