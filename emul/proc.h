// Internal: the process and LWP objects of the emulated kernel, and the
// process lock guard. Only emul/ includes this file. Field comments name the
// lock that guards each field: [p] = Proc::mu, [c] = the lock of the Cpu whose
// run queue holds the LWP, [k] = immutable after construction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "emul/kernel.h"
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

class Proc;

struct Lwp {
  Lwp(lwpid_t id, Proc* owner) : lid(id), proc(owner) {}

  const lwpid_t lid;  // [k]
  Proc* const proc;   // [k]

  LwpStat stat = LwpStat::kIdl;     // [p] changed only by lwp_set_state()
  uint32_t flag = 0;                // [p] LW_*
  bool detached = false;            // [p] LPR_DETACHED
  bool exiting = false;             // [p] inside lwp_exit (counted in nzlwps)
  bool in_lwpwait = false;          // [p] inside _lwp_wait (counted in nlwpwait)
  lwpid_t waiter = 0;               // [p] first LWP waiting for this one specifically
  lwpid_t waitingfor = 0;           // [p] LID this LWP waits for (0 = any)
  uint64_t private_ptr = 0;         // [p] _lwp_setprivate
  std::optional<std::string> name;  // [p] _lwp_setname
  netbsd::SigSet sigmask = 0;       // [p] as known to the kernel
  netbsd::SigSet sigpend = 0;       // [p] private pending set
  std::vector<SigInfo> sigq;        // [p] pending directed signals, in order

  Sleep sleep;            // [p]
  bool in_kernel = true;  // [p] has a pending entry (start/syscall/trap)
  SysReturn ret;          // [p] what the pending entry returns
  uint64_t ugen = 0;      // [p] user-run generation, ++ on each return

  int policy = netbsd::NB_SCHED_OTHER;  // [p]
  int base_prio = 0;                    // [p] kernel priority of its class/param
  bool kboost = false;                  // [p] woken sleeper: kernel priority until userret
  CpuMask affinity = 0;                 // [p] 0 = any vCPU
  int cpu = -1;                         // [p] vCPU it is on (LSONPROC) or last ran on
  uint64_t switches = 0;                // [p] times switched in
  int lwpctl_slot = -1;                 // [p] slot in the process's lwpctl area
  // [p] An LWP this one created whose start waits for our return to user
  // mode: a new LWP may not run user code before its creator knows its LID
  // (the user side starts its host thread only then).
  Lwp* pending_child = nullptr;
  uint64_t pending_child_flags = 0;

  // Tracing (kern_ptrace.cc).
  bool trace_create_done = false;   // [p] its creation was looked at for PTRACE_LWP_CREATE
  bool trace_exit_pending = false;  // [p] in _lwp_exit, exiting after its exit event
  bool trace_exit_done = false;     // [p] its PTRACE_LWP_EXIT event was reported

  // Run-queue linkage, [c] of the Cpu `rq_cpu` whose queue holds it.
  Lwp* rq_next = nullptr;
  Lwp* rq_prev = nullptr;
  int rq_cpu = -1;
  int rq_prio = 0;
  CpuMask rq_affinity = 0;  // affinity and policy as of the enqueue, for
  int rq_policy = 0;        // decisions made under the Cpu lock alone

  std::list<Lwp*>::iterator order_it;  // [p] position in Proc::order
  std::list<Lwp*>::iterator cv_it;     // [p] position in Proc::lwpcv_sleepers

  int eff_prio() const;
  bool user_mode() const { return stat == LwpStat::kOnProc && !in_kernel; }
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
  const bool debugger;                   // [k] no LWPs, no port, never in the process table

  mutable std::mutex mu;

  ProcStat stat = ProcStat::kActive;  // [p]
  uint32_t sflag = 0;                 // [p] PS_*
  ExitStatus xstat;                   // [p] set when exit begins
  lwpid_t exiter = 0;                 // [p] LWP running exit(2), if any
  netbsd::SigSet sigrestart = 0;      // [p] signals with SA_RESTART handlers

