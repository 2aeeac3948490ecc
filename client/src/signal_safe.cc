// ASYNC-SIGNAL-SAFE FILE: code that runs inside signal handlers.
//
//   kick_handler       the kick signal's handler: traps an LWP running user code
//                      (shim_internal.h, "Kicks"), or defers the kick while the thread is
//                      inside the C runtime ("Kicks inside the C runtime").
//   user_signal_tramp  every program handler runs behind it: a user signal that lands in
//                      the C runtime is deferred like a kick and re-raised by the kick
//                      handler once the thread is out ("Calls from signal handlers").
//   proxy_wait         a handler's _lwp_* call: queued for the proxy thread, waited for.
//   in_signal_handler, unblock, and the C-runtime lookups they use.
//
// Rules. Everything here may run inside a signal handler that interrupted arbitrary code,
// so it calls only async-signal-safe functions: raw system calls (futex, rt_sigprocmask,
// rt_tgsigqueueinfo, tgkill, timer_settime, write), atomics, and the shim's own
// shim_sigmask() (sigmask.cc, async-signal-safe too). No allocation, no locks, no stdio, no
// gRPC; the transport is reached only through LwpChannel::trap_from_handler(), which each
// transport implements under the same rules. Data it reads is either the calling thread's
// own (Lwp, initial-exec TLS t_self) or written before the handler was installed
// (runtime_code.cc). Code that runs where a sanitizer's runtime does not expect
// instrumented code is LWPD_NO_SANITIZE and uses __atomic builtins, never std::atomic.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sanitizer.h"
#include "shim_internal.h"

namespace lwpd::client {

namespace {

// Whether `pc` is inside one of TSan's atomic operations (binary search; signal-safe).
LWPD_NO_SANITIZE bool in_tsan_atomic(uintptr_t pc) {
  int lo = 0, hi = g_ntsan_atomics;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (pc < g_tsan_atomics[mid].lo) {
      hi = mid;
    } else if (pc >= g_tsan_atomics[mid].hi) {
      lo = mid + 1;
    } else {
      return true;
    }
  }
  return false;
}

// True when the interrupted thread is running C-runtime code that may hold one
// of its locks: inside the runtime's code and not blocked in a system call.
// For a user signal, the return of any system call counts as a boundary: that is
// where raise() and pthread_kill() of the thread itself deliver, and POSIX runs
// the handler before they return. Async-signal-safe.
LWPD_NO_SANITIZE bool in_runtime_critical(const void* uctx, bool user_signal) {
  const auto* uc = static_cast<const ucontext_t*>(uctx);
  const auto pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (in_tsan_atomic(pc)) return false;
  for (int i = 0; i < g_nruntime_code; i++) {
    const CodeRange& r = g_runtime_code[i];
    if (pc < r.lo + 2 || pc >= r.hi) continue;
    // `syscall` is 0f 05. A blocking call the kick interrupted either returns
    // -EINTR just after it, or (SA_RESTART, restart_syscall) is rewound onto it.
    uint16_t at, before;
    memcpy(&at, reinterpret_cast<const void*>(pc), 2);
    memcpy(&before, reinterpret_cast<const void*>(pc - 2), 2);
    const bool interrupted_call =
        at == 0x050f ||
        (before == 0x050f && (user_signal || uc->uc_mcontext.gregs[REG_RAX] == -EINTR));
    return !interrupted_call;
  }
  return false;
}

// Where a kick may trap the thread and a user handler may run: the thread is not
// inside the C runtime, or it is only there to unblock signals for the shim.
LWPD_NO_SANITIZE bool safe_point(const Lwp& l, const void* uctx, bool user_signal) {
  return (user_signal && g_tsan_runtime) || __atomic_load_n(&l.at_unblock, __ATOMIC_RELAXED) ||
         !in_runtime_critical(uctx, user_signal);
}

}  // namespace

// The signals unblock() lets in are delivered inside this pthread_sigmask(), at once
// (safe_point).
void unblock(Lwp& l, const sigset_t& mask) {
  __atomic_store_n(&l.at_unblock, true, __ATOMIC_RELAXED);
  shim_sigmask(SIG_SETMASK, &mask, nullptr);
  __atomic_store_n(&l.at_unblock, false, __ATOMIC_RELAXED);
}

namespace {

// Kick this thread again in kRekickUs.
LWPD_NO_SANITIZE void arm_rekick(Lwp& l) {
  itimerspec again{};
  again.it_value.tv_nsec = kRekickUs * 1000;
  timer_settime(l.rekick, 0, &again, nullptr);
}

// Re-raise the user signals deferred in the C runtime, with their own siginfo, once the
// thread is out of it: they are delivered when the kick handler returns.
void redeliver_deferred(Lwp& l, const void* uctx) {
  if (!safe_point(l, uctx, true)) {
    arm_rekick(l);
    return;
  }
  const pid_t pid = getpid(), tid = gettid_();
  for (int i = 0; i < l.ndeferred; i++)
    syscall(SYS_rt_tgsigqueueinfo, pid, tid, l.deferred[i].sig, &l.deferred[i].info);
  l.ndeferred = 0;
}

}  // namespace

