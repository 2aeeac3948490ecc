// The scheduler: one Cpu per vCPU, each a worker thread (pinned to a host CPU
// when allowed) with its own priority run queue. A vCPU dispatches an LWP by
// making it LSONPROC and returning it to user mode through the user port; the
// LWP's host thread then runs user code until it enters the kernel again.
// Time slices and preemption are enforced by kicking the running LWP.
//
// Pinning. A worker is pinned to a host CPU (round-robin over the allowed set) unless it runs
// real-time (KernelConfig::rt_priority, rt_burst.h; pin_realtime pins those too). A real-time
// thread preempts the normal thread that holds the host CPU it wakes on; pinned, a worker can
// only ever wake on its own, and takes it from a client thread that works there (the creator
// of an LWP inside pthread_create(), say) while the other host CPU idles: on 2 host CPUs,
// `_lwp_create` + `_lwp_wait` took 3.7-4.2x pthread create+join pinned and 2.6-3.0x unpinned,
// with `_lwp_suspend`'s tail below 1 ms in both (docs/PERFORMANCE.md, "M3 and the real-time
// priority"). Unpinned, the host's real-time scheduler places a woken worker itself.
//
// Deterministic mode (KernelConfig::sched_seed; sched.cc, "Deterministic mode") keeps the
// same interfaces: the vCPUs become logical CPUs served by one thread, which runs one LWP at
// a time and takes every scheduling decision from a seeded generator.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "emul/kernel.h"
#include "emul/lock.h"
#include "emul/netbsd.h"
#include "emul/proc.h"
#include "emul/rt_burst.h"
#include "emul/syscalls.h"

namespace lwpd::emul {

// NetBSD-style run queue: one FIFO per priority plus a bitmap of non-empty
// levels (7 words of 32 bits, highest priority found with a bit scan).
class RunQueue {
 public:
  void push(Lwp* l, int prio, bool head);
  Lwp* pop();                         // highest priority, FIFO within it
  Lwp* top() const;                   // what pop() would return, left queued
  Lwp* pop_migratable(int cpu);       // highest whose affinity allows `cpu`
  int count_at(int prio) const;       // LWPs queued at priority `prio`
  Lwp* first_at(int prio) const;      // the first of them (the rest follow rq_next)
  Lwp* take_nth_at(int prio, int n);  // the n-th (from 0) queued at `prio`, removed
  void remove(Lwp* l);
  int max_prio() const;  // -1 when empty
  int size() const { return n_; }

 private:
  void set_bit(int p) { bits_[p >> 5] |= 0x80000000u >> (p & 31); }
  void clear_bit(int p) { bits_[p >> 5] &= ~(0x80000000u >> (p & 31)); }
  std::array<Lwp*, netbsd::PRI_COUNT> head_{};
  std::array<Lwp*, netbsd::PRI_COUNT> tail_{};
  std::array<uint32_t, netbsd::PRI_COUNT / 32> bits_{};
  int n_ = 0;
};

class Cpu {
 public:
  explicit Cpu(int idx) : index(idx) {}
  const int index;
  RtBurst rt;  // the worker's own (rt_burst.h)

  Mutex mu{LockRank::kCpu};  // never two Cpu locks at once (emul/lock.h)
  CondVar cv;

