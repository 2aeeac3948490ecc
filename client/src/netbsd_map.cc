#include "netbsd_map.h"

#include <cerrno>

namespace lwpd::client {

int host_errno(int nb) {
  switch (nb) {
    case 1:
      return EPERM;
    case 3:
      return ESRCH;
    case 4:
      return EINTR;
    case 10:
      return ECHILD;
    case 11:
      return EDEADLK;
    case 12:
      return ENOMEM;
    case 14:
      return EFAULT;
    case 16:
      return EBUSY;
    case 19:
      return ENODEV;
    case 22:
      return EINVAL;
    case 35:
      return EAGAIN;
    case 37:
      return EALREADY;
    case 60:
      return ETIMEDOUT;
    case 63:
      return ENAMETOOLONG;
    default:
      return EIO;
  }
}

namespace {

// NetBSD signals 1..32 by name, as host numbers (0 = none on Linux).
constexpr int kNbToHost[33] = {
    0,
    SIGHUP,     // 1
    SIGINT,     // 2
    SIGQUIT,    // 3
    SIGILL,     // 4
    SIGTRAP,    // 5
    SIGABRT,    // 6
    0,          // 7  SIGEMT
    SIGFPE,     // 8
    SIGKILL,    // 9
    SIGBUS,     // 10
    SIGSEGV,    // 11
    SIGSYS,     // 12
    SIGPIPE,    // 13
    SIGALRM,    // 14
    SIGTERM,    // 15
    SIGURG,     // 16
    SIGSTOP,    // 17
    SIGTSTP,    // 18
    SIGCONT,    // 19
    SIGCHLD,    // 20
    SIGTTIN,    // 21
    SIGTTOU,    // 22
    SIGIO,      // 23
    SIGXCPU,    // 24
    SIGXFSZ,    // 25
    SIGVTALRM,  // 26
    SIGPROF,    // 27
    SIGWINCH,   // 28
    0,          // 29 SIGINFO
    SIGUSR1,    // 30
    SIGUSR2,    // 31
    SIGPWR,     // 32
};
constexpr int kNbSigRtMin = 33;
constexpr int kNbSigMax = 63;  // NetBSD NSIG is 64

}  // namespace

int host_signo(int nb) {
  if (nb <= 0 || nb > kNbSigMax) return 0;
  if (nb < kNbSigRtMin) return kNbToHost[nb];
  int h = SIGRTMIN + (nb - kNbSigRtMin);
  return h <= SIGRTMAX ? h : 0;
}

int nb_signo(int host) {
  if (host <= 0 || host >= _NSIG) return 0;
  if (host >= SIGRTMIN) {
    int nb = kNbSigRtMin + (host - SIGRTMIN);
    return nb <= kNbSigMax ? nb : 0;
  }
  for (int nb = 1; nb < kNbSigRtMin; nb++)
    if (kNbToHost[nb] == host) return nb;
  return 0;
}

uint64_t nb_sigset(const sigset_t& host) {
  uint64_t out = 0;
  for (int h = 1; h < _NSIG; h++) {
    if (sigismember(&host, h) != 1) continue;
    if (int nb = nb_signo(h)) out |= uint64_t{1} << (nb - 1);
  }
  return out;
}

void host_sigset(uint64_t nb, sigset_t* out) {
  sigemptyset(out);
  for (int s = 1; s <= kNbSigMax; s++) {
    if (!(nb & (uint64_t{1} << (s - 1)))) continue;
    if (int h = host_signo(s)) sigaddset(out, h);
  }
}

int nb_clock(clockid_t host) {
  switch (host) {
    case CLOCK_REALTIME:
      return 0;
    case CLOCK_MONOTONIC:
      return 3;
    default:
      return -1;
  }
}

}  // namespace lwpd::client
