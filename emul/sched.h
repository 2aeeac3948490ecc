// The scheduler: one Cpu per vCPU, each a worker thread (pinned to a host CPU
// when allowed) with its own priority run queue. A vCPU dispatches an LWP by
// making it LSONPROC and returning it to user mode through the user port; the
// LWP's host thread then runs user code until it enters the kernel again.
// Time slices and preemption are enforced by kicking the running LWP.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "emul/kernel.h"
#include "emul/netbsd.h"
#include "emul/syscalls.h"

namespace lwpd::emul {

struct Lwp;
class Proc;
class Kernel;

// NetBSD-style run queue: one FIFO per priority plus a bitmap of non-empty
// levels (7 words of 32 bits, highest priority found with a bit scan).
class RunQueue {
 public:
  void push(Lwp* l, int prio, bool head);
  Lwp* pop();                    // highest priority, FIFO within it
  Lwp* pop_migratable(int cpu);  // highest whose affinity allows `cpu`
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
  int host_cpu = -1;

  std::mutex mu;  // lock order: after Proc::mu; never two Cpu locks at once
  std::condition_variable cv;

  // ---- guarded by mu ----
  RunQueue rq;
  Lwp* cur = nullptr;              // claimed or LSONPROC here
  std::shared_ptr<Proc> cur_proc;  // keeps cur's process alive while claimed
  int cur_prio = -1;
  int cur_policy = 0;
  bool need_resched = false;  // cur must leave at its next userret
  bool need_kick = false;     // the worker must kick cur
  // An unanswered kick: cur was kicked while running user code in generation kick_gen.
  // If it is still there at kick_deadline it loses the vCPU (Scheduler::revoke_check).
  bool kick_armed = false;
  uint64_t kick_gen = 0;
  std::chrono::steady_clock::time_point kick_deadline{};
  std::chrono::steady_clock::time_point slice_end{};
  bool stopping = false;
  bool poked = false;  // an idle vCPU was asked to look for work
  uint64_t switches = 0, steals = 0, preemptions = 0;
  uint64_t busy_ns = 0, idle_ns = 0;
  bool acct_busy = false;                         // the period being accounted
  std::chrono::steady_clock::time_point since{};  // start of that busy/idle period

  // Hints read without the lock by CPU selection (a stale read only makes a
  // worse choice, never a wrong one).
  std::atomic<bool> idle{true};
  std::atomic<int> hint_prio{-1};
  std::atomic<int> hint_queued{0};

  std::thread thread;
};

class Scheduler {
 public:
  // kick_timeout: how long an LWP may run user code after a kick before it loses its
  // vCPU by force (0: never).
  Scheduler(Kernel& k, int ncpus, std::chrono::milliseconds quantum, bool pin,
            std::chrono::milliseconds kick_timeout);
  ~Scheduler();
  void start();
  void stop();

  int ncpus() const { return static_cast<int>(cpus_.size()); }
  Cpu& cpu(int i) { return *cpus_[i]; }
  CpuMask all_mask() const;

  // All called with the LWP's Proc::mu held.
  void enqueue(Lwp& l, bool head);  // l is LSRUN
  void switch_out(Lwp& l);          // l leaves LSONPROC on l.cpu
  bool take_resched(Lwp& l);        // l is LSONPROC: must it give up its vCPU?
  void set_cur_prio(Lwp& l);        // l is LSONPROC; its priority changed
  void requeue(Lwp& l);             // l is LSRUN; priority or affinity changed
  void resched(Lwp& l);             // l is LSONPROC on a vCPU it may not use
  void note_kick(const Lwp& l);     // l, in user mode, was just kicked: arm the deadline

  std::vector<CpuInfo> snapshot() const;

 private:
  void run(Cpu& c);
  int takecpu(const Lwp& l);
  Lwp* steal(Cpu& thief);
  void wake_idle_for(CpuMask mask, int busy_cpu);
  void account(Cpu& c, bool now_busy);
  void revoke_check(Cpu& c, std::unique_lock<std::mutex>& lk);

  Kernel& k_;
  const std::chrono::milliseconds quantum_;
  const std::chrono::milliseconds kick_timeout_;
  const bool pin_;
  std::vector<std::unique_ptr<Cpu>> cpus_;
  std::atomic<unsigned> rotor_{0};
};

}  // namespace lwpd::emul
