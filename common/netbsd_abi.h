// The NetBSD 10 ABI that lwpd speaks, in one table: errno numbers, LWP and process states,
// signal numbers, syscall numbers, LWP flags, creation and ucontext flags, the lwpctl
// layout, priorities, scheduling classes, ptrace requests and limits. Values follow
// ../shared/netbsd-lwp-semantics.md §1 and §6.
//
// Every part of lwpd reads NetBSD's numbers from here: the emulated kernel (emul/netbsd.h
// includes this file), the daemon's wire mapping (server/), the shim (client/src/) and
// lwpstat (client/lwpstat/). It lives in common/ rather than in emul/ because the shim and
// lwpstat must not depend on the emulated kernel, and rather than in proto/ because emul/
// must build without protobuf (tests/link checks that); it needs only <cstdint>, so any
// target can include it without linking anything.
//
// Mirrors that must exist are checked at compile time, never by hand:
//   * the wire contract's enums (lwpd.v1.Errno, LwpState, ProcState) against the tables
//     below: proto/netbsd_abi_check.cc, compiled into lwpd::proto, static_asserts every
//     row (its last column names the proto enumerator);
//   * emul/syscalls.h's syscall table against LWPD_NETBSD_SYSCALLS: emul/netbsd.cc;
//   * the shim's public header <lwpd/lwp.h> (which must stand alone) against these
//     constants: client/src/netbsd_map.cc.
// The host (Linux) side of a mapping is a column of the table where it exists (errno and
// signal names), expanded only by the shim's netbsd_map.cc; the kernel never uses host
// numbers, the transports translate at the edge.
#pragma once

// The shim's public header defines NetBSD's names (LWP_DETACHED, PT_CONTINUE...) as macros.
#if defined(LWPD_LWP_H)
#error "include common/netbsd_abi.h before <lwpd/lwp.h>: its macros use the table's names"
#endif

#include <cstddef>
#include <cstdint>

