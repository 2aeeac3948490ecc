// NetBSD 10 constants the emulated kernel speaks: errno numbers, LWP states and
// flags, creation flags, lwpctl layout, priorities, scheduling classes, signal
// numbers. Values follow ../shared/netbsd-lwp-semantics.md §1 and §6; the
// kernel never uses host (Linux) numbers, the transports translate at the edge.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lwpd::netbsd {

using lwpid_t = int32_t;
using pid_t = int32_t;

// ---- errno (sys/errno.h) ------------------------------------------------------
enum class Errno : int32_t {
  kOk = 0,
  kEPERM = 1,
  kESRCH = 3,
  kEINTR = 4,
  kECHILD = 10,
  kEDEADLK = 11,
  kENOMEM = 12,
  kEFAULT = 14,
  kEBUSY = 16,
  kENODEV = 19,
  kEINVAL = 22,
  kEAGAIN = 35,
  kEALREADY = 37,
  kETIMEDOUT = 60,
  kENAMETOOLONG = 63,
  // Kernel-internal: the syscall is restarted transparently by the user side.
  kERESTART = -3,
  // Kernel-internal (lwpd): a sleeping wait(2) was notified; the user side
  // reissues the call at once, without waiting for a signal (unlike ERESTART).
  kEREISSUE = -100,
};

const char* errno_name(Errno e);
// The host (Linux) errno value for a NetBSD error; ERESTART maps to EINTR.
int errno_to_host(Errno e);

// ---- LWP states (l_stat) -----------------------------------------------------------
enum class LwpStat : uint8_t {
  kIdl = 1,
  kRun = 2,
  kSleep = 3,
  kStop = 4,
  kZomb = 5,
  kOnProc = 7,
  kSuspended = 8,
};
const char* lwp_stat_name(LwpStat s);

// ---- Process states (p_stat) -------------------------------------------------------
enum class ProcStat : uint8_t { kIdl = 1, kActive = 2, kDying = 3, kStop = 4, kZomb = 5 };
const char* proc_stat_name(ProcStat s);

// ---- Per-LWP flags (l_flag) that the emulation keeps ---------------------------------
inline constexpr uint32_t LW_DBGSUSPEND = 0x00010000;
inline constexpr uint32_t LW_WSUSPEND = 0x00020000;
inline constexpr uint32_t LW_WCORE = 0x00080000;
inline constexpr uint32_t LW_WEXIT = 0x00100000;
inline constexpr uint32_t LW_PENDSIG = 0x01000000;
inline constexpr uint32_t LW_CANCELLED = 0x02000000;
inline constexpr uint32_t LW_WREBOOT = 0x08000000;
inline constexpr uint32_t LW_UNPARKED = 0x10000000;

// ---- _lwp_create flags -----------------------------------------------------------
inline constexpr uint64_t LWP_DETACHED = 0x00000040;
inline constexpr uint64_t LWP_SUSPENDED = 0x00000080;

// ---- ucontext flags and amd64 mcontext validation --------------------------------
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

// ---- lwpctl (sys/lwpctl.h) ---------------------------------------------------------
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

// ---- limits ------------------------------------------------------------------
inline constexpr size_t LWP_UNPARK_MAX = 1024;
inline constexpr size_t MAXCOMLEN = 16;  // name buffer incl. NUL
inline constexpr int NB_NSIG = 64;
inline constexpr int MAXUPRC = 160;
// kern.maxproc's usual default (NPROC = 20 + 16 * MAXUSERS with MAXUSERS 64), and the
// process slots fork1() keeps for root out of it.
inline constexpr int NPROC = 1044;
inline constexpr int NPROC_ROOT_RESERVE = 5;
inline constexpr int MAXLWP = 4096;
inline constexpr int PID_MAX = 30000;

// ---- clocks and timers ------------------------------------------------------------
inline constexpr int NB_CLOCK_REALTIME = 0;
inline constexpr int NB_CLOCK_MONOTONIC = 3;
inline constexpr int NB_TIMER_ABSTIME = 0x1;

// ---- scheduling ----------------------------------------------------------------
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

// ---- signals (NetBSD numbering) -----------------------------------------------------
inline constexpr int NB_SIGINT = 2;
inline constexpr int NB_SIGTRAP = 5;
inline constexpr int NB_SIGKILL = 9;
inline constexpr int NB_SIGPIPE = 13;
inline constexpr int NB_SIGALRM = 14;
inline constexpr int NB_SIGTERM = 15;
inline constexpr int NB_SIGURG = 16;
inline constexpr int NB_SIGSTOP = 17;
inline constexpr int NB_SIGTSTP = 18;
inline constexpr int NB_SIGCONT = 19;
inline constexpr int NB_SIGCHLD = 20;
inline constexpr int NB_SIGXCPU = 24;
inline constexpr int NB_SIGUSR1 = 30;
inline constexpr int NB_SIGUSR2 = 31;

// si_code values
inline constexpr int NB_SI_USER = 0;
inline constexpr int NB_SI_LWP = -5;
inline constexpr int NB_TRAP_LWP = 5;

// ---- ptrace(2) (sys/ptrace.h), see ../shared/netbsd-lwp-semantics.md §5 ----------
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

// A NetBSD sigset_t reduced to the 64 signals the emulation knows: bit (sig-1).
using SigSet = uint64_t;
inline constexpr SigSet sigmask_of(int sig) { return SigSet{1} << (sig - 1); }

}  // namespace lwpd::netbsd
