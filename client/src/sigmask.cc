// Signal-mask interposers: the kick signal stays deliverable whatever the program blocks.
//
// ASYNC-SIGNAL-SAFE FILE. Everything here may run inside a signal handler or inside a
// sanitizer's interceptor: no allocation, no locks, no instrumented code (LWPD_NO_SANITIZE),
// only atomics, initial-exec TLS and the next definition of each function (dlsym is called
// once per function, on its first use, from whichever thread gets there first).
//
// Why. The daemon takes a vCPU back from an LWP that does not answer its kick in time and
// kills its process (--kick-timeout-ms). A program that blocks every signal in a thread --
// common in threaded servers, which route signals to one sigwait() thread -- would block
// the kick signal too and be killed for it. So the shim interposes the calls that set a
// thread's mask or wait for signals:
//   pthread_sigmask, sigprocmask   SIG_BLOCK / SIG_UNBLOCK leave the kick signal alone;
//                                  SIG_SETMASK keeps its current state (blocked only in a
//                                  handler, where the shim blocks it itself: sigaction()).
//   sigsuspend                     the same for the temporary mask.
//   sigwait, sigwaitinfo,          never consume the kick signal: it is taken out of the set.
//   sigtimedwait
// What a program reads back is what it asked for: the old mask shows the kick signal
// blocked if the program last blocked it (its view, per thread), or if it is really
// blocked (in a handler). Not covered (the daemon's bound catches them): raw
// rt_sigprocmask system calls, ppoll/pselect/epoll_pwait masks, swapcontext/setcontext
// with a context whose mask blocks it, signalfd reads. A kick that interrupts
// sigwaitinfo/sigtimedwait/sigsuspend makes them return EINTR, as any handler does.

#include "sigmask.h"

#include <dlfcn.h>
#include <errno.h>
#include <time.h>

#include "lwpd/lwp.h"

#define LWPD_NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined")))

