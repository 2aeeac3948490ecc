// The emulated NetBSD LWP kernel: public interface used by transports (the
// gRPC daemon, the test harness) and by inspection. See kern_lwp.cc for the
// design comment (states, transitions, locks).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "emul/lock.h"
#include "emul/netbsd.h"
#include "emul/result.h"
#include "emul/syscalls.h"
#include "emul/user_port.h"

namespace lwpd::emul {

class Proc;
class Scheduler;
class Callout;
class IdAllocator;
using ProcRef = std::shared_ptr<Proc>;

// One kernel event, for watchers (inspection's watch stream, tracing tools).
struct KEvent {
  enum class Kind : uint8_t {
    kCreate,    // an LWP was created (LSIDL)
    kState,     // an LWP changed state (from -> to); switches are ONPROC edges
    kFree,      // an LWP was freed (reaped); its LID may be reused
    kProcExit,  // a process exited
    kProcStop,  // the process reached SSTOP (every LWP off its vCPU)
    kProcCont,  // a stopped or stopping process was continued
  };
  Kind kind = Kind::kState;
  uint64_t seq = 0;     // kernel-wide, strictly increasing per process
  int64_t time_ns = 0;  // steady clock
  pid_t pid = 0;
  lwpid_t lid = 0;
  netbsd::LwpStat from{}, to{};
  int cpu = -1;  // vCPU involved (switch in/out), else last vCPU
};

// Receives every KEvent. Called with the process lock held, in the order the
// kernel decided things: it must not block, must not call into the Kernel,
// and should be cheap (copy into a buffer and return).
class KernelObserver {
 public:
  virtual ~KernelObserver() = default;
  virtual void on_event(const KEvent& e) = 0;
};

struct KernelConfig {
  int ncpus = 2;                           // vCPU worker threads
  std::chrono::milliseconds quantum{100};  // time slice (NB_SCHED_OTHER, NB_SCHED_RR)
  int hz = 100;                            // tick rate used to round park timeouts
  bool pin_cpus = true;                    // pin vCPU threads to host CPUs ...
  bool pin_realtime = false;               // ... even those that run real-time (sched.h)
  int rt_priority = 0;          // SCHED_FIFO priority of the vCPU workers (rt_burst.h), 0: normal
  std::string runtime_dir;      // lwpctl region files; empty = memfd
  int maxlwp = netbsd::MAXLWP;  // kern.maxlwp (RLIMIT_NTHR hard limit)
  bool user_set_cpu_affinity = false;  // security.models.extensions.*
  // An LWP still running user code this long after a kick loses its vCPU: its process is
  // killed as by SIGKILL (kern_lwp.cc, lwp_revoke). 0: never.
  std::chrono::milliseconds kick_timeout{0};
  // Processes (kern.maxproc; the last NPROC_ROOT_RESERVE slots are root's, as fork1()
  // keeps them) and processes per non-root uid (RLIMIT_NPROC).
  int maxproc = netbsd::NPROC;
  int maxuprc = netbsd::MAXUPRC;
  // Default soft RLIMIT_NTHR of a new process (-1: min(maxlwp, MAXUPRC)).
  int nthr_per_uid = -1;
  // IDs (PIDs and LIDs share one space) that LWP creation leaves for new processes.
  int id_reserve = 64;
  // Deterministic mode (sched.h): every scheduling decision drawn from a generator seeded
  // with this, one LWP in user mode at a time, timeouts on a virtual clock.
  std::optional<uint64_t> sched_seed;
  // How the generator decides in that mode: kRandom (uniform among the candidates) or kPct
  // (Burckhardt et al., ASPLOS 2010: random LWP priorities, the highest runs, and
  // pct_depth - 1 change points drawn among the first pct_steps scheduling steps, where the
  // running LWP drops below every other).
  enum class SchedStrategy { kRandom, kPct };
  SchedStrategy sched_strategy = SchedStrategy::kRandom;
  int pct_depth = 3;
  int pct_steps = 50;
  // Record every draw of that mode's generator to this file (one line each: what was decided,
  // for which LWP, among how many, and the value), or replay one: each draw takes the
  // recorded value after checking that the run asks the same question. The first question
  // that differs is a divergence: on_replay_divergence gets a message naming it (under a
  // scheduler lock: it must not call into the Kernel), and the run goes on drawing from the
  // seed.
  std::string sched_record;
  std::string sched_replay;
  std::function<void(const std::string&)> on_replay_divergence;
  // Optional event observer (see KernelObserver); must outlive the Kernel.
  KernelObserver* observer = nullptr;
  // Log sink (level: 0 debug, 1 info, 2 warn, 3 error); may be empty.
  std::function<void(int level, const std::string& msg)> log;
};

struct ProcSpec {
  uint32_t uid = 0;
  std::string comm;                // process name, for inspection
  std::shared_ptr<UserPort> port;  // required
  int rlimit_nthr = -1;            // soft RLIMIT_NTHR; -1 = min(maxlwp, MAXUPRC)
};

// Why a transport's request could not be taken: a protocol problem of the
// user side, never a NetBSD error (those are in SysReturn).
enum class EntryStatus {
  kOk,
  kNoSuchLwp,      // no live LWP with that LID in the process
  kNotInUserMode,  // the LWP already has a pending kernel entry
  kProcExited,     // the process has exited or is exiting
  kBadArgs,        // the request carries no syscall
};
const char* entry_status_name(EntryStatus s);

struct LwpInfo {
  lwpid_t lid = 0;
  netbsd::LwpStat stat{};
  uint32_t flag = 0;
  int cpu = -1;      // vCPU it is on (LSONPROC) or last ran on
  int priority = 0;  // effective kernel priority
  int policy = 0;
  std::string name;
  std::string wchan;  // wait channel ("parked", "lwpwait", "exit"), if sleeping
  bool detached = false;
  bool in_kernel = false;
  uint64_t switches = 0;  // times switched in
  int32_t lc_pctr = 0;
  int32_t lc_curcpu = netbsd::LWPCTL_CPU_NONE;
};

struct ProcInfo {
  pid_t pid = 0;
  uint32_t uid = 0;
  std::string comm;
  netbsd::ProcStat stat{};
  int nlwps = 0, nrlwps = 0, nzlwps = 0, ndlwps = 0, nlwpwait = 0;
  std::string lwpctl_path;    // backing file of the lwpctl region, if any
  std::vector<LwpInfo> lwps;  // newest first
};

// What one uid holds, against its limits.
struct UidUsage {
  uint32_t uid = 0;
  int nprocs = 0;  // processes, zombies included (RLIMIT_NPROC)
  int nthr = 0;    // LWPs other than each process's first (RLIMIT_NTHR)
};

struct LimitInfo {
  int maxproc = 0, maxuprc = 0, nthr_per_uid = 0;
  uint64_t unresponsive_kills = 0;  // processes killed for an unanswered kick
  std::vector<UidUsage> uids;       // by uid
};

struct CpuInfo {
  int index = 0;
  int host_cpu = -1;  // pinned host CPU, -1 if not pinned
  pid_t cur_pid = 0;  // 0 = idle
  lwpid_t cur_lid = 0;
  int cur_priority = -1;
  int runq_len = 0;
  uint64_t switches = 0;
  uint64_t steals = 0;
  uint64_t preemptions = 0;
  uint64_t busy_ns = 0;
  uint64_t idle_ns = 0;
};

// Every Kernel method takes the locks it needs and returns holding none; callers hold no
// kernel lock (the thread-safety annotations are on the internals: proc.h, kern.h).
class Kernel {
 public:
  explicit Kernel(KernelConfig cfg);
  ~Kernel();  // stops the vCPUs; remaining processes are discarded
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  // Create a process whose first LWP (LID == PID) is runnable with a pending
  // start: its port gets lwp_return(kStart) when it is first dispatched.
  // Errors: EAGAIN (no PID available; kern.maxproc reached, or its root reserve for a
  // non-root uid; the uid's RLIMIT_NPROC reached -- uid 0 is exempt from that one).
  KResult<ProcRef> proc_create(ProcSpec spec) EXCLUDES(table_mu_);