  // ---- guarded by mu ----
  int host_cpu GUARDED_BY(mu) = -1;  // the host CPU the worker is pinned to, -1: none
  RunQueue rq GUARDED_BY(mu);
  Lwp* cur GUARDED_BY(mu) = nullptr;              // claimed or LSONPROC here
  std::shared_ptr<Proc> cur_proc GUARDED_BY(mu);  // keeps cur's process alive while claimed
  int cur_prio GUARDED_BY(mu) = -1;
  int cur_policy GUARDED_BY(mu) = 0;
  bool need_resched GUARDED_BY(mu) = false;  // cur must leave at its next userret
  bool need_kick GUARDED_BY(mu) = false;     // the worker must kick cur
  // An unanswered kick: cur was kicked while running user code in generation kick_gen.
  // If it is still there at kick_deadline it loses the vCPU (Scheduler::revoke_check).
  bool kick_armed GUARDED_BY(mu) = false;
  uint64_t kick_gen GUARDED_BY(mu) = 0;
  std::chrono::steady_clock::time_point kick_deadline GUARDED_BY(mu){};
  std::chrono::steady_clock::time_point slice_end GUARDED_BY(mu){};
  bool stopping GUARDED_BY(mu) = false;
  bool poked GUARDED_BY(mu) = false;      // an idle vCPU was asked to look for work
  bool idle_wait GUARDED_BY(mu) = false;  // the worker waits for work without a deadline
  uint64_t switches GUARDED_BY(mu) = 0;
  uint64_t steals GUARDED_BY(mu) = 0;
  uint64_t preemptions GUARDED_BY(mu) = 0;
  uint64_t busy_ns GUARDED_BY(mu) = 0;
  uint64_t idle_ns GUARDED_BY(mu) = 0;
  bool acct_busy GUARDED_BY(mu) = false;                         // the period being accounted
  std::chrono::steady_clock::time_point since GUARDED_BY(mu){};  // start of that busy/idle period

  // Hints read without the lock by CPU selection (a stale read only makes a
  // worse choice, never a wrong one).
  std::atomic<bool> idle{true};
  std::atomic<int> hint_prio{-1};
  std::atomic<int> hint_queued{0};

  std::thread thread;
};

class Scheduler;

// A kernel entry in progress on the calling host thread, for the direct switch (sched.cc,
// "Direct switch"). Lives on the stack of Kernel::syscall; the Scheduler reaches it through
// a thread-local pointer between entry_begin() and end_entry_on().
struct EntrySwitch {
  static constexpr int kMaxDeferred = 8;
  Scheduler* sched = nullptr;
  Proc* proc = nullptr;
  Lwp* caller = nullptr;
  int cpu = -1;        // the caller's vCPU
  bool armed = false;  // the caller is about to leave its vCPU (entry_expect_leave)
  bool left = false;   // the caller has left its vCPU
  int n = 0;           // LWPs queued on `cpu` without waking its worker
  std::array<lwpid_t, kMaxDeferred> deferred{};
  EntrySwitch() = default;
  EntrySwitch(const EntrySwitch&) = delete;
  EntrySwitch& operator=(const EntrySwitch&) = delete;
  ~EntrySwitch();  // forgets itself if entry_end did not run (a refused entry)
};

class Scheduler {
 public:
  // kick_timeout: how long an LWP may run user code after a kick before it loses its
  // vCPU by force (0: never). seed: deterministic mode with that seed.
  Scheduler(Kernel& k, int ncpus, std::chrono::milliseconds quantum, bool pin,
            std::chrono::milliseconds kick_timeout, std::optional<uint64_t> seed = std::nullopt,
            bool pct = false, int pct_depth = 3, int pct_steps = 50);
  ~Scheduler();
  void start();
  void stop();

  // Before start(): the workers' real-time priority (rt_burst.h), 0 for normal scheduling,
  // and whether real-time workers are pinned too (top comment, "Pinning").
  void set_rt_priority(int prio, bool pin_realtime) {
    rt_priority_ = prio;
    pin_realtime_ = pin_realtime;
  }

  int ncpus() const { return static_cast<int>(cpus_.size()); }
  Cpu& cpu(int i) { return *cpus_[i]; }
  CpuMask all_mask() const;

  // All called with the LWP's Proc::mu held; they take Cpu locks one at a time.
  void enqueue(Lwp& l, bool head) REQUIRES(l.proc->mu);  // l is LSRUN
  void switch_out(Lwp& l) REQUIRES(l.proc->mu);          // l leaves LSONPROC on l.cpu
  bool take_resched(Lwp& l) REQUIRES(l.proc->mu);        // l is LSONPROC: must it give up its vCPU?
  void set_cur_prio(Lwp& l) REQUIRES(l.proc->mu);        // l is LSONPROC; its priority changed
  void requeue(Lwp& l) REQUIRES(l.proc->mu);             // l is LSRUN; priority or affinity changed
  void resched(Lwp& l) REQUIRES(l.proc->mu);             // l is LSONPROC on a vCPU it may not use
  // l, in user mode, was just kicked: arm the deadline.
  void note_kick(const Lwp& l) REQUIRES(l.proc->mu);

