// vCPU workers, run queues, CPU selection, time slicing, preemption and idle
// stealing. See sched.h for the model and kern_lwp.cc for the lock order.

#include "emul/sched.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <string>

#include "emul/callout.h"
#include "emul/kern.h"
#include "emul/proc.h"

namespace lwpd::emul {

using namespace netbsd;
using std::chrono::steady_clock;

namespace {
constexpr std::chrono::milliseconds kDetMinSlice{2000};

bool allows(CpuMask affinity, int cpu) {
  return affinity == 0 || (affinity & (CpuMask{1} << cpu)) != 0;
}
uint64_t ns_between(steady_clock::time_point a, steady_clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// The kernel entry this host thread is making, between entry_begin and entry_end.
thread_local EntrySwitch* t_entry = nullptr;
}  // namespace

EntrySwitch::~EntrySwitch() {
  if (t_entry == this) t_entry = nullptr;
}

// ---- RunQueue ------------------------------------------------------------------------

void RunQueue::push(Lwp* l, int prio, bool head) {
  assert(prio >= 0 && prio < PRI_COUNT && l->rq_next == nullptr && l->rq_prev == nullptr);
  l->rq_prio = prio;
  if (head_[prio] == nullptr) {
    head_[prio] = tail_[prio] = l;
    set_bit(prio);
  } else if (head) {
    l->rq_next = head_[prio];
    head_[prio]->rq_prev = l;
    head_[prio] = l;
  } else {
    l->rq_prev = tail_[prio];
    tail_[prio]->rq_next = l;
    tail_[prio] = l;
  }
  n_++;
}

void RunQueue::remove(Lwp* l) {
  const int p = l->rq_prio;
  (l->rq_prev ? l->rq_prev->rq_next : head_[p]) = l->rq_next;
  (l->rq_next ? l->rq_next->rq_prev : tail_[p]) = l->rq_prev;
  l->rq_next = l->rq_prev = nullptr;
  if (head_[p] == nullptr) clear_bit(p);
  n_--;
  assert(n_ >= 0);
}

int RunQueue::max_prio() const {
  for (int w = static_cast<int>(bits_.size()) - 1; w >= 0; w--) {
    // Bit for priority p is 0x80000000 >> (p & 31): the highest priority in a
    // word is its lowest set bit.
    if (bits_[w] != 0) return w * 32 + (31 - __builtin_ctz(bits_[w]));
  }
  return -1;
}

Lwp* RunQueue::pop() {
  int p = max_prio();
  if (p < 0) return nullptr;
  Lwp* l = head_[p];
  remove(l);
  return l;
}

Lwp* RunQueue::top() const {
  const int p = max_prio();
  return p < 0 ? nullptr : head_[p];
}

Lwp* RunQueue::pop_migratable(int cpu) {
  for (int p = max_prio(); p >= 0; p--) {
    for (Lwp* l = head_[p]; l != nullptr; l = l->rq_next) {
      if (allows(l->rq_affinity, cpu)) {
        remove(l);
        return l;
      }
    }
  }
  return nullptr;
}

Lwp* RunQueue::first_at(int prio) const { return head_[prio]; }

int RunQueue::count_at(int prio) const {
  int n = 0;
  for (Lwp* l = head_[prio]; l != nullptr; l = l->rq_next) n++;
  return n;
}

Lwp* RunQueue::take_nth_at(int prio, int n) {
  Lwp* l = head_[prio];
  while (l != nullptr && n-- > 0) l = l->rq_next;
  if (l != nullptr) remove(l);
  return l;
}

// ---- Scheduler ---------------------------------------------------------------------

Scheduler::Scheduler(Kernel& k, int ncpus, std::chrono::milliseconds quantum, bool pin,
                     std::chrono::milliseconds kick_timeout, std::optional<uint64_t> seed, bool pct,
                     int pct_depth, int pct_steps)
    : k_(k),
      // Deterministic mode preempts an LWP by the clock only when it has run user code that
      // long without a kernel entry, the one host-timed decision of the mode: a time slice,
      // but never under kDetMinSlice, so that a slow host (a sanitizer build, a loaded
      // machine) does not make an honest program's run depend on it.
      quantum_(seed ? std::max(quantum, kDetMinSlice) : quantum),
      kick_timeout_(kick_timeout),
      pin_(pin && !seed),
      det_(seed.has_value()),
      det_rng_(seed.value_or(0)),
      pct_(det_ && pct) {
  assert(ncpus >= 1 && ncpus <= kMaxCpus);
  for (int i = 0; i < ncpus; i++) cpus_.push_back(std::make_unique<Cpu>(i));
  // PCT's d-1 change points among the first pct_steps steps (two may coincide: the later
  // index wins, as one step can change only one priority).
  for (int i = 1; pct_ && i < pct_depth; i++)
    pct_change_[det_rng_() % static_cast<uint64_t>(std::max(1, pct_steps)) + 1] =
        static_cast<uint64_t>(i);
  pct_steps_ = pct_steps;
  pct_depth_ = pct_depth;
}

Scheduler::~Scheduler() {
  stop();
  if (rec_ != nullptr) std::fclose(rec_);
}

CpuMask Scheduler::all_mask() const {
  return cpus_.size() >= 64 ? ~CpuMask{0} : (CpuMask{1} << cpus_.size()) - 1;
}

void Scheduler::start() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::vector<int> hosts;
  if (pin_ && sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
    for (int i = 0; i < CPU_SETSIZE; i++)
      if (CPU_ISSET(i, &allowed)) hosts.push_back(i);
  }
  for (auto& c : cpus_) {
    {
      MutexLock g(c->mu);  // the worker does not exist yet; the lock is for the analysis
      if (!hosts.empty()) c->host_cpu = hosts[c->index % hosts.size()];
      c->since = steady_clock::now();
    }
    if (!det_) c->thread = std::thread([this, cp = c.get()] { run(*cp); });
  }
  if (det_) det_thread_ = std::thread([this] { run_det(); });
}

void Scheduler::stop() {
  for (auto& c : cpus_) {
    {
      MutexLock g(c->mu);
      c->stopping = true;
    }
    c->cv.notify_all();
  }
  for (auto& c : cpus_)
    if (c->thread.joinable()) c->thread.join();
  if (det_thread_.joinable()) det_thread_.join();
}

void Scheduler::account(Cpu& c, bool now_busy) {
  if (c.acct_busy == now_busy) return;
  auto now = steady_clock::now();
  (c.acct_busy ? c.busy_ns : c.idle_ns) += ns_between(c.since, now);
  c.since = now;
  c.acct_busy = now_busy;
}

// Choose a vCPU for an LWP becoming runnable (NetBSD's sched_takecpu, without
// SMT topology): its last vCPU if idle, any idle vCPU, a vCPU running
// something it outranks, its last vCPU (cache affinity), else the shortest queue.
int Scheduler::takecpu(const Lwp& l) {
  const int n = ncpus();
  const int prio = l.eff_prio();
  const int last = (l.cpu >= 0 && allows(l.affinity, l.cpu)) ? l.cpu : -1;
  if (last >= 0 && cpus_[last]->idle.load(std::memory_order_relaxed)) return last;
  const int start = static_cast<int>(rotor_.fetch_add(1, std::memory_order_relaxed) % n);
  int lowest = -1, lowest_prio = prio, shortest = -1, shortest_len = INT32_MAX;
  for (int i = 0; i < n; i++) {
    const int c = (start + i) % n;
    if (!allows(l.affinity, c)) continue;
    Cpu& cpu = *cpus_[c];
    if (cpu.idle.load(std::memory_order_relaxed)) return c;
    const int cp = cpu.hint_prio.load(std::memory_order_relaxed);
    if (cp < lowest_prio) {
      lowest = c;
      lowest_prio = cp;
    }
    const int q = cpu.hint_queued.load(std::memory_order_relaxed);
    if (q < shortest_len) {
      shortest = c;
      shortest_len = q;
    }
  }
  if (lowest >= 0) return lowest;
  if (last >= 0) return last;
  assert(shortest >= 0);
  return shortest;
}

void Scheduler::enqueue(Lwp& l, bool head) {
  assert(l.stat == LwpStat::kRun && l.rq_cpu < 0);
  if (det_) {
    // One queue; the scheduling thread picks from it when nothing runs.
    Cpu& q = *cpus_[0];
    {
      MutexLock g(q.mu);
      l.rq_cpu = 0;
      l.rq_affinity = l.affinity;
      l.rq_policy = l.policy;
      q.rq.push(&l, l.eff_prio(), head);
      q.hint_queued.store(q.rq.size(), std::memory_order_relaxed);
      det_events_++;
    }
    q.cv.notify_all();
    return;
  }
  if (defer_enqueue(l, head)) return;
  const int ci = takecpu(l);
  Cpu& c = *cpus_[ci];
  bool busy;
  {
    MutexLock g(c.mu);
    l.rq_cpu = ci;
    l.rq_affinity = l.affinity;
    l.rq_policy = l.policy;
    c.rq.push(&l, l.eff_prio(), head);
    c.hint_queued.store(c.rq.size(), std::memory_order_relaxed);
    c.idle.store(false, std::memory_order_relaxed);
    busy = c.cur != nullptr;
    if (busy && l.eff_prio() > c.cur_prio && !c.need_resched) {
      c.need_resched = true;
      c.need_kick = true;
      c.preemptions++;
    }
  }
  c.cv.notify_one();
  if (busy) wake_idle_for(l.affinity, ci);
}

// Work landed on a busy vCPU: let an idle one that may run it come and steal.
void Scheduler::wake_idle_for(CpuMask mask, int busy_cpu) {
  for (auto& c : cpus_) {
    if (c->index != busy_cpu && allows(mask, c->index) && c->idle.load(std::memory_order_relaxed)) {
      {
        MutexLock g(c->mu);
        c->poked = true;
      }
      c->cv.notify_one();
      return;
    }
  }
}

void Scheduler::switch_out(Lwp& l) {
  Cpu& c = *cpus_[l.cpu];
  // The caller of a kernel entry leaving its vCPU: entry_end chooses what runs there next.
  EntrySwitch* e = t_entry;
  const bool direct = e != nullptr && e->caller == &l && e->cpu == l.cpu;
  if (direct) e->left = true;
  std::shared_ptr<Proc> drop;
  {
    MutexLock g(c.mu);
    assert(c.cur == &l);
    c.cur = nullptr;
    drop = std::move(c.cur_proc);
    c.need_resched = c.need_kick = false;
    c.kick_armed = false;
    c.cur_prio = -1;
    c.hint_prio.store(-1, std::memory_order_relaxed);
  }
  if (!direct) c.cv.notify_one();
  // `drop` is released under the caller's Proc::mu; the process table still
  // holds the process, so this never frees it.
}

bool Scheduler::take_resched(Lwp& l) {
  {
    Cpu& c = *cpus_[l.cpu];
    MutexLock g(c.mu);
    assert(c.cur == &l);
    if (c.need_resched) {
      c.need_resched = c.need_kick = false;
      return true;
    }
  }
  return det_ && det_decide(l);
}

void Scheduler::set_cur_prio(Lwp& l) {
  Cpu& c = *cpus_[l.cpu];
  bool kick = false;
  {
    MutexLock g(c.mu);
    assert(c.cur == &l);
    c.cur_prio = l.eff_prio();
    c.cur_policy = l.policy;
    c.hint_prio.store(c.cur_prio, std::memory_order_relaxed);
    if (!det_ && c.rq.max_prio() > c.cur_prio && !c.need_resched) {
      c.need_resched = true;
      c.need_kick = true;
      c.preemptions++;
      kick = true;
    }
  }
  // The worker waits for a kick to deliver or the slice's end; a new priority alone
  // changes neither (the slice's end re-reads it), so it is woken only for a kick.
  if (kick) c.cv.notify_one();
}

void Scheduler::requeue(Lwp& l) {
  for (;;) {
    const int ci = l.rq_cpu.load();
    if (ci < 0) return;  // claimed by a vCPU, about to run
    Cpu& c = *cpus_[ci];
    MutexLock g(c.mu);
    // Popped or stolen since the read above (a thief that finds its vCPU claimed queues the
    // LWP on its own): look again.
    if (l.rq_cpu.load() != ci) continue;
    c.rq.remove(&l);
    c.hint_queued.store(c.rq.size(), std::memory_order_relaxed);
    l.rq_cpu = -1;
    break;
  }
  enqueue(l, false);
}

void Scheduler::resched(Lwp& l) {
  Cpu& c = *cpus_[l.cpu];
  {
    MutexLock g(c.mu);
    assert(c.cur == &l);
    c.need_resched = true;
  }
  lwp_kick(l);
}

// The first kick of a user-run generation starts the clock; repeated kicks of the same
// generation (the worker repeats an unanswered one every slice) do not restart it.
void Scheduler::note_kick(const Lwp& l) {
  if (kick_timeout_.count() <= 0 || l.cpu < 0) return;
  Cpu& c = *cpus_[l.cpu];
  {
    MutexLock g(c.mu);
    if (c.cur != &l || (c.kick_armed && c.kick_gen == l.ugen)) return;
    c.kick_armed = true;
    c.kick_gen = l.ugen;
    c.kick_deadline = steady_clock::now() + kick_timeout_;
  }
  c.cv.notify_one();  // the worker sleeps until the slice's end: make it see the deadline
}

// The kick deadline passed. Called by c's worker with c.mu held (dropped meanwhile, as for
// a kick, and held again on return): lwp_revoke re-validates under the process lock that
// cur is still in user mode in the kicked generation -- it may have trapped, been switched
// out or exited since.
void Scheduler::revoke_check(Cpu& c) {
  assert(c.kick_armed && c.cur != nullptr);
  c.kick_armed = false;
  auto p = c.cur_proc;
  const lwpid_t lid = c.cur->lid;
  const uint64_t gen = c.kick_gen;
  c.mu.unlock();
  lwp_revoke(p, lid, c.index, gen, kick_timeout_);
  p.reset();
  c.mu.lock();
}

// ---- Direct switch --------------------------------------------------------------------
//
// An LWP that blocks in a kernel entry frees its vCPU on the thread that served the entry.
// Left to the vCPU's worker, running the next LWP there costs two host thread wake-ups on
// the way (this thread wakes the worker, the worker returns the LWP to user mode) where one
// would do. So while an entry runs, entry_begin..entry_end:
//   - an LWP of the caller's process made runnable once the caller has left its vCPU, or is
//     about to (entry_expect_leave: a park that unparks another LWP first), is queued on the
//     caller's vCPU without waking anyone (defer_enqueue);
//   - the caller leaving its vCPU does not wake the worker (switch_out);
//   - at the end, with the process lock still held: if the vCPU is free and the best LWP
//     queued on it belongs to this process, it is claimed and returned to user mode right
//     here, as a real kernel's switch picks the next LWP on the CPU the sleeper leaves.
//     Otherwise the deferred LWPs are queued the usual way (takecpu), and the worker is woken
//     only if there is work for it (leave_idle), so nothing waits on a vCPU nobody watches.
// A worker that wakes on its own meanwhile may run a deferred LWP itself: every claim is
// made under the vCPU's lock, so each LWP is claimed once, and entry_end re-checks.

void Scheduler::entry_begin(EntrySwitch& e, Lwp& caller) {
  assert(caller.stat == LwpStat::kOnProc && caller.cpu >= 0);
  if (det_) return;  // one LWP at a time: nothing to switch to directly
  e.sched = this;
  e.proc = caller.proc;
  e.caller = &caller;
  e.cpu = caller.cpu;
  t_entry = &e;
}

void Scheduler::entry_expect_leave(const Lwp& caller) {
  if (EntrySwitch* e = t_entry; e != nullptr && e->caller == &caller) e->armed = true;
}

bool Scheduler::defer_enqueue(Lwp& l, bool head) {
  EntrySwitch* e = t_entry;
  if (e == nullptr || e->proc != l.proc || e->caller == &l || !(e->armed || e->left) ||
      e->n == EntrySwitch::kMaxDeferred || !allows(l.affinity, e->cpu))
    return false;
  Cpu& c = *cpus_[e->cpu];
  MutexLock g(c.mu);
  l.rq_cpu = e->cpu;
  l.rq_affinity = l.affinity;
  l.rq_policy = l.policy;
  c.rq.push(&l, l.eff_prio(), head);
  c.hint_queued.store(c.rq.size(), std::memory_order_relaxed);
  e->deferred[e->n++] = l.lid;
  return true;
}

// The caller left vCPU c and nothing runs there now. Its worker sleeps until its slice's
// end; waking it only to find nothing would cost a host context switch per blocking call.
// So: work queued here, or anywhere it could steal from, wakes it (true); otherwise the vCPU
// is marked idle as the worker would mark it, and whatever later wants it (takecpu, an
// enqueue elsewhere: wake_idle_for) wakes the worker then.
bool Scheduler::leave_idle(Cpu& c) {
  if (c.rq.size() > 0 || c.stopping) return true;
  for (const auto& o : cpus_)
    if (o.get() != &c && o->hint_queued.load(std::memory_order_relaxed) > 0) return true;
  account(c, false);
  c.idle.store(true, std::memory_order_relaxed);
  return false;
}

bool Scheduler::end_entry_on(Proc& p) {
  EntrySwitch* e = t_entry;
  if (e == nullptr || e->proc != &p) return false;
  t_entry = nullptr;
  return e->sched->entry_end(*e, p);
}

bool Scheduler::entry_end(const EntrySwitch& es, Proc& p) {
  const EntrySwitch* e = &es;
  Cpu& c = *cpus_[e->cpu];
  Lwp* next = nullptr;
  bool wake_worker = false;
  std::array<Lwp*, EntrySwitch::kMaxDeferred> requeue{};
  int nrequeue = 0;
  {
    MutexLock g(c.mu);
    if (e->left && c.cur == nullptr && !c.stopping) {
      Lwp* top = c.rq.top();
      if (top != nullptr && top->proc == &p) {
        c.rq.remove(top);
        top->rq_cpu = -1;
        claim(c, *top);
        next = top;
        // A worker in its idle wait would not watch `next` (slices, kick deadlines); one
        // in watch_current wakes at the old slice's end and finds it by itself.
        if (c.idle_wait) c.cv.notify_one();
      }
    }
    // Left free with nothing claimed: what is queued here stays for the worker (leave_idle
    // wakes it); otherwise the deferred LWPs still queued here are queued the usual way.
    const bool left_free = e->left && c.cur == nullptr;
    for (int i = 0; i < e->n && !left_free; i++) {
      Lwp* l = p.find_lwp(e->deferred[i]);
      if (l == nullptr || l == next || l->rq_cpu != e->cpu) continue;
      lwp_assert_locked(*l);
      c.rq.remove(l);
      l->rq_cpu = -1;
      requeue[nrequeue++] = l;
    }
    c.hint_queued.store(c.rq.size(), std::memory_order_relaxed);
    if (left_free) wake_worker = leave_idle(c);
  }
  if (wake_worker) c.cv.notify_one();
  for (int i = 0; i < nrequeue; i++) {
    lwp_assert_locked(*requeue[i]);
    enqueue(*requeue[i], false);
  }
  if (next == nullptr) return false;
  lwp_assert_locked(*next);
  lwp_run_on(*next, c.index);
  return true;
}

Lwp* Scheduler::steal(Cpu& thief) {
  const int n = ncpus();
  for (int i = 1; i < n; i++) {
    Cpu& v = *cpus_[(thief.index + i) % n];
    MutexLock g(v.mu);
    if (v.rq.size() == 0) continue;
    if (Lwp* l = v.rq.pop_migratable(thief.index)) {
      v.hint_queued.store(v.rq.size(), std::memory_order_relaxed);
      l->rq_cpu = -1;
      return l;
    }
  }
  return nullptr;
}

// The worker's pinning (top comment of sched.h, "Pinning"), once its priority is set.
void Scheduler::pin_worker(Cpu& c) {
  int host;
  {
    MutexLock g(c.mu);
    if (c.host_cpu >= 0 && c.rt.realtime() && !pin_realtime_) c.host_cpu = -1;
    host = c.host_cpu;
  }
  if (host < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(host, &set);
  if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
    k_.log(2, "vcpu" + std::to_string(c.index) + ": cannot pin to host CPU " +
                  std::to_string(host) + ", running unpinned");
    MutexLock g(c.mu);
    c.host_cpu = -1;
  }
}

// An idle vCPU's next LWP: the best of its own queue, else one stolen from another vCPU;
// nullptr (after waiting for work or a poke, unless stopping) when there is none.
Lwp* Scheduler::next_lwp(Cpu& c, UniqueLock& lk) {
  if (Lwp* l = c.rq.pop()) {
    l->rq_cpu = -1;
    c.hint_queued.store(c.rq.size(), std::memory_order_relaxed);
    return l;
  }
  // Advertise idleness before looking at other queues: an enqueuer that pushes after our
  // scan sees the flag and pokes us (both sides order through the victim's lock), so no
  // work waits a time slice for us.
  c.idle.store(true, std::memory_order_relaxed);
  c.poked = false;
  c.mu.unlock();
  Lwp* l = steal(c);
  c.mu.lock();
  if (c.cur != nullptr) {
    // A kernel entry's direct switch claimed this vCPU while we looked elsewhere: the stolen
    // LWP (LSRUN) waits in our own queue instead, and the loop watches the new current one.
    if (l != nullptr) {
      l->rq_cpu = c.index;
      c.rq.push(l, l->rq_prio, false);
      c.hint_queued.store(c.rq.size(), std::memory_order_relaxed);
    }
    return nullptr;
  }
  if (c.stopping) return nullptr;
  if (l != nullptr) {
    c.steals++;
    return l;
  }
  if (c.rq.size() == 0 && !c.poked) {
    c.idle_wait = true;  // a direct switch that claims the vCPU now must wake us
    c.rt.rest();
    c.cv.wait(lk);
    c.idle_wait = false;
  }
  return nullptr;
}

// Claim `l` for `c` (from here until switch_out, `cur` is this LWP) and let the kernel
// run it, with the vCPU's lock dropped.
void Scheduler::dispatch(Cpu& c, Lwp& l) {
  claim(c, l);
  c.mu.unlock();
  lwp_dispatch(l, c.index);
  c.mu.lock();
  if (c.cur == nullptr) account(c, false);
}

// `l`, just taken off a run queue, is c's current LWP from now on.
void Scheduler::claim(Cpu& c, Lwp& l) {
  account(c, true);
  c.idle.store(false, std::memory_order_relaxed);
  c.cur = &l;
  c.cur_proc = l.proc->shared_from_this();
  c.cur_prio = l.rq_prio;
  c.cur_policy = l.rq_policy;
  c.hint_prio.store(c.cur_prio, std::memory_order_relaxed);
  c.need_resched = c.need_kick = false;
  c.kick_armed = false;
  c.slice_end = steady_clock::now() + quantum_;
  c.switches++;
}

// The current LWP's next event: a kick to deliver, a kick unanswered past its deadline,
// the end of its time slice -- or a wait for the first of them.
void Scheduler::watch_current(Cpu& c, UniqueLock& lk) {
  if (c.need_kick) {
    c.need_kick = false;
    auto p = c.cur_proc;
    const lwpid_t lid = c.cur->lid;
    c.mu.unlock();
    lwp_kick_current(p, lid, c.index);
    p.reset();
    c.mu.lock();
    return;
  }
  const auto now = steady_clock::now();
  if (c.kick_armed && now >= c.kick_deadline) {
    revoke_check(c);
    return;
  }
  if (now >= c.slice_end) {
    // Time slice over: give way to anything of equal or higher priority (NB_SCHED_FIFO is
    // never sliced). A request still unanswered after a whole slice is repeated: a kick
    // can be lost on the user side, and a duplicate is harmless (same generation).
    // (Deterministic mode: anything queued at all, in the one queue.)
    const bool others = det_ ? cpus_[0]->hint_queued.load(std::memory_order_relaxed) > 0
                             : c.rq.max_prio() >= c.cur_prio;
    if (c.need_resched) {
      c.need_kick = true;
    } else if (c.cur_policy != NB_SCHED_FIFO && others) {
      c.need_resched = true;
      c.need_kick = true;
      c.preemptions++;
      if (det_) {
        det_rt_preempt_.fetch_add(1, std::memory_order_relaxed);
        det_rt_last_lid_.store(c.cur->lid, std::memory_order_relaxed);
        det_rt_marks_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    c.slice_end = now + quantum_;
    return;
  }
  // By value: the wait re-reads nothing unlocked.
  const auto wake = c.kick_armed ? std::min(c.slice_end, c.kick_deadline) : c.slice_end;
  c.rt.rest();
  c.cv.wait_until(lk, wake);
  if (c.cur == nullptr) account(c, false);
}

// The vCPU's life: dispatch the best queued LWP (or steal one), then watch it until it
// leaves, its time slice ends or something outranks it.
void Scheduler::run(Cpu& c) {
  pthread_setname_np(pthread_self(), ("lwpd-cpu" + std::to_string(c.index)).c_str());
  if (int e = c.rt.start(rt_priority_); e != 0 && c.index == 0)
    k_.log(1, "--rt-priority " + std::to_string(rt_priority_) +
                  ": vCPU workers cannot run SCHED_FIFO (" + std::strerror(e) +
                  "); running at normal priority");
  pin_worker(c);
  UniqueLock lk(c.mu);
  while (!c.stopping) {
    c.rt.busy();
    if (c.cur != nullptr) {
      watch_current(c, lk);
    } else if (Lwp* l = next_lwp(c, lk)) {
      dispatch(c, *l);
    }
  }
}

// ---- Deterministic mode ----------------------------------------------------------------
//
// With a seed, the vCPUs are logical CPUs and one thread, run_det(), serves them all: at most
// one LWP runs user code at a time, so the host cannot reorder anything behind the kernel's
// back, and every choice the kernel makes is drawn from one generator in an order the
// program alone decides:
//   - at a kernel entry's return to user mode (lwp_userret -> take_resched): whether the
//     caller goes on or gives way (det_decide: the caller and the LWPs queued at the best
//     priority are equally likely; a better priority queued always wins);
//   - when nothing runs and no entry is in progress (EntryGate): which queued LWP runs next
//     (det_pick) and on which logical CPU its affinity allows (det_cpu_for);
//   - when nothing is queued either: the virtual clock moves to the next timeout, which
//     fires (Callout::fire_next), so a timed park ends at the same point of every run.
// The one decision left to the host's timing: an LWP that runs user code for a whole time
// slice without entering the kernel is kicked (watch_current), counted in
// realtime_preemptions() and marked in the record.
//
// Kernel entries run one at a time (an LWP's next entry may arrive on another host thread
// before its previous one has quite ended), and so do the scheduling thread's own acts on
// the kernel (a dispatch, the callouts of the virtual clock), each counted as an event when
// it ends (det_events_, with every LWP queued). An input from outside the program (an
// admin's signal, a debugger, a client's death: InputGate) waits for the kernel to be quiet
// between two such events and keeps entries out while it acts, so the event count names the
// point where it took effect, which the record keeps and a replay reproduces.

namespace {
thread_local lwpid_t t_det_entry = 0;   // the LWP whose kernel entry this thread serves
thread_local bool t_det_input = false;  // this thread applies an outside input
}  // namespace

Scheduler::EntryGate::EntryGate(Scheduler& s, lwpid_t lid)
    : s_(s.det_ && t_det_entry == 0 && !t_det_input ? &s : nullptr) {
  if (s_ == nullptr) return;
  t_det_entry = lid;
  Cpu& q = *s_->cpus_[0];
  UniqueLock lk(q.mu);
  for (;;) {
    // Inputs waiting for their turn go first: a busy program does not starve them.
    while (!q.stopping && !(s_->det_quiet() && s_->det_inputs_waiting_ == 0)) q.cv.wait(lk);
    if (q.stopping || !s_->det_apply_due(q)) break;
  }
  s_->det_entries_++;
}

Scheduler::EntryGate::~EntryGate() {
  if (s_ == nullptr) return;
  t_det_entry = 0;
  Cpu& q = *s_->cpus_[0];
  {
    UniqueLock lk(q.mu);
    s_->det_entries_--;
    s_->det_events_++;
    while (s_->det_quiet() && s_->det_apply_due(q)) {
    }
  }
  q.cv.notify_all();
}

Scheduler::InputGate::InputGate(Scheduler& s, bool always)
    : s_(s.det_ && t_det_entry == 0 && !t_det_input ? &s : nullptr) {
  if (s_ == nullptr) return;
  Cpu& q = *s_->cpus_[0];
  UniqueLock lk(q.mu);
  if (s_->replaying_ && !always) {
    refused_ = true;
    s_ = nullptr;
    return;
  }
  s_->det_inputs_waiting_++;
  while (!q.stopping && !s_->det_quiet()) q.cv.wait(lk);
  s_->det_inputs_waiting_--;
  s_->det_input_busy_ = true;
  t_det_input = true;
  at_ = s_->det_events_;
}

Scheduler::InputGate::~InputGate() {
  if (s_ == nullptr) return;
  t_det_input = false;
  Cpu& q = *s_->cpus_[0];
  {
    MutexLock g(q.mu);
    s_->det_input_busy_ = false;
  }
  q.cv.notify_all();
}

// The input acted (an input that found nothing to act on is not recorded). A live input in
// a replay (a client's death) must be the record's next line, at this point.
void Scheduler::InputGate::record(const std::string& what) {
  if (s_ == nullptr) return;
  Cpu& q = *s_->cpus_[0];
  MutexLock g(q.mu);
  const std::string line = "I " + std::to_string(at_) + " " + what;
  s_->det_note_marks();
  if (s_->rec_ != nullptr) std::fprintf(s_->rec_, "%s\n", line.c_str());
  if (!s_->replaying_ || !s_->diverged_.empty()) return;
  if (s_->replay_next_ < s_->replay_.size() && s_->replay_[s_->replay_next_] == line) {
    s_->replay_next_++;
    return;
  }
  s_->det_diverge("schedule replay diverged at event " + std::to_string(at_) +
                  ": an input from outside the program (" + what +
                  ") took effect here, which the record does not have");
}

void Scheduler::set_input_applier(std::function<std::string(const std::string&)> f) {
  Cpu& q = *cpus_[0];
  MutexLock g(q.mu);
  input_applier_ = std::move(f);
}

bool Scheduler::det_apply_due(Cpu& q) {
  if (!replaying_ || !diverged_.empty() || replay_next_ >= replay_.size()) return false;
  const std::string line = replay_[replay_next_];
  unsigned long long at = 0;
  int off = 0;
  if (std::sscanf(line.c_str(), "I %llu %n", &at, &off) != 1 || off == 0) return false;
  if (at > det_events_) return false;
  const std::string what = line.substr(static_cast<size_t>(off));
  if (at < det_events_) {
    det_diverge("schedule replay diverged at event " + std::to_string(det_events_) +
                ": the record has an input from outside the program (" + what + ") at event " +
                std::to_string(at) + ", which this run has passed");
    return false;
  }
  replay_next_++;
  det_note_marks();
  if (rec_ != nullptr) std::fprintf(rec_, "%s\n", line.c_str());
  det_input_busy_ = true;
  auto apply = input_applier_;
  q.mu.unlock();
  t_det_input = true;
  const std::string differs = apply ? apply(what) : "nothing here applies inputs";
  t_det_input = false;
  q.mu.lock();
  det_input_busy_ = false;
  if (!differs.empty())
    det_diverge("schedule replay diverged at event " + std::to_string(at) +
                ": the recorded input (" + what + ") " + differs);
  q.cv.notify_all();
  return true;
}

void Scheduler::det_pseudo_end(bool changed) {
  Cpu& q = *cpus_[0];
  {
    UniqueLock lk(q.mu);
    det_entries_--;
    if (changed) det_events_++;
    while (det_quiet() && det_apply_due(q)) {
    }
  }
  q.cv.notify_all();
}

void Scheduler::det_note_marks() {
  const uint64_t n = det_rt_marks_.exchange(0, std::memory_order_relaxed);
  if (n == 0 || rec_ == nullptr) return;
  std::fprintf(rec_, "# %llu real-time preemption(s) since the previous line, the last of LWP %d\n",
               static_cast<unsigned long long>(n),
               det_rt_last_lid_.load(std::memory_order_relaxed));
}

// At l's return to user mode from a kernel entry: give way? Not at a dispatch (the choice
// that dispatched it was just made).
bool Scheduler::det_decide(Lwp& l) {
  if (t_det_entry != l.lid) return false;
  Cpu& q = *cpus_[0];
  MutexLock g(q.mu);
  det_steps_++;
  if (pct_) {
    pct_prio(l);  // first sight assigns it, before a change point may lower it
    if (auto it = pct_change_.find(det_steps_); it != pct_change_.end()) l.pct_prio = it->second;
  }
  const int top = q.rq.max_prio();
  const int mine = l.eff_prio();
  if (top < 0 || top < mine) return false;
  if (top > mine) return true;
  if (pct_) {
    // Give way to a queued LWP of higher PCT priority.
    const uint64_t own = pct_prio(l);
    for (Lwp* o = q.rq.first_at(top); o != nullptr; o = o->rq_next)
      if (pct_prio(*o) > own) return true;
    return false;
  }
  const int n = q.rq.count_at(top);
  return det_draw('D', l.lid, static_cast<uint64_t>(n + 1)) != 0;  // 0: the caller goes on
}

uint64_t Scheduler::pct_prio(Lwp& l) {
  // Initial priorities are above every change point's (1 .. depth-1); 0: not drawn yet.
  if (l.pct_prio == 0) l.pct_prio = (det_draw('Q', l.lid, 0) >> 8) + 1000;
  return l.pct_prio;
}

Lwp* Scheduler::det_pick(Cpu& q) {
  const int top = q.rq.max_prio();
  if (top < 0) return nullptr;
  const int n = q.rq.count_at(top);
  int k = 0;
  if (pct_) {
    // The highest PCT priority of the best NetBSD priority level.
    uint64_t best = 0;
    int i = 0;
    for (Lwp* o = q.rq.first_at(top); o != nullptr; o = o->rq_next, i++) {
      const uint64_t p = pct_prio(*o);
      if (i == 0 || p > best) {
        best = p;
        k = i;
      }
    }
  } else {
    k = static_cast<int>(det_draw('P', 0, static_cast<uint64_t>(n)));
  }
  Lwp* l = q.rq.take_nth_at(top, k);
  l->rq_cpu = -1;
  q.hint_queued.store(q.rq.size(), std::memory_order_relaxed);
  return l;
}

int Scheduler::det_cpu_for(Cpu& q, const Lwp& l) {
  (void)q;  // the generator's lock
  int allowed[kMaxCpus];
  int n = 0;
  for (int i = 0; i < ncpus(); i++)
    if (allows(l.rq_affinity, i)) allowed[n++] = i;
  if (n == 0) return 0;  // an affinity with no existing vCPU is refused before it is set
  return allowed[det_draw('C', l.lid, static_cast<uint64_t>(n))];
}

void Scheduler::run_det() {
  pthread_setname_np(pthread_self(), "lwpd-det");
  Cpu& q = *cpus_[0];
  for (;;) {
    Lwp* l = nullptr;
    int ci = 0;
    {
      UniqueLock lk(q.mu);
      for (;;) {
        if (q.stopping) return;
        if (det_quiet() && det_inputs_waiting_ == 0) {
          if (det_apply_due(q)) continue;
          l = det_pick(q);
          if (l != nullptr) break;
          // Nothing runs, nothing is queued: time passes (virtually) to the next timeout,
          // whose callouts act as an entry would. While the lock is dropped an LWP may be
          // queued or stop() come: look again then rather than wait for a notification
          // that came before the wait.
          const uint64_t seen = det_events_;
          det_entries_++;
          lk.unlock();
          const bool fired = k_.callout().fire_next();
          det_pseudo_end(fired);
          lk.lock();
          if (fired || det_events_ != seen || q.stopping) continue;
        }
        q.cv.wait(lk);
      }
      ci = det_cpu_for(q, *l);
      det_entries_++;  // the dispatch acts as an entry
    }
    Cpu& c = *cpus_[ci];
    {
      UniqueLock lk(c.mu);
      dispatch(c, *l);
    }
    det_pseudo_end(true);
    UniqueLock lk(c.mu);
    while (c.cur != nullptr && !c.stopping) watch_current(c, lk);
  }
}

// ---- Record and replay ----------------------------------------------------------------
//
// Every draw of the generator is one line, "<n> <kind> <lid> <among> <value>": the draw's
// number, what it decides (D: the caller of an entry goes on or gives way; P: which queued LWP
// runs; C: on which logical CPU; Q: a PCT priority), the LWP it is about (0 for P), among how
// many alternatives (0: a raw 64-bit value) and the value drawn. A replay answers each draw
// with the recorded value once the kind, LWP and count match; the PCT change points are
// drawn before the first line, from the seed, so a replay must use the recorded run's seed
// and strategy (the header says them).
//
// An input from outside the program is a line "I <event> <what>" (InputGate): what acted
// ("suspend 2 3", "dbg-ptrace 5 ... = 0 0") and the kernel event count when it did. A replay
// applies it itself when the run reaches that count with the kernel quiet, before anything
// else happens there (Kernel::apply_input; a debugger's results are compared), and refuses
// live inputs. A run that passes the point, or asks a draw where the record has an input,
// has diverged. Real-time preemptions are marked by comment lines ("# ...").

void Scheduler::open_log(const std::string& record, const std::string& replay,
                         std::function<void(const std::string&)> on_divergence) {
  Cpu& q = *cpus_[0];
  MutexLock g(q.mu);
  on_divergence_ = std::move(on_divergence);
  if (!replay.empty()) {
    FILE* f = std::fopen(replay.c_str(), "r");
    if (f == nullptr) {
      k_.log(3, "cannot read the schedule record " + replay + ": " + std::strerror(errno));
      diverged_ = "the record " + replay + " cannot be read";
      if (on_divergence_) on_divergence_(diverged_);
      return;
    }
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      std::string l(line);
      if (!l.empty() && l.back() == '\n') l.pop_back();
      if (!l.empty() && l[0] != '#') replay_.push_back(l);
    }
    std::fclose(f);
    replaying_ = true;
  }
  if (!record.empty()) {
    rec_ = std::fopen(record.c_str(), "w");
    if (rec_ == nullptr) {
      k_.log(3, "cannot write the schedule record " + record + ": " + std::strerror(errno));
      return;
    }
    std::setvbuf(rec_, nullptr, _IOLBF, 0);  // whole lines even if the daemon is killed
    std::fprintf(rec_, "# lwpd schedule record: strategy %s pct-depth %d pct-steps %d cpus %d\n",
                 pct_ ? "pct" : "random", pct_depth_, pct_steps_, ncpus());
  }
}

void Scheduler::det_diverge(const std::string& why) {
  if (!diverged_.empty()) return;
  diverged_ = why;
  k_.log(3, diverged_);
  if (on_divergence_) on_divergence_(diverged_);
}

std::string Scheduler::replay_divergence() const {
  Cpu& q = *cpus_[0];
  MutexLock g(q.mu);
  return diverged_;
}

uint64_t Scheduler::det_draw(char kind, int lid, uint64_t n) {
  const uint64_t draw_no = ++det_draws_;
  uint64_t v = 0;
  bool taken = false;
  if (replaying_ && diverged_.empty()) {
    char rk = 0;
    int rlid = 0;
    unsigned long long rno = 0, rn = 0, rv = 0;
    const bool have = replay_next_ < replay_.size();
    const bool parsed = have && std::sscanf(replay_[replay_next_].c_str(), "%llu %c %d %llu %llu",
                                            &rno, &rk, &rlid, &rn, &rv) == 5;
    if (parsed && rno == draw_no && rk == kind && rlid == lid && rn == n && (n == 0 || rv < n)) {
      v = rv;
      taken = true;
      replay_next_++;
    } else {
      auto question = [](char k, int lid, uint64_t among) {
        const std::string who = "LWP " + std::to_string(lid);
        const std::string q = k == 'D'   ? "whether " + who + " goes on after its kernel entry"
                              : k == 'P' ? std::string("which queued LWP runs next")
                              : k == 'C' ? "the logical CPU of " + who
                                         : "the PCT priority of " + who;
        return q + (among != 0 ? " (" + std::to_string(among) + " alternatives)" : "");
      };
      std::string recorded = "nothing: the record has ended";
      unsigned long long at = 0;
      if (have) {
        recorded = parsed ? question(rk, rlid, rn)
                   : std::sscanf(replay_[replay_next_].c_str(), "I %llu", &at) == 1
                       ? "an input from outside the program at event " + std::to_string(at) +
                             " (this run is at event " + std::to_string(det_events_) + ")"
                       : "an unreadable line";
        recorded += " [\"" + replay_[replay_next_] + "\"]";
      }
      det_diverge("schedule replay diverged at draw " + std::to_string(draw_no) +
                  ": this run asks " + question(kind, lid, n) + ", the record has " + recorded);
    }
  }
  if (!taken) {
    const uint64_t raw = det_rng_();
    v = n == 0 ? raw : raw % n;
  }
  det_note_marks();
  if (rec_ != nullptr)
    std::fprintf(rec_, "%llu %c %d %llu %llu\n", static_cast<unsigned long long>(draw_no), kind,
                 lid, static_cast<unsigned long long>(n), static_cast<unsigned long long>(v));
  return v;
}

std::vector<CpuInfo> Scheduler::snapshot() const {
  std::vector<CpuInfo> out;
  for (auto& cp : cpus_) {
    Cpu& c = *cp;
    MutexLock g(c.mu);
    CpuInfo i;
    i.index = c.index;
    i.host_cpu = c.host_cpu;
    if (c.cur != nullptr) {
      i.cur_pid = c.cur_proc ? c.cur_proc->pid : 0;
      i.cur_lid = c.cur->lid;
      i.cur_priority = c.cur_prio;
    }
    i.runq_len = c.rq.size();
    i.switches = c.switches;
    i.steals = c.steals;
    i.preemptions = c.preemptions;
    const uint64_t open = ns_between(c.since, steady_clock::now());
    i.busy_ns = c.busy_ns + (c.acct_busy ? open : 0);
    i.idle_ns = c.idle_ns + (c.acct_busy ? 0 : open);
    out.push_back(i);
  }
  return out;
}

}  // namespace lwpd::emul