void kick_handler(int, siginfo_t*, void* uctx) {
  const int saved_errno = errno;
  Lwp* l = t_self;
  Process* p = proc();
  if (l != nullptr && l->ndeferred > 0) redeliver_deferred(*l, uctx);
  while (l != nullptr && p != nullptr) {
    uint64_t s = l->ustate.load();
    if (mode_of(s) != kUser || !kicked(*l, gen_of(s))) break;
    if (l->has_rekick && !safe_point(*l, uctx, false)) {
      arm_rekick(*l);  // not here: let the thread leave the C runtime first (top comment)
      break;
    }
    if (!l->ustate.compare_exchange_strong(s, pack(gen_of(s), kTrapped))) break;
    uint64_t gen = 0;
    if (!l->ch->trap_from_handler(gen_of(s), &gen)) {
      for (;;) pause();  // the LWP is gone: the process is ending (every signal blocked)
    }
    l->ustate.store(pack(gen, kUser));  // and re-check the latch
  }
  errno = saved_errno;
}

// The program's handler for each signal whose disposition is user_signal_tramp
// (sigaction.cc). __atomic builtins: sigaction() is not instrumented and may not call out.
void* g_user_handler[_NSIG];
bool g_user_siginfo[_NSIG];

namespace {

// Keep the signal for later (kick handler). false: no room, deliver it now.
LWPD_NO_SANITIZE bool defer_signal(Lwp& l, int sig, const siginfo_t* info) {
  // Every signal blocked, so a nested deferral cannot interleave (the raw system call:
  // under TSan, pthread_sigmask is an interceptor).
  uint64_t all = ~uint64_t{0}, old = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
  const bool ok = l.ndeferred < Lwp::kMaxDeferred;
  if (ok) {
    Lwp::DeferredSig& d = l.deferred[l.ndeferred++];
    d.sig = sig;
    // Word by word: a memcpy() call would reach the sanitizers' interceptor.
    const auto* from = reinterpret_cast<const volatile uint64_t*>(info);
    auto* to = reinterpret_cast<volatile uint64_t*>(&d.info);
    for (size_t i = 0; i < sizeof(siginfo_t) / sizeof(uint64_t); i++) to[i] = from[i];
    arm_rekick(l);
  }
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  return ok;
}

// A fault raised by the instruction the thread is executing: it must be handled now
// (returning would only execute the instruction again).
LWPD_NO_SANITIZE bool is_fault(int sig, const siginfo_t* info) {
  if (info == nullptr || info->si_code <= 0) return false;  // sent by someone
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
         sig == SIGSYS;
}

}  // namespace

// Every program handler runs through here: one that would interrupt an LWP in the C
// runtime (holding a malloc or loader lock, say) is deferred like a kick (top comment).
LWPD_NO_SANITIZE void user_signal_tramp(int sig, siginfo_t* info, void* uctx) {
  Lwp* l = t_self;
  if (l != nullptr && l->has_rekick && !is_fault(sig, info) && !safe_point(*l, uctx, true) &&
      defer_signal(*l, sig, info))
    return;
  void* h = __atomic_load_n(&g_user_handler[sig], __ATOMIC_ACQUIRE);
  if (h == nullptr) return;  // raced with a change of disposition: it is gone
  const bool kick_view = kick_view_save();
  if (__atomic_load_n(&g_user_siginfo[sig], __ATOMIC_RELAXED)) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(h)(sig, info, uctx);
  } else {
    reinterpret_cast<void (*)(int)>(h)(sig);
  }
  kick_view_restore(kick_view);
}

// True when the calling thread runs a signal handler: only there does user code
// run with the kick signal blocked. Async-signal-safe.
bool in_signal_handler() {
  sigset_t cur;
  shim_sigmask(SIG_BLOCK, nullptr, &cur);
  return g_kick_signal != 0 && sigismember(&cur, g_kick_signal) == 1;
}

void proxy_wait(Process& p, Lwp& l, ProxyReq& q) {
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  ProxyReq* head = p.proxy_q.load(std::memory_order_relaxed);
  do {
    q.next = head;
  } while (!p.proxy_q.compare_exchange_weak(head, &q, std::memory_order_release,
                                            std::memory_order_relaxed));
  p.proxy_seq.fetch_add(1);
  futex_wake(&p.proxy_seq);
  while (q.done.load(std::memory_order_acquire) == 0) futex_wait(&q.done, 0);
  unblock(l, old);
}

}  // namespace lwpd::client