  // The LWP enters the kernel with a syscall. The result comes back through
  // the port (possibly from within this call).
  EntryStatus syscall(const ProcRef& p, lwpid_t lid, SysArgs args);
  // The LWP enters the kernel because it was kicked (or voluntarily).
  EntryStatus trap(const ProcRef& p, lwpid_t lid);

  // Post a signal to a whole process from outside (admin, broken session):
  // NB_SIGKILL kills, NB_SIGSTOP stops, NB_SIGCONT continues, others are handed to an
  // LWP of the process. Errors: EINVAL (bad signal), ESRCH (exited).
  KResult<void> proc_signal(const ProcRef& p, int signo);
  // _lwp_suspend / _lwp_continue of LWP `lid` on behalf of no LWP of the process (admin).
  // Suspend arms the suspension as _lwp_suspend does (kicking a running target, waking an
  // interruptible sleeper) and returns at once with the target's state: kSuspended if it
  // already is, else it suspends at its next kernel boundary (a kState event to
  // kSuspended). Errors: ESRCH (no such live LWP, or the process is exiting).
  KResult<netbsd::LwpStat> lwp_suspend_ext(const ProcRef& p, lwpid_t lid);
  // Returns the target's state after continuing it. Errors: ESRCH.
  KResult<netbsd::LwpStat> lwp_continue_ext(const ProcRef& p, lwpid_t lid);
  // The user side of the process is gone (its session broke): kill it as
  // with SIGKILL, treating LWPs that were running user code as having
  // entered the kernel, so everything the process held is freed.
  void proc_abandon(const ProcRef& p);
  // Report which signals have SA_RESTART handlers in the process (bit sig-1).
  void proc_set_sigrestart(const ProcRef& p, netbsd::SigSet mask);
  // Forget an exited process and free its PID. Errors: EBUSY (still alive).
  KResult<void> proc_release(const ProcRef& p) EXCLUDES(table_mu_);

