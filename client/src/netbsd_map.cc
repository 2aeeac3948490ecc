// Host (Linux) <-> NetBSD numbering, from the shared table (common/netbsd_abi.h): its
// errno and signal rows carry the host's name of each value, expanded here and only here.
#include "netbsd_map.h"

#include <cerrno>

#include "common/netbsd_abi.h"

namespace lwpd::client {

namespace nb = ::lwpd::netbsd;

// <lwpd/lwp.h> stands alone (it is installed), so it spells NetBSD's numbers out itself, as
// macros named like the table's constants: the table's values are taken here, before the
// header is included, and checked against its macros after.
#define LWPD_PUBLIC_ABI(X)                                                                  \
  X(LWP_DETACHED) X(LWP_SUSPENDED) X(LWPCTL_CPU_NONE) X(LWPCTL_CPU_EXITED)                  \
  X(LWPCTL_FEATURE_CURCPU) X(LWPCTL_FEATURE_PCTR) X(PTRACE_FORK) X(PTRACE_VFORK)            \
  X(PTRACE_VFORK_DONE) X(PTRACE_LWP_CREATE) X(PTRACE_LWP_EXIT) X(PTRACE_POSIX_SPAWN)        \
  X(PL_EVENT_NONE) X(PL_EVENT_SIGNAL) X(PL_EVENT_SUSPENDED) X(PT_TRACE_ME) X(PT_CONTINUE)   \
  X(PT_KILL) X(PT_ATTACH) X(PT_DETACH) X(PT_LWPINFO) X(PT_SET_EVENT_MASK)                   \
  X(PT_GET_EVENT_MASK) X(PT_GET_PROCESS_STATE) X(PT_GET_SIGINFO) X(PT_RESUME) X(PT_SUSPEND) \
  X(PT_STOP) X(PT_LWPSTATUS) X(PT_LWPNEXT)
namespace table {
#define LWPD_TAKE(name) constexpr long long k_##name = nb::name;
LWPD_PUBLIC_ABI(LWPD_TAKE)
#undef LWPD_TAKE
}  // namespace table

}  // namespace lwpd::client

#include "lwpd/lwp.h"

namespace lwpd::client {

#define LWPD_CHECK(name) static_assert(name == table::k_##name, #name);
LWPD_PUBLIC_ABI(LWPD_CHECK)
#undef LWPD_CHECK
#undef LWPD_PUBLIC_ABI
// Names that differ (the header's are libc's or lwpd's own).
static_assert(LWPD_PT_CONTINUE == PT_CONTINUE && LWPD_PT_LWPNEXT == PT_LWPNEXT);
static_assert(_UC_SIGMASK == nb::UC_SIGMASK && _UC_STACK == nb::UC_STACK &&
              _UC_CPU == nb::UC_CPU && _UC_TLSBASE == nb::UC_TLSBASE);
static_assert(sizeof(struct lwpctl) == sizeof(nb::lwpctl));
static_assert(SI_LWP == nb::NB_SI_LWP && TRAP_LWP == nb::NB_TRAP_LWP);

int host_errno(int nb_errno) {
  switch (nb_errno) {
#define LWPD_HOST_ERRNO(name, num) \
  case num:                        \
    return name;
    LWPD_NETBSD_ERRNOS(LWPD_HOST_ERRNO)
#undef LWPD_HOST_ERRNO
    default:
      return EIO;
  }
}

namespace {

// NetBSD signals 1..32 as host numbers (0 = none on Linux), from the table.
constexpr int kNbToHost[nb::NB_SIGRTMIN] = {
    0,
#define LWPD_HOST_SIGNAL(name, num, host) host,
    LWPD_NETBSD_SIGNALS(LWPD_HOST_SIGNAL)
#undef LWPD_HOST_SIGNAL
};
// The table's rows are 1..32 in order: the array index is the NetBSD number.
#define LWPD_SIGNAL_ROW(name, num, host) +1
static_assert(0 LWPD_NETBSD_SIGNALS(LWPD_SIGNAL_ROW) == nb::NB_SIGRTMIN - 1);
#undef LWPD_SIGNAL_ROW
static_assert(nb::NB_SIGPWR == nb::NB_SIGRTMIN - 1 && nb::NB_SIGHUP == 1);

}  // namespace

int host_signo(int nb_signo) {
  if (nb_signo <= 0 || nb_signo > nb::NB_SIGRTMAX) return 0;
  if (nb_signo < nb::NB_SIGRTMIN) return kNbToHost[nb_signo];
  int h = SIGRTMIN + (nb_signo - nb::NB_SIGRTMIN);
  return h <= SIGRTMAX ? h : 0;
}

int nb_signo(int host) {
  if (host <= 0 || host >= _NSIG) return 0;
  if (host >= SIGRTMIN) {
    int nb = nb::NB_SIGRTMIN + (host - SIGRTMIN);
    return nb <= nb::NB_SIGRTMAX ? nb : 0;
  }
  for (int nb = 1; nb < nb::NB_SIGRTMIN; nb++)
    if (kNbToHost[nb] == host) return nb;
  return 0;
}

uint64_t nb_sigset(const sigset_t& host) {
  uint64_t out = 0;
  for (int h = 1; h < _NSIG; h++) {
    if (sigismember(&host, h) != 1) continue;
    if (int nb = nb_signo(h)) out |= nb::sigmask_of(nb);
  }
  return out;
}

void host_sigset(uint64_t nb, sigset_t* out) {
  sigemptyset(out);
  for (int s = 1; s <= nb::NB_SIGRTMAX; s++) {
    if (!(nb & nb::sigmask_of(s))) continue;
    if (int h = host_signo(s)) sigaddset(out, h);
  }
}

int nb_clock(clockid_t host) {
  switch (host) {
    case CLOCK_REALTIME:
      return nb::NB_CLOCK_REALTIME;
    case CLOCK_MONOTONIC:
      return nb::NB_CLOCK_MONOTONIC;
    default:
      return -1;
  }
}

}  // namespace lwpd::client
