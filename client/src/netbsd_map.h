// Host (Linux) <-> NetBSD numbering for the values that cross the shim: errno,
// signal numbers, signal sets and clock ids. Pure functions, no state; NetBSD's numbers come
// from the shared table, common/netbsd_abi.h.
#pragma once

#include <csignal>
#include <cstdint>
#include <ctime>

namespace lwpd::client {

// NetBSD errno (lwpd.v1.Errno numbers) -> host errno. Unknown values map to EIO.
int host_errno(int nb_errno);

// NetBSD signal 1..63 -> host signal, 0 when the host has no such signal
// (SIGEMT, SIGINFO, real-time signals beyond the host's range).
int host_signo(int nb_signo);
// Host signal 1.._NSIG-1 -> NetBSD signal, 0 when NetBSD has no such signal
// (SIGSTKFLT).
int nb_signo(int host_signo);

// Signal sets: NetBSD bit (sig-1) <-> host sigset_t.
uint64_t nb_sigset(const sigset_t& host);
void host_sigset(uint64_t nb, sigset_t* out);

// Host clock id -> NetBSD clock id, -1 when NetBSD has none.
int nb_clock(clockid_t host);

}  // namespace lwpd::client