  // ---- debuggers: tracers that are not emulated processes (kern_debugger.cc) ----
  // A debugger traces processes like an attached process's ptrace(2)/wait(2) do, for a
  // client that is no emulated process (the Trace service). It has a PID from the
  // process allocator, so a tracee's `tracer` never names a process while it lives, but
  // no LWPs, and it is never in the process table: proc_lookup, snapshots, PT_ATTACH
  // and signals do not see it. Its end (debugger_close) is a tracer's exit: every
  // tracee is killed (SIGKILL), as NetBSD's exit1() kills an orphaned traced process.

  // Errors: EAGAIN (no PID available).
  KResult<ProcRef> debugger_open(uint32_t uid) EXCLUDES(table_mu_);
  // ptrace(2) by the debugger, synchronously: the same requests, errors and results as
  // the syscall (kern_ptrace.cc). nullopt: the debugger is closed.
  std::optional<SysReturn> debugger_ptrace(const ProcRef& dbg, const PtraceArgs& a);
  struct DebuggerWait {
    enum Kind { kDone, kPending, kClosed } kind = kDone;
    SysReturn ret;  // kDone: wait(2)'s result (a collected stop/exit, ECHILD, EINVAL,
                    // or 0 for WNOHANG with nothing to collect)
  };
  // wait(2) by the debugger. Either the result at once, or kPending: nothing to collect
  // yet, and `on_change` is registered under `key` (the caller's name for it, unique
  // among the debugger's pending waits). `on_change` runs exactly once, on whatever
  // thread notices, holding no lock -- when a tracee stops or exits (the caller then
  // waits again) or the debugger closes -- unless debugger_wait_cancel removed it
  // first. kClosed: the debugger is closed.
  DebuggerWait debugger_wait(const ProcRef& dbg, const WaitArgs& a, uint64_t key,
                             std::function<void()> on_change);
  // True iff the pending wait `key` was still registered (its on_change will not run).
  bool debugger_wait_cancel(const ProcRef& dbg, uint64_t key);
  // A stop or exit of tracee `pid` that debugger_wait collected never reached the
  // debugger (its transport failed): an exit status is collectable again (the tracee is
  // traced by the debugger again), and so is a stop if the tracee is still in it; the
  // debugger's waits are told.
  void debugger_wait_undo(const ProcRef& dbg, pid_t pid);
  // The exit of tracee `pid` that debugger_wait collected reached the debugger: it is
  // forgotten (a later wait says ECHILD). Until then the debugger keeps the zombie.
  void debugger_wait_delivered(const ProcRef& dbg, pid_t pid);
  // The debugger's end: its tracees are killed, its pending waits' callbacks run (their
  // next debugger_wait says kClosed), and its PID is released once no call is in
  // progress. Idempotent.
  void debugger_close(const ProcRef& dbg);

