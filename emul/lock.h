// The daemon's locks: an annotated mutex, its guards and condition variable, and the
// one lock order of emul/ and server/.
//
// ---------------------------------------------------------------------------
// Lock order (outer -> inner; a thread takes a lock only if every lock it holds ranks
// strictly lower; same rank twice = never two at once, e.g. two Proc or two Cpu locks):
//
//   Sessions -> TraceTable -> KernelTable -> Proc -> Cpu -> Callout -> IdAlloc -> Uid -> Port ->
//   WatchHub -> Watcher -> Stream -> Pump -> Janitor -> Leaf
//
// The ranks are LockRank below, in that order. What each lock covers is said beside it:
//   Sessions     server::Sessions::mu_        the session table (no kernel or port lock held)
//   TraceTable   server trace_service Table   the Trace service's debugger sessions
//   KernelTable  emul::Kernel::table_mu_      the process table, per-uid process counts
//   Proc         emul::Proc::mu               one process and its LWPs (kern_lwp.cc)
//   Cpu          emul::Cpu::mu                one vCPU's run queue and current LWP
//   Callout      emul::Callout::mu_           the timeout queue
//   IdAlloc      emul::IdAllocator::mu_       the PID/LID space
//   Uid          emul::Kernel::uid_mu_        per-uid LWP counts
//   Port         server::GrpcPort::mu_        one process's return routes (UserPort calls)
//   WatchHub     server::WatchHub::mu_        watchers and suspension waiters
//   Watcher      server Watcher::mu_          one Inspect.Watch stream's ring
//   Stream       QueuedBidiReactor::wmu_      one bidi stream's write queue
//   Pump         server::WatchHub::pump_mu_   the pump thread's task queue
//   Janitor      server::Janitor::mu_         the janitor thread's work queue
//   Leaf         single-object leaves: the listener's connection table, a kernel-service
//                reactor's session slot (nothing is taken under them)
//
// A vCPU worker holds no lock when it takes a Proc lock: it learns what to do under
// Cpu::mu, drops it and re-validates under Proc::mu.
//
// Checking. Clang's thread-safety analysis (-Wthread-safety, CMakeLists.txt) proves at
// compile time which lock guards each field (GUARDED_BY) and what a function needs held
// (REQUIRES / EXCLUDES / ACQUIRE / RELEASE); the macros are empty for gcc. The order
// above is checked at run time when LWPD_LOCK_CHECKS is 1 -- by default whenever NDEBUG
// is not defined, i.e. in every build we test and ship (RelWithDebInfo keeps assertions):
// each thread keeps a bitmask of the ranks it holds (one thread_local word; a lock costs a
// test and two or's), and acquiring a rank lower than or equal to one held aborts naming
// both. The same builds record each mutex's owner, so AssertHeld() really checks.
// Where the analysis cannot follow an alias -- an LWP reached through its process's list,
// `Proc& p = *l.proc` -- the code asserts the lock at that point (emul::lwp_assert_locked,
// Mutex::AssertHeld): the analysis takes it as held, assertion builds check it. No file
// or function turns the analysis off.
// ---------------------------------------------------------------------------
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

// ---- clang thread-safety attributes (empty elsewhere) ----
#if defined(__clang__)
#define LWPD_TSA(x) __attribute__((x))
#else
#define LWPD_TSA(x)
#endif
// absl (through gRPC) defines some of these names the same way; the first definition wins.
#ifndef CAPABILITY
#define CAPABILITY(x) LWPD_TSA(capability(x))
#endif
#ifndef SCOPED_CAPABILITY
#define SCOPED_CAPABILITY LWPD_TSA(scoped_lockable)
#endif
#ifndef GUARDED_BY
#define GUARDED_BY(x) LWPD_TSA(guarded_by(x))
#endif
#ifndef PT_GUARDED_BY
#define PT_GUARDED_BY(x) LWPD_TSA(pt_guarded_by(x))
#endif
#ifndef REQUIRES
#define REQUIRES(...) LWPD_TSA(requires_capability(__VA_ARGS__))
#endif
#ifndef EXCLUDES
#define EXCLUDES(...) LWPD_TSA(locks_excluded(__VA_ARGS__))
#endif
#ifndef ACQUIRE
#define ACQUIRE(...) LWPD_TSA(acquire_capability(__VA_ARGS__))
#endif
#ifndef RELEASE
#define RELEASE(...) LWPD_TSA(release_capability(__VA_ARGS__))
#endif
#ifndef TRY_ACQUIRE
#define TRY_ACQUIRE(...) LWPD_TSA(try_acquire_capability(__VA_ARGS__))
#endif
#ifndef ASSERT_CAPABILITY
#define ASSERT_CAPABILITY(x) LWPD_TSA(assert_capability(x))
#endif
#ifndef RETURN_CAPABILITY
#define RETURN_CAPABILITY(x) LWPD_TSA(lock_returned(x))
#endif
#ifndef NO_THREAD_SAFETY_ANALYSIS
#define NO_THREAD_SAFETY_ANALYSIS LWPD_TSA(no_thread_safety_analysis)
#endif

#ifndef LWPD_LOCK_CHECKS
#ifdef NDEBUG
#define LWPD_LOCK_CHECKS 0
#else
#define LWPD_LOCK_CHECKS 1
#endif
#endif