  // The direct switch of a kernel entry (sched.cc). entry_begin: `caller` (LSONPROC, in the
  // kernel) makes a syscall on this host thread. entry_expect_leave: the call is about to
  // block its caller (a park that unparks another LWP first). end_entry_on, when the work of
  // the entry this thread makes on p is done and before the process lock drops (a no-op
  // without one): true if it ran an LWP here (its return is delivered: the caller drains the
  // process again).
  void entry_begin(EntrySwitch& e, Lwp& caller) REQUIRES(caller.proc->mu);
  void entry_expect_leave(const Lwp& caller) REQUIRES(caller.proc->mu);
  static bool end_entry_on(Proc& p) REQUIRES(p.mu);

  std::vector<CpuInfo> snapshot() const;

  // Deterministic mode: a kernel entry (syscall or trap) in progress on this host thread,
  // from before it takes the process lock until after it dropped every lock. The scheduling
  // thread decides only when none is. A no-op in normal mode.
  class EntryGate {
   public:
    EntryGate(Scheduler& s, lwpid_t lid);
    ~EntryGate();
    EntryGate(const EntryGate&) = delete;
    EntryGate& operator=(const EntryGate&) = delete;

   private:
    Scheduler* s_;
  };
  // Deterministic mode: an input from outside the program acting on the kernel (an admin's
  // signal, suspend or continue, a client's death, a debugger's request). It waits until the
  // kernel is between two events (no entry, dispatch or other input in progress) and keeps
  // entries out while it acts, so it takes effect at one point of the run: record() writes it
  // into the schedule record there. A replay applies the record's inputs itself at their
  // points (set_input_applier), so a live one is refused() -- unless it must act whatever
  // happens (`always`: a client's death), when it is checked against the record instead.
  // A no-op in normal mode, and on a thread that already applies an input or serves an entry.
  class InputGate {
   public:
    InputGate(Scheduler& s, bool always = false);
    ~InputGate();
    InputGate(const InputGate&) = delete;
    InputGate& operator=(const InputGate&) = delete;
    bool refused() const { return refused_; }
    void record(const std::string& what);

   private:
    Scheduler* s_;
    bool refused_ = false;
    uint64_t at_ = 0;  // the kernel event the input takes effect at
  };
  // Replays an input from the record (its text as InputGate::record wrote it): "" when it
  // acted as recorded, else what differs. Before start().
  void set_input_applier(std::function<std::string(const std::string&)> f);
  bool deterministic() const { return det_; }
  // Deterministic mode: LWPs preempted after running user code for a whole time slice
  // without a kernel entry (the one decision the host's timing makes).
  uint64_t realtime_preemptions() const { return det_rt_preempt_.load(std::memory_order_relaxed); }
  // Record the generator's draws to `record`, or replay them from `replay` (KernelConfig).
  // Before start(). Errors (a file that cannot be opened or read) are logged and leave the
  // generator as it is.
  void open_log(const std::string& record, const std::string& replay,
                std::function<void(const std::string&)> on_divergence);
  std::string replay_divergence() const;