  ProcRef proc_lookup(pid_t pid) const EXCLUDES(table_mu_);
  pid_t proc_pid(const ProcRef& p) const;
  std::vector<ProcInfo> snapshot_procs() const EXCLUDES(table_mu_);
  std::optional<ProcInfo> snapshot_proc(pid_t pid) const;
  std::vector<CpuInfo> snapshot_cpus() const;
  LimitInfo snapshot_limits() const EXCLUDES(table_mu_, uid_mu_);

  // Recompute every process's counters and state sets from the LWP table and
  // compare with the maintained ones. Returns "" or a description of the
  // first violation.
  std::string check_invariants() const EXCLUDES(table_mu_);

  const KernelConfig& config() const { return cfg_; }
  int ncpus() const { return cfg_.ncpus; }
  // Deterministic mode: LWPs preempted because a time slice ended in real time (the one
  // host-timed decision of that mode); 0 in normal mode.
  uint64_t sched_realtime_preemptions() const;
  // Deterministic mode with --sched-replay: "" while the run follows the record, else the
  // divergence message.
  std::string sched_replay_divergence() const;
  int maxlwp() const { return cfg_.maxlwp; }

  // ---- internal, used by the core and the scheduler ----
  Scheduler& sched() { return *sched_; }
  Callout& callout() { return *callout_; }
  IdAllocator& ids() { return *ids_; }
  void log(int level, const std::string& msg) const {
    if (cfg_.log) cfg_.log(level, msg);
  }
  void emit(KEvent e) const;
  // A tracer to notify: a process or a debugger.
  ProcRef tracer_lookup(pid_t pid) const EXCLUDES(table_mu_);
  // Drop a closed debugger from the table and free its PID (once, by the last user).
  void debugger_forget(const ProcRef& dbg) EXCLUDES(table_mu_);
  // Per-uid count of non-first LWPs (RLIMIT_NTHR accounting).
  bool uid_nthr_add(uint32_t uid, int limit) EXCLUDES(uid_mu_);  // false: over the limit
  void uid_nthr_sub(uint32_t uid) EXCLUDES(uid_mu_);
  void count_unresponsive_kill() { unresponsive_kills_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::string check_table(std::vector<ProcRef>& procs, std::vector<ProcRef>& dbgs) const
      EXCLUDES(table_mu_);
  std::string check_debuggers(const std::vector<ProcRef>& dbgs) const;
  KResult<void> proc_slot_take(uint32_t uid) EXCLUDES(table_mu_);
  void proc_slot_give(uint32_t uid) EXCLUDES(table_mu_);

  KernelConfig cfg_;
  std::unique_ptr<IdAllocator> ids_;
  std::unique_ptr<Callout> callout_;
  std::unique_ptr<Scheduler> sched_;

  mutable Mutex table_mu_{LockRank::kKernelTable};
  std::unordered_map<pid_t, ProcRef> procs_ GUARDED_BY(table_mu_);
  std::unordered_map<pid_t, ProcRef> debuggers_ GUARDED_BY(table_mu_);  // (kern_ptrace.cc)
  int nprocs_ GUARDED_BY(table_mu_) = 0;                                // process slots taken
  std::unordered_map<uint32_t, int> uid_nproc_ GUARDED_BY(table_mu_);   // counts procs_ by uid

  mutable std::atomic<uint64_t> event_seq_{0};

  // Replaying a schedule record (--sched-replay): its outside inputs, applied at their points.
  std::string apply_input(const std::string& what);
  std::string apply_debugger_input(const std::string& what);  // kern_debugger.cc
  Mutex replay_mu_{LockRank::kLeaf};
  std::map<pid_t, ProcRef> replay_dbgs_ GUARDED_BY(replay_mu_);  // recorded pid -> opened here

  mutable Mutex uid_mu_{LockRank::kUid};
  std::unordered_map<uint32_t, int> uid_nthr_ GUARDED_BY(uid_mu_);
  std::atomic<uint64_t> unresponsive_kills_{0};  // relaxed counter
};

}  // namespace lwpd::emul