  std::unordered_map<lwpid_t, std::unique_ptr<Lwp>> lwps;  // [p] owns the LWPs
  std::list<Lwp*> order;                                   // [p] newest first
  int nlwps = 0;           // [p] LWPs in `lwps`, embryos and zombies included
  int nrlwps = 0;          // [p] LSIDL/LSRUN/LSONPROC/LSSLEEP
  int nzlwps = 0;          // [p] zombies and LWPs inside lwp_exit
  int ndlwps = 0;          // [p] detached, live or zombie
  int nlwpwait = 0;        // [p] LWPs inside _lwp_wait
  Lwp* zomblwp = nullptr;  // [p] newest detached zombie awaiting reaping

  std::list<Lwp*> lwpcv_sleepers;  // [p] LWPs asleep on the process condvar
  bool lwpcv_pending = false;      // [p] a broadcast awaits delivery
  bool draining = false;           // [p] deferred work is being run

  std::unique_ptr<LwpctlArea> lwpctl;  // [p] created on first _lwp_ctl

  // ---- tracing, as a tracee (kern_ptrace.cc) ----
  pid_t tracer = 0;                // [p] pid of the tracing process, 0 = not traced
  int trace_events = 0;            // [p] PTRACE_* event mask (pe_set_event)
  int trace_xsig = 0;              // [p] signal of the trace stop being reported (p_xsig)
  bool trace_waited = false;       // [p] that stop was collected by the tracer's wait
  bool trace_exit_seen = false;    // [p] the tracer's wait collected the exit status
  SigInfo trace_si;                // [p] siginfo of the last stop (lid 0 = whole process)
  int trace_report_event = 0;      // [p] PTRACE_LWP_* of the last event stop, else 0
  lwpid_t trace_report_lwp = 0;    // [p] LWP that reported it
  std::deque<SigInfo> trace_sigq;  // [p] signals caught while a stop was reported
  pid_t trace_notify = 0;          // [p] tracer to notify once the lock drops (0 = none)

  // ---- tracing, as a tracer ----
  // [p] Processes this one traces, by pid. The reference keeps an exited
  // tracee's status collectable after its session released the PID.
  std::map<pid_t, std::shared_ptr<Proc>> tracees;
  uint64_t trace_seq = 0;  // [p] ++ on every notification from a tracee
  // [p] Tracees to kill once the lock drops: this tracer has exited.
  std::vector<std::shared_ptr<Proc>> trace_orphans;
  // [p] Callbacks to run once the lock drops, holding nothing (woken debugger waits).
  std::vector<std::function<void()>> trace_fire;

  // ---- a debugger's own state (kern_ptrace.cc, Kernel::debugger_*) ----
  bool dbg_closed = false;  // [p] debugger_close ran: no new calls, no tracees
  int dbg_calls = 0;        // [p] debugger_ptrace / debugger_wait calls in progress
  // [p] Pending waits by the caller's key: each callback runs once, when a tracee
  // notifies (trace_seq moves) or the debugger closes, unless cancelled first.
  std::map<uint64_t, std::function<void()>> dbg_waiters;
  // [p] Exits of tracees that debugger_wait collected (and so stopped tracing), kept until
  // the transport confirms the delivery (debugger_wait_delivered) or gives it back
  // (debugger_wait_undo): a zombie's exit status exists once.
  std::map<pid_t, std::shared_ptr<Proc>> dbg_exits;

  // Lookups. find_lwp hides embryos and zombies (lwp_find); find_lwp_any
  // hides only embryos (proc_find_lwp).
  Lwp* find_lwp(lwpid_t lid) const;
  Lwp* find_lwp_any(lwpid_t lid) const;
  Lwp* first_live_lwp() const;  // newest non-embryo, non-zombie
  int live_lwps() const { return nlwps - nzlwps; }

 private:
  Kernel& k_;
};

// Holds Proc::mu. On release, runs the process's deferred work first
// (condvar broadcasts re-evaluating sleepers) so that every critical section
// leaves no wakeup undelivered.
class ProcLock {
 public:
  explicit ProcLock(Proc& p);
  ~ProcLock();
  ProcLock(const ProcLock&) = delete;
  ProcLock& operator=(const ProcLock&) = delete;

 private:
  Proc& p_;
};

}  // namespace lwpd::emul