namespace lwpd::netbsd {

using lwpid_t = int32_t;
using pid_t = int32_t;

// ---- errno (sys/errno.h) ------------------------------------------------------------------
// X(name, NetBSD number). `name` is also the host's <errno.h> name of the same error, and
// the wire's ERRNO_<name>.
#define LWPD_NETBSD_ERRNOS(X) \
  X(EPERM, 1)                 \
  X(ESRCH, 3)                 \
  X(EINTR, 4)                 \
  X(ECHILD, 10)               \
  X(EDEADLK, 11)              \
  X(ENOMEM, 12)               \
  X(EFAULT, 14)               \
  X(EBUSY, 16)                \
  X(ENODEV, 19)               \
  X(EINVAL, 22)               \
  X(EAGAIN, 35)               \
  X(EALREADY, 37)             \
  X(ETIMEDOUT, 60)            \
  X(ENAMETOOLONG, 63)

enum class Errno : int32_t {
  kOk = 0,
#define LWPD_ERRNO_ENUM(name, num) k##name = num,
  LWPD_NETBSD_ERRNOS(LWPD_ERRNO_ENUM)
#undef LWPD_ERRNO_ENUM
  // Kernel-internal: the syscall is restarted transparently by the user side.
  kERESTART = -3,
  // Kernel-internal (lwpd): a sleeping wait(2) was notified; the user side
  // reissues the call at once, without waiting for a signal (unlike ERESTART).
  kEREISSUE = -100,
};

constexpr const char* errno_name(Errno e) {
  switch (e) {
    case Errno::kOk:
      return "0";
#define LWPD_ERRNO_NAME(name, num) \
  case Errno::k##name:             \
    return #name;
      LWPD_NETBSD_ERRNOS(LWPD_ERRNO_NAME)
#undef LWPD_ERRNO_NAME
    case Errno::kERESTART:
      return "ERESTART";
    case Errno::kEREISSUE:
      return "EREISSUE";
  }
  return "E?";
}

// ---- LWP states (l_stat) and process states (p_stat) --------------------------------------
// X(enumerator, number, name shown by tools, wire enumerator of lwpd.v1.LwpState/ProcState)
#define LWPD_NETBSD_LWP_STATES(X)          \
  X(Idl, 1, "IDL", LSIDL)                  \
  X(Run, 2, "RUN", LSRUN)                  \
  X(Sleep, 3, "SLEEP", LSSLEEP)            \
  X(Stop, 4, "STOP", LSSTOP)               \
  X(Zomb, 5, "ZOMB", LSZOMB)               \
  X(OnProc, 7, "ONPROC", LSONPROC)         \
  X(Suspended, 8, "SUSPENDED", LSSUSPENDED)
#define LWPD_NETBSD_PROC_STATES(X) \
  X(Idl, 1, "IDL", SIDL)           \
  X(Active, 2, "ACTIVE", SACTIVE)  \
  X(Dying, 3, "DYING", SDYING)     \
  X(Stop, 4, "STOP", SSTOP)        \
  X(Zomb, 5, "ZOMB", SZOMB)

#define LWPD_STATE_ENUM(name, num, str, wire) k##name = num,
#define LWPD_STATE_NAME(name, num, str, wire) \
  case num:                                   \
    return str;
enum class LwpStat : uint8_t { LWPD_NETBSD_LWP_STATES(LWPD_STATE_ENUM) };
enum class ProcStat : uint8_t { LWPD_NETBSD_PROC_STATES(LWPD_STATE_ENUM) };
constexpr const char* lwp_stat_name(LwpStat s) {
  switch (static_cast<int>(s)) { LWPD_NETBSD_LWP_STATES(LWPD_STATE_NAME) }
  return "?";
}
constexpr const char* proc_stat_name(ProcStat s) {
  switch (static_cast<int>(s)) { LWPD_NETBSD_PROC_STATES(LWPD_STATE_NAME) }
  return "?";
}
#undef LWPD_STATE_ENUM
#undef LWPD_STATE_NAME

// ---- syscall numbers (sys/syscall.h) -------------------------------------------------------
// X(enumerator, number, name users know it by). emul/syscalls.h's LWPD_SYSCALLS adds each
// call's argument struct and handler; emul/netbsd.cc checks that the two agree.
#define LWPD_NETBSD_SYSCALLS(X)                    \
  X(ProcExit, 1, "exit")                           \
  X(Ptrace, 26, "ptrace")                          \
  X(LwpCreate, 309, "_lwp_create")                 \
  X(LwpExit, 310, "_lwp_exit")                     \
  X(LwpSelf, 311, "_lwp_self")                     \
  X(LwpWait, 312, "_lwp_wait")                     \
  X(LwpSuspend, 313, "_lwp_suspend")               \
  X(LwpContinue, 314, "_lwp_continue")             \
  X(LwpWakeup, 315, "_lwp_wakeup")                 \
  X(LwpGetprivate, 316, "_lwp_getprivate")         \
  X(LwpSetprivate, 317, "_lwp_setprivate")         \
  X(LwpKill, 318, "_lwp_kill")                     \
  X(LwpDetach, 319, "_lwp_detach")                 \
  X(LwpUnpark, 321, "_lwp_unpark")                 \
  X(LwpUnparkAll, 322, "_lwp_unpark_all")          \
  X(LwpSetname, 323, "_lwp_setname")               \
  X(LwpGetname, 324, "_lwp_getname")               \
  X(LwpCtl, 325, "_lwp_ctl")                       \
  X(SchedSetparam, 346, "_sched_setparam")         \
  X(SchedGetparam, 347, "_sched_getparam")         \
  X(SchedSetaffinity, 348, "_sched_setaffinity")   \
  X(SchedGetaffinity, 349, "_sched_getaffinity")   \
  X(SchedYield, 350, "sched_yield")                \
  X(Wait, 449, "__wait450")                        \
  X(LwpPark, 478, "___lwp_park60")

enum class Sysno : int32_t {
#define LWPD_SYSNO_ENUM(name, num, str) k##name = num,
  LWPD_NETBSD_SYSCALLS(LWPD_SYSNO_ENUM)
#undef LWPD_SYSNO_ENUM
};
constexpr int sysno(Sysno s) { return static_cast<int>(s); }
constexpr const char* sysno_name(Sysno s) {
  switch (s) {
#define LWPD_SYSNO_NAME(name, num, str) \
  case Sysno::k##name:                  \
    return str;
    LWPD_NETBSD_SYSCALLS(LWPD_SYSNO_NAME)
#undef LWPD_SYSNO_NAME
  }
  return "?";
}

// ---- signals (sys/signal.h) ----------------------------------------------------------------
// X(name, NetBSD number, host signal or 0 where Linux has none). NB_SIG<name> below; the
// host column is expanded only by the shim (client/src/netbsd_map.cc).
#define LWPD_NETBSD_SIGNALS(X)   \
  X(HUP, 1, SIGHUP)              \
  X(INT, 2, SIGINT)              \
  X(QUIT, 3, SIGQUIT)            \
  X(ILL, 4, SIGILL)              \
  X(TRAP, 5, SIGTRAP)            \
  X(ABRT, 6, SIGABRT)            \
  X(EMT, 7, 0)                   \
  X(FPE, 8, SIGFPE)              \
  X(KILL, 9, SIGKILL)            \
  X(BUS, 10, SIGBUS)             \
  X(SEGV, 11, SIGSEGV)           \
  X(SYS, 12, SIGSYS)             \
  X(PIPE, 13, SIGPIPE)           \
  X(ALRM, 14, SIGALRM)           \
  X(TERM, 15, SIGTERM)           \
  X(URG, 16, SIGURG)             \
  X(STOP, 17, SIGSTOP)           \
  X(TSTP, 18, SIGTSTP)           \
  X(CONT, 19, SIGCONT)           \
  X(CHLD, 20, SIGCHLD)           \
  X(TTIN, 21, SIGTTIN)           \
  X(TTOU, 22, SIGTTOU)           \
  X(IO, 23, SIGIO)               \
  X(XCPU, 24, SIGXCPU)           \
  X(XFSZ, 25, SIGXFSZ)           \
  X(VTALRM, 26, SIGVTALRM)       \
  X(PROF, 27, SIGPROF)           \
  X(WINCH, 28, SIGWINCH)         \
  X(INFO, 29, 0)                 \
  X(USR1, 30, SIGUSR1)           \
  X(USR2, 31, SIGUSR2)           \
  X(PWR, 32, SIGPWR)

#define LWPD_SIGNAL_CONST(name, num, host) inline constexpr int NB_SIG##name = num;
LWPD_NETBSD_SIGNALS(LWPD_SIGNAL_CONST)
#undef LWPD_SIGNAL_CONST
// "SIGHUP" for 1, ...; nullptr for 0 and the real-time signals (they have no names).
constexpr const char* signal_name(int nb_signo) {
  switch (nb_signo) {
#define LWPD_SIGNAL_NAME(name, num, host) \
  case num:                               \
    return "SIG" #name;
    LWPD_NETBSD_SIGNALS(LWPD_SIGNAL_NAME)
#undef LWPD_SIGNAL_NAME
  }
  return nullptr;
}
inline constexpr int NB_SIGRTMIN = 33;
inline constexpr int NB_SIGRTMAX = 63;
inline constexpr int NB_NSIG = 64;

// si_code values
inline constexpr int NB_SI_USER = 0;
inline constexpr int NB_SI_LWP = -5;
inline constexpr int NB_TRAP_LWP = 5;

// A NetBSD sigset_t reduced to the 64 signals the emulation knows: bit (sig-1).
using SigSet = uint64_t;
inline constexpr SigSet sigmask_of(int sig) { return SigSet{1} << (sig - 1); }

// ---- Per-LWP flags (l_flag) that the emulation keeps ---------------------------------------
inline constexpr uint32_t LW_DBGSUSPEND = 0x00010000;
inline constexpr uint32_t LW_WSUSPEND = 0x00020000;
inline constexpr uint32_t LW_WCORE = 0x00080000;
inline constexpr uint32_t LW_WEXIT = 0x00100000;
inline constexpr uint32_t LW_PENDSIG = 0x01000000;
inline constexpr uint32_t LW_CANCELLED = 0x02000000;
inline constexpr uint32_t LW_WREBOOT = 0x08000000;
inline constexpr uint32_t LW_UNPARKED = 0x10000000;

// ---- _lwp_create flags ---------------------------------------------------------------------
inline constexpr uint64_t LWP_DETACHED = 0x00000040;
inline constexpr uint64_t LWP_SUSPENDED = 0x00000080;

// ---- ucontext flags and amd64 mcontext validation ------------------------------------------
inline constexpr uint32_t UC_SIGMASK = 0x01;
inline constexpr uint32_t UC_STACK = 0x02;
inline constexpr uint32_t UC_CPU = 0x04;
inline constexpr uint32_t UC_FPU = 0x08;
inline constexpr uint32_t UC_TLSBASE = 0x00080000;
// amd64 RFLAGS bits a user context may not change (PSL_USERSTATIC).
inline constexpr uint64_t PSL_MBO = 0x00000002;
inline constexpr uint64_t PSL_MBZ = 0xffc08028;
inline constexpr uint64_t PSL_USERSTATIC = PSL_MBO | PSL_MBZ | 0x100 /*T*/ | 0x3000 /*IOPL*/ |
                                           0x4000 /*NT*/ | 0x20000 /*VM*/ | 0x80000 /*VIF*/ |
                                           0x100000 /*VIP*/;
// The end of user address space. NetBSD/amd64's is 0x00007f7fffffc000, but
// the LWPs run on Linux, which maps shared libraries above that, so the
// emulation uses Linux's limit (README, compatibility notes).
inline constexpr uint64_t VM_MAXUSER_ADDRESS = 0x00007ffffffff000ULL;

// ---- lwpctl (sys/lwpctl.h) -----------------------------------------------------------------
struct lwpctl {
  int32_t lc_curcpu;
  int32_t lc_pctr;
};
static_assert(sizeof(lwpctl) == 8);
inline constexpr int32_t LWPCTL_CPU_NONE = -1;
inline constexpr int32_t LWPCTL_CPU_EXITED = -2;
inline constexpr int LWPCTL_FEATURE_CURCPU = 0x1;
inline constexpr int LWPCTL_FEATURE_PCTR = 0x2;
inline constexpr size_t LWPCTL_UAREA_SZ = 65536;
inline constexpr size_t LWPCTL_SLOTS = LWPCTL_UAREA_SZ / sizeof(lwpctl);

// ---- limits --------------------------------------------------------------------------------
inline constexpr size_t LWP_UNPARK_MAX = 1024;
inline constexpr size_t MAXCOMLEN = 16;  // name buffer incl. NUL
inline constexpr int MAXUPRC = 160;
// kern.maxproc's usual default (NPROC = 20 + 16 * MAXUSERS with MAXUSERS 64), and the
// process slots fork1() keeps for root out of it.
inline constexpr int NPROC = 1044;
inline constexpr int NPROC_ROOT_RESERVE = 5;
inline constexpr int MAXLWP = 4096;
inline constexpr int PID_MAX = 30000;

// ---- clocks and timers ---------------------------------------------------------------------
inline constexpr int NB_CLOCK_REALTIME = 0;
inline constexpr int NB_CLOCK_MONOTONIC = 3;
inline constexpr int NB_TIMER_ABSTIME = 0x1;

// ---- scheduling ----------------------------------------------------------------------------
inline constexpr int NB_SCHED_NONE = -1;
inline constexpr int NB_SCHED_OTHER = 0;
inline constexpr int NB_SCHED_FIFO = 1;
inline constexpr int NB_SCHED_RR = 2;
inline constexpr int PRI_NONE = -1;
inline constexpr int PRI_USER = 0;
inline constexpr int MAXPRI_USER = 63;
inline constexpr int PRI_KERNEL = 64;
inline constexpr int PRI_USER_RT = 128;
inline constexpr int MAXPRI_USER_RT = 191;
inline constexpr int PRI_COUNT = 224;
inline constexpr int SCHED_PRI_MIN = 0;
inline constexpr int SCHED_PRI_MAX = 63;

// ---- ptrace(2) (sys/ptrace.h), see ../shared/netbsd-lwp-semantics.md §5 --------------------
inline constexpr int PT_TRACE_ME = 0;
inline constexpr int PT_CONTINUE = 7;
inline constexpr int PT_KILL = 8;
inline constexpr int PT_ATTACH = 9;
inline constexpr int PT_DETACH = 10;
inline constexpr int PT_LWPINFO = 13;
inline constexpr int PT_SET_EVENT_MASK = 16;
inline constexpr int PT_GET_EVENT_MASK = 17;
inline constexpr int PT_GET_PROCESS_STATE = 18;
inline constexpr int PT_GET_SIGINFO = 20;
inline constexpr int PT_RESUME = 21;
inline constexpr int PT_SUSPEND = 22;
inline constexpr int PT_STOP = 23;
inline constexpr int PT_LWPSTATUS = 24;
inline constexpr int PT_LWPNEXT = 25;
inline constexpr int PTRACE_FORK = 0x01;
inline constexpr int PTRACE_VFORK = 0x02;
inline constexpr int PTRACE_VFORK_DONE = 0x04;
inline constexpr int PTRACE_LWP_CREATE = 0x08;
inline constexpr int PTRACE_LWP_EXIT = 0x10;
inline constexpr int PTRACE_POSIX_SPAWN = 0x20;
inline constexpr int PL_EVENT_NONE = 0;
inline constexpr int PL_EVENT_SIGNAL = 1;
inline constexpr int PL_EVENT_SUSPENDED = 2;
// LP64 sizes of the structures whose size the caller passes as `data`.
inline constexpr int PTRACE_EVENT_SIZE = 4;       // ptrace_event_t
inline constexpr int PTRACE_STATE_SIZE = 8;       // ptrace_state_t
inline constexpr int PTRACE_LWPINFO_SIZE = 8;     // struct ptrace_lwpinfo
inline constexpr int PTRACE_LWPSTATUS_SIZE = 64;  // struct ptrace_lwpstatus
inline constexpr int PTRACE_SIGINFO_SIZE = 136;   // ptrace_siginfo_t
inline constexpr int NB_WNOHANG = 0x1;

}  // namespace lwpd::netbsd