namespace lwpd {

// The lock order of the file comment, outer first. At most 31 ranks (one bit each).
enum class LockRank : uint8_t {
  kSessions = 1,
  kTraceTable,
  kKernelTable,
  kProc,
  kCpu,
  kCallout,
  kIdAlloc,
  kUid,
  kPort,
  kWatchHub,
  kWatcher,
  kStream,
  kPump,
  kJanitor,
  kLeaf,
};
const char* lock_rank_name(LockRank r);

namespace lockcheck {
#if LWPD_LOCK_CHECKS
// Bit r set: this thread holds a lock of rank r. Its address also names the thread as a
// mutex owner (Mutex::AssertHeld).
inline constinit thread_local uint32_t t_held = 0;
[[noreturn]] void order_violation(LockRank taking, uint32_t held);
[[noreturn]] void not_held(LockRank r);

inline void on_acquire(LockRank r) {
  const uint32_t bit = 1u << static_cast<unsigned>(r);
  // Any held rank >= r (this bit or a higher one) breaks the order.
  if (t_held & ~(bit - 1)) order_violation(r, t_held);
  t_held |= bit;
}
inline void on_release(LockRank r) { t_held &= ~(1u << static_cast<unsigned>(r)); }
#endif
}  // namespace lockcheck

// std::mutex with a rank and the capability attributes. Use it through MutexLock /
// UniqueLock (or a guard built on them, like emul::DeferringProcLock).
class CAPABILITY("mutex") Mutex {
 public:
  explicit constexpr Mutex(LockRank r) : rank_(r) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() {
#if LWPD_LOCK_CHECKS
    lockcheck::on_acquire(rank_);
#endif
    mu_.lock();
    note_owner();
  }
  bool try_lock() TRY_ACQUIRE(true) {
    // A try never waits, so it cannot deadlock; it still may not break the order's
    // bookkeeping (a held rank must stay unique).
#if LWPD_LOCK_CHECKS
    lockcheck::on_acquire(rank_);
#endif
    if (mu_.try_lock()) {
      note_owner();
      return true;
    }
#if LWPD_LOCK_CHECKS
    lockcheck::on_release(rank_);
#endif
    return false;
  }
  void unlock() RELEASE() {
    // Every member is read before the unlock: the lock may be all that keeps its owner
    // alive (a Proc can be freed by another thread the moment its mutex drops).
    forget_owner();
#if LWPD_LOCK_CHECKS
    lockcheck::on_release(rank_);
#endif
    mu_.unlock();
  }

  // Tells the analysis this mutex is held here; checks it when LWPD_LOCK_CHECKS.
  void AssertHeld() const ASSERT_CAPABILITY(this) {
#if LWPD_LOCK_CHECKS
    if (owner_.load(std::memory_order_relaxed) != &lockcheck::t_held) lockcheck::not_held(rank_);
#endif
  }

  LockRank rank() const { return rank_; }

 private:
  friend class CondVar;
  void note_owner() {
#if LWPD_LOCK_CHECKS
    owner_.store(&lockcheck::t_held, std::memory_order_relaxed);
#endif
  }
  void forget_owner() {
#if LWPD_LOCK_CHECKS
    owner_.store(nullptr, std::memory_order_relaxed);
#endif
  }

  std::mutex mu_;
  const LockRank rank_;
#if LWPD_LOCK_CHECKS
  // Relaxed: only the owner itself compares with its own address, and it wrote it.
  std::atomic<const uint32_t*> owner_{nullptr};
#endif
};

// Holds a Mutex for a scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() RELEASE() { mu_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// A movable-free std::unique_lock for Mutex: unlock()/lock() in the middle of a scope, and
// the lock CondVar waits with.
class SCOPED_CAPABILITY UniqueLock {
 public:
  explicit UniqueLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) {
    mu_.lock();
    owns_ = true;
  }
  ~UniqueLock() RELEASE() {
    if (owns_) mu_.unlock();
  }
  UniqueLock(const UniqueLock&) = delete;
  UniqueLock& operator=(const UniqueLock&) = delete;

  void lock() ACQUIRE() {
    mu_.lock();
    owns_ = true;
  }
  void unlock() RELEASE() {
    owns_ = false;
    mu_.unlock();
  }
  bool owns_lock() const { return owns_; }
  Mutex& mutex() const { return mu_; }

 private:
  Mutex& mu_;
  bool owns_ = false;
};

// std::condition_variable over a Mutex: the wait hands the underlying std::mutex to the
// standard condition variable (no condition_variable_any and its extra lock), keeping
// the rank and owner bookkeeping right while the mutex is released.
class CondVar {
 public:
  void notify_one() { cv_.notify_one(); }
  void notify_all() { cv_.notify_all(); }

  void wait(UniqueLock& lk) {
    Mutex& m = lk.mutex();
    Released r(m);
    cv_.wait(r.lk);
  }
  template <class Clock, class Dur>
  std::cv_status wait_until(UniqueLock& lk, const std::chrono::time_point<Clock, Dur>& t) {
    Released r(lk.mutex());
    return cv_.wait_until(r.lk, t);
  }
  template <class Rep, class Period>
  std::cv_status wait_for(UniqueLock& lk, const std::chrono::duration<Rep, Period>& d) {
    Released r(lk.mutex());
    return cv_.wait_for(r.lk, d);
  }

 private:
  // For the length of a wait: the mutex counts as released for the bookkeeping (another
  // thread will own it meanwhile), and a std::unique_lock adopts the held std::mutex.
  struct Released {
    explicit Released(Mutex& mu) : m(mu), lk(mu.mu_, std::adopt_lock) {
      m.forget_owner();
#if LWPD_LOCK_CHECKS
      lockcheck::on_release(m.rank_);
#endif
    }
    ~Released() {
      // Re-taken by the wait: the ranks held around it are those held when it was
      // first taken, so the order holds as it did then.
#if LWPD_LOCK_CHECKS
      lockcheck::t_held |= 1u << static_cast<unsigned>(m.rank_);
#endif
      m.note_owner();
      lk.release();
    }
    Mutex& m;
    std::unique_lock<std::mutex> lk;
  };
  std::condition_variable cv_;
};

}  // namespace lwpd