 private:
  void run(Cpu& c) EXCLUDES(c.mu);
  void pin_worker(Cpu& c) EXCLUDES(c.mu);
  Lwp* next_lwp(Cpu& c, UniqueLock& lk) REQUIRES(c.mu);
  void dispatch(Cpu& c, Lwp& l) REQUIRES(c.mu);
  void claim(Cpu& c, Lwp& l) REQUIRES(c.mu);
  bool leave_idle(Cpu& c) REQUIRES(c.mu);
  bool entry_end(const EntrySwitch& e, Proc& p) REQUIRES(p.mu);
  bool defer_enqueue(Lwp& l, bool head) REQUIRES(l.proc->mu);
  void watch_current(Cpu& c, UniqueLock& lk) REQUIRES(c.mu);
  int takecpu(const Lwp& l) REQUIRES(l.proc->mu);
  Lwp* steal(Cpu& thief) EXCLUDES(thief.mu);
  void wake_idle_for(CpuMask mask, int busy_cpu);
  void account(Cpu& c, bool now_busy) REQUIRES(c.mu);
  void revoke_check(Cpu& c) REQUIRES(c.mu);
  // Deterministic mode (sched.cc). Their state is [q] = cpus_[0]->mu, whose run queue is the
  // only one used.
  void run_det();
  bool det_decide(Lwp& l) REQUIRES(l.proc->mu);
  Lwp* det_pick(Cpu& q) REQUIRES(q.mu);
  uint64_t pct_prio(Lwp& l);  // [q]; drawn at first sight, kept in the Lwp
  // [q] The generator, through the record or replay: a value in [0, n) (n = 0: any 64-bit
  // value), for decision `kind` about LWP `lid`.
  uint64_t det_draw(char kind, int lid, uint64_t n);
  int det_cpu_for(Cpu& q, const Lwp& l) REQUIRES(q.mu);
  // [q] The kernel is between two events: nothing it does is in progress.
  bool det_quiet() const { return det_entries_ == 0 && !det_input_busy_; }
  // Replaying, with the kernel quiet: apply the record's next input if this is its point
  // (true: one was applied, q.mu dropped meanwhile). q is cpus_[0].
  bool det_apply_due(Cpu& q) REQUIRES(q.mu);
  // [q] The end of something run_det did as an entry (a dispatch, the clock's callouts).
  void det_pseudo_end(bool changed);
  void det_diverge(const std::string& why);  // [q]
  void det_note_marks();                     // [q] writes pending real-time preemption marks

  Kernel& k_;
  const std::chrono::milliseconds quantum_;
  const std::chrono::milliseconds kick_timeout_;
  const bool pin_;
  int rt_priority_ = 0;        // set before start()
  bool pin_realtime_ = false;  // set before start()
  std::vector<std::unique_ptr<Cpu>> cpus_;
  std::atomic<unsigned> rotor_{0};
  const bool det_;
  std::mt19937_64 det_rng_;  // [q]
  int det_entries_ = 0;      // [q] kernel entries in progress (EntryGate)
  uint64_t det_steps_ = 0;   // [q] scheduling steps: decisions at kernel entries
  // [q] LWPs queued, entries (and run_det's dispatches and firings) ended: the kernel event
  // count that places an outside input in the record.
  uint64_t det_events_ = 0;
  bool det_input_busy_ = false;  // [q] an InputGate (or a replayed input) acts
  int det_inputs_waiting_ = 0;   // [q] InputGates waiting for their turn (entries wait too)
  std::function<std::string(const std::string&)> input_applier_;
  std::atomic<uint64_t> det_rt_marks_{0};  // real-time preemptions not yet marked in the record
  std::atomic<int> det_rt_last_lid_{0};
  // PCT ([q]): the change points (step -> the priority the LWP running at that step drops
  // to: 1 .. depth-1, below every initial one); each LWP's priority is Lwp::pct_prio.
  const bool pct_;
  std::map<uint64_t, uint64_t> pct_change_;
  std::atomic<uint64_t> det_rt_preempt_{0};
  // [q] Record/replay of the draws (sched.cc, "Record and replay").
  FILE* rec_ = nullptr;
  std::vector<std::string> replay_;  // the recorded draws, one line each
  size_t replay_next_ = 0;
  uint64_t det_draws_ = 0;
  int pct_depth_ = 0, pct_steps_ = 0;
  bool replaying_ = false;
  std::string diverged_;
  std::function<void(const std::string&)> on_divergence_;
  std::thread det_thread_;
};

}  // namespace lwpd::emul