namespace lwpd::client {
namespace {

// Nesting depth of the shim's own calls on this thread: pass them through.
__thread int t_shim_call __attribute__((tls_model("initial-exec"))) = 0;
// The program asked for the kick signal blocked on this thread (its view; never real).
__thread bool t_kick_view __attribute__((tls_model("initial-exec"))) = false;

LWPD_NO_SANITIZE int kick_signo() { return SIGRTMIN + 3; }

// ThreadSanitizer runs a program's signal handlers itself, at its own safe points: it blocks
// every signal and later restores the old mask with SIG_SETMASK through its
// REAL(pthread_sigmask) -- which is this interposer. The shim recognises "in a handler" by
// the kick signal being blocked, and the restore must really restore, so under TSan every
// SIG_SETMASK passes through unchanged (a program that blocks the kick signal that way there
// is caught by the daemon's kick timeout). Known before main(): no dlsym in a handler.
bool g_under_tsan = false;
__attribute__((constructor)) void detect_tsan() {
  g_under_tsan = dlsym(RTLD_DEFAULT, "__tsan_init") != nullptr;
}

// The next definition of `name` (libc's, or a sanitizer's interceptor), looked up once.
template <typename Fn>
LWPD_NO_SANITIZE Fn next_fn(Fn* cache, const char* name) {
  Fn fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
  if (fn == nullptr) {
    fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

using MaskFn = int (*)(int, const sigset_t*, sigset_t*);
using SuspendFn = int (*)(const sigset_t*);
using WaitFn = int (*)(const sigset_t*, int*);
using WaitInfoFn = int (*)(const sigset_t*, siginfo_t*);
using TimedWaitFn = int (*)(const sigset_t*, siginfo_t*, const struct timespec*);
MaskFn g_pthread_sigmask = nullptr;
MaskFn g_sigprocmask = nullptr;
SuspendFn g_sigsuspend = nullptr;
WaitFn g_sigwait = nullptr;
WaitInfoFn g_sigwaitinfo = nullptr;
TimedWaitFn g_sigtimedwait = nullptr;

// Is the kick signal blocked on this thread right now (by the shim: in a handler)?
LWPD_NO_SANITIZE bool kick_blocked_now(MaskFn next) {
  sigset_t cur;
  sigemptyset(&cur);
  next(SIG_BLOCK, nullptr, &cur);
  return sigismember(&cur, kick_signo()) == 1;
}

// `set` with the kick signal as it is now (blocked in a handler, else not).
LWPD_NO_SANITIZE sigset_t keep_kick(const sigset_t& set, MaskFn next) {
  sigset_t mine = set;
  if (kick_blocked_now(next)) {
    sigaddset(&mine, kick_signo());
  } else {
    sigdelset(&mine, kick_signo());
  }
  return mine;
}

// One mask change by the program. Returns what `next` returns (an errno value for
// pthread_sigmask, -1/errno for sigprocmask); the failure leaves the view alone.
LWPD_NO_SANITIZE int change_mask(int how, const sigset_t* set, sigset_t* old, MaskFn next,
                                 bool returns_errno) {
  if (next == nullptr) {
    if (returns_errno) return ENOSYS;
    errno = ENOSYS;
    return -1;
  }
  if (t_shim_call > 0) return next(how, set, old);
  const int kick = kick_signo();
  const bool view_before = t_kick_view;
  int rc;
  bool has_kick = false;
  if (set == nullptr) {
    rc = next(how, set, old);
  } else {
    has_kick = sigismember(set, kick) == 1;
    sigset_t mine;
    switch (how) {
      case SIG_BLOCK:
      case SIG_UNBLOCK:
        mine = *set;
        sigdelset(&mine, kick);
        break;
      case SIG_SETMASK:
        if (g_under_tsan) return next(how, set, old);
        mine = keep_kick(*set, next);
        break;
      default:
        return next(how, set, old);  // EINVAL, as the program would get it
    }
    rc = next(how, &mine, old);
  }
  if (rc != 0) return rc;
  if (old != nullptr && view_before) sigaddset(old, kick);
  if (set != nullptr) {
    if (how == SIG_SETMASK) {
      t_kick_view = has_kick;
    } else if (has_kick) {
      t_kick_view = how == SIG_BLOCK;
    }
  }
  return rc;
}

}  // namespace

LWPD_NO_SANITIZE int shim_sigmask(int how, const sigset_t* set, sigset_t* old) {
  t_shim_call++;
  const int rc = pthread_sigmask(how, set, old);  // through any interceptor, as before
  t_shim_call--;
  return rc;
}

LWPD_NO_SANITIZE bool kick_view_save() { return t_kick_view; }
LWPD_NO_SANITIZE void kick_view_restore(bool blocked) { t_kick_view = blocked; }

}  // namespace lwpd::client

using lwpd::client::change_mask;
using lwpd::client::keep_kick;
using lwpd::client::kick_signo;
using lwpd::client::next_fn;

extern "C" {

LWPD_API LWPD_NO_SANITIZE int pthread_sigmask(int how, const sigset_t* set,
                                              sigset_t* old) noexcept {
  using namespace lwpd::client;
  return change_mask(how, set, old, next_fn(&g_pthread_sigmask, "pthread_sigmask"), true);
}

LWPD_API LWPD_NO_SANITIZE int sigprocmask(int how, const sigset_t* set, sigset_t* old) noexcept {
  using namespace lwpd::client;
  return change_mask(how, set, old, next_fn(&g_sigprocmask, "sigprocmask"), false);
}

LWPD_API LWPD_NO_SANITIZE int sigsuspend(const sigset_t* mask) {
  using namespace lwpd::client;
  SuspendFn next = next_fn(&g_sigsuspend, "sigsuspend");
  MaskFn mask_next = next_fn(&g_pthread_sigmask, "pthread_sigmask");
  if (next == nullptr || mask_next == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  const sigset_t mine = keep_kick(*mask, mask_next);
  return next(&mine);
}

LWPD_API LWPD_NO_SANITIZE int sigwait(const sigset_t* set, int* sig) {
  using namespace lwpd::client;
  WaitFn next = next_fn(&g_sigwait, "sigwait");
  if (next == nullptr) return ENOSYS;
  sigset_t mine = *set;
  sigdelset(&mine, kick_signo());
  return next(&mine, sig);
}

LWPD_API LWPD_NO_SANITIZE int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  using namespace lwpd::client;
  WaitInfoFn next = next_fn(&g_sigwaitinfo, "sigwaitinfo");
  if (next == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  sigset_t mine = *set;
  sigdelset(&mine, kick_signo());
  return next(&mine, info);
}

LWPD_API LWPD_NO_SANITIZE int sigtimedwait(const sigset_t* set, siginfo_t* info,
                                           const struct timespec* timeout) {
  using namespace lwpd::client;
  TimedWaitFn next = next_fn(&g_sigtimedwait, "sigtimedwait");
  if (next == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  sigset_t mine = *set;
  sigdelset(&mine, kick_signo());
  return next(&mine, info, timeout);
}

}  // extern "C"
