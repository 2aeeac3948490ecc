// sigaction() and signal() interposition: the kick signal joins every handler's mask
// (shim_internal.h, "Calls from signal handlers"), and the program's handlers are installed
// behind user_signal_tramp (signal_safe.cc), which defers a signal that lands in the C
// runtime. Handlers installed with sigaction() or signal() -- glibc's signal() does not go
// through sigaction(), so it is interposed too. sigset(), sysv_signal() and raw
// rt_sigaction are not.
//
// The sanitizers' runtimes install their own handlers through sigaction() while they
// initialise, before any instrumented code may run: everything here is LWPD_NO_SANITIZE,
// uses __atomic builtins and calls nothing but the next sigaction().
#include <dlfcn.h>
#include <signal.h>

#include <cerrno>

#include "sanitizer.h"
#include "shim_internal.h"

using namespace lwpd::client;

namespace {

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

SigactionFn g_next_sigaction = nullptr;  // __atomic builtins: no instrumented guard

LWPD_NO_SANITIZE SigactionFn next_sigaction() {
  SigactionFn fn = __atomic_load_n(&g_next_sigaction, __ATOMIC_ACQUIRE);
  if (fn == nullptr) {
    fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
    __atomic_store_n(&g_next_sigaction, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

// The kick signal, known before lwpd_attach() sets g_kick_signal: handlers are
// often installed first.
LWPD_NO_SANITIZE int kick_signo() { return SIGRTMIN + 3; }

LWPD_NO_SANITIZE bool is_handler(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) != 0 || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
}

}  // namespace

extern "C" {

LWPD_API LWPD_NO_SANITIZE int sigaction(int sig, const struct sigaction* act,
                                        struct sigaction* oact) noexcept {
  SigactionFn next = next_sigaction();
  if (next == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  const int kick = kick_signo();
  if (sig <= 0 || sig >= _NSIG || sig == kick) return next(sig, act, oact);
  void* const prev_h = __atomic_load_n(&g_user_handler[sig], __ATOMIC_ACQUIRE);
  const bool prev_si = __atomic_load_n(&g_user_siginfo[sig], __ATOMIC_RELAXED);
  struct sigaction mine;
  bool tramp = false;
  if (act != nullptr && is_handler(*act)) {
    mine = *act;
    sigaddset(&mine.sa_mask, kick);
    // SA_RESETHAND resets the disposition at delivery: a deferred signal would then get
    // the default action, so such a handler is installed as it is (only the mask changes).
    if (!(act->sa_flags & SA_RESETHAND)) {
      const bool si = (act->sa_flags & SA_SIGINFO) != 0;
      __atomic_store_n(&g_user_siginfo[sig], si, __ATOMIC_RELAXED);
      void* h = si ? reinterpret_cast<void*>(act->sa_sigaction)
                   : reinterpret_cast<void*>(act->sa_handler);
      __atomic_store_n(&g_user_handler[sig], h, __ATOMIC_RELEASE);
      mine.sa_sigaction = user_signal_tramp;
      mine.sa_flags |= SA_SIGINFO;
      tramp = true;
    }
    act = &mine;
  }
  const int rc = next(sig, act, oact);
  if (rc != 0) return rc;
  if (act != nullptr) __atomic_fetch_add(&g_sigaction_gen, 1, __ATOMIC_RELEASE);
  if (act != nullptr && !tramp) __atomic_store_n(&g_user_handler[sig], nullptr, __ATOMIC_RELEASE);
  if (oact != nullptr) {  // what the program installed, not the trampoline
    sigdelset(&oact->sa_mask, kick);
    if ((oact->sa_flags & SA_SIGINFO) && oact->sa_sigaction == user_signal_tramp) {
      if (prev_si) {
        oact->sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(prev_h);
      } else {
        oact->sa_handler = reinterpret_cast<sighandler_t>(prev_h);
        oact->sa_flags &= ~SA_SIGINFO;
      }
    }
  }
  return rc;
}

// BSD semantics, as glibc's signal(): the signal is blocked in its handler and
// interrupted calls restart.
LWPD_API LWPD_NO_SANITIZE sighandler_t signal(int sig, sighandler_t handler) noexcept {
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  if (handler == SIG_ERR || sigaddset(&sa.sa_mask, sig) != 0) {
    errno = EINVAL;
    return SIG_ERR;
  }
  sa.sa_flags = SA_RESTART;
  if (sigaction(sig, &sa, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

}  // extern "C"
