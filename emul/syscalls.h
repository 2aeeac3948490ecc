// The syscall table: one entry per emulated call, with its NetBSD number, its
// argument struct and the name users know it by. The dispatcher, the wire
// mapping and the client wrappers are all driven from LWPD_SYSCALLS, so a call
// is added in one place.
//
// Argument structs carry values, never user pointers: the transport copies user
// memory in and out. Where NetBSD distinguishes a NULL pointer (or a faulting
// one) the struct says so explicitly (e.g. `lid_out_ok`, `ts`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "emul/netbsd.h"

namespace lwpd::emul {

using netbsd::Errno;
using netbsd::lwpid_t;
using netbsd::pid_t;
using netbsd::SigSet;

// vCPU set for the affinity calls: bit i = vCPU i (at most 64 vCPUs).
using CpuMask = uint64_t;
inline constexpr int kMaxCpus = 64;

struct Timespec {
  int64_t tv_sec = 0;
  int64_t tv_nsec = 0;
  bool operator==(const Timespec&) const = default;
};

// X(Name, number, "user-visible name", handler in sys_lwp.cc)
#define LWPD_SYSCALLS(X)                                                \
  X(ProcExit, 1, "exit", sys_proc_exit)                                 \
  X(Ptrace, 26, "ptrace", sys_ptrace)                                   \
  X(LwpCreate, 309, "_lwp_create", sys_lwp_create)                      \
  X(LwpExit, 310, "_lwp_exit", sys_lwp_exit)                            \
  X(LwpSelf, 311, "_lwp_self", sys_lwp_self)                            \
  X(LwpWait, 312, "_lwp_wait", sys_lwp_wait)                            \
  X(LwpSuspend, 313, "_lwp_suspend", sys_lwp_suspend)                   \
  X(LwpContinue, 314, "_lwp_continue", sys_lwp_continue)                \
  X(LwpWakeup, 315, "_lwp_wakeup", sys_lwp_wakeup)                      \
  X(LwpGetprivate, 316, "_lwp_getprivate", sys_lwp_getprivate)          \
  X(LwpSetprivate, 317, "_lwp_setprivate", sys_lwp_setprivate)          \
  X(LwpKill, 318, "_lwp_kill", sys_lwp_kill)                            \
  X(LwpDetach, 319, "_lwp_detach", sys_lwp_detach)                      \
  X(LwpUnpark, 321, "_lwp_unpark", sys_lwp_unpark)                      \
  X(LwpUnparkAll, 322, "_lwp_unpark_all", sys_lwp_unpark_all)           \
  X(LwpSetname, 323, "_lwp_setname", sys_lwp_setname)                   \
  X(LwpGetname, 324, "_lwp_getname", sys_lwp_getname)                   \
  X(LwpCtl, 325, "_lwp_ctl", sys_lwp_ctl)                               \
  X(SchedSetparam, 346, "_sched_setparam", sys_sched_setparam)          \
  X(SchedGetparam, 347, "_sched_getparam", sys_sched_getparam)          \
  X(SchedSetaffinity, 348, "_sched_setaffinity", sys_sched_setaffinity) \
  X(SchedGetaffinity, 349, "_sched_getaffinity", sys_sched_getaffinity) \
  X(SchedYield, 350, "sched_yield", sys_sched_yield)                    \
  X(LwpPark, 478, "___lwp_park60", sys_lwp_park)                        \
  X(Wait, 449, "__wait450", sys_wait)

// exit(2): end the whole process with `status` (other LWPs exit first).
struct ProcExitArgs {
  int status = 0;
};

// The parts of a ucontext the kernel validates and applies.
struct LwpCreateArgs {
  uint32_t uc_flags = netbsd::UC_CPU | netbsd::UC_SIGMASK | netbsd::UC_STACK;
  uint64_t pc = 0x400000;                     // _REG_RIP
  uint64_t rflags = netbsd::PSL_MBO | 0x200;  // _REG_RFLAGS (IF set)
  SigSet sigmask = 0;                         // used when uc_flags has UC_SIGMASK
  uint64_t tls_base = 0;                      // used when uc_flags has UC_TLSBASE
  uint64_t flags = 0;                         // LWP_DETACHED | LWP_SUSPENDED | ignored bits
  bool lid_out_ok = true;                     // false: copying out *new_lwp faults (EFAULT)
};
struct LwpExitArgs {};
struct LwpSelfArgs {};
struct LwpWaitArgs {
  lwpid_t wait_for = 0;
};
struct LwpSuspendArgs {
  lwpid_t target = 0;
};
struct LwpContinueArgs {
  lwpid_t target = 0;
};
struct LwpWakeupArgs {
  lwpid_t target = 0;
};
struct LwpGetprivateArgs {};
struct LwpSetprivateArgs {
  uint64_t ptr = 0;
};
struct LwpKillArgs {
  lwpid_t target = 0;
  int signo = 0;
};
struct LwpDetachArgs {
  lwpid_t target = 0;
};
struct LwpUnparkArgs {
  lwpid_t target = 0;
  uint64_t hint = 0;
};
struct LwpUnparkAllArgs {
  bool targets_null = false;  // targets == NULL: report LWP_UNPARK_MAX
  uint64_t ntargets = 0;      // as passed; may differ from targets.size()
  std::vector<lwpid_t> targets;
  uint64_t hint = 0;
};
struct LwpSetnameArgs {
  lwpid_t target = 0;
  std::string name;  // as the user passed it; longer than 15 chars is truncated
};
struct LwpGetnameArgs {
  lwpid_t target = 0;
  uint64_t len = 0;  // size of the user's buffer
};
struct LwpCtlArgs {
  int features = 0;
};
struct SchedSetparamArgs {
  pid_t pid = 0;
  lwpid_t lid = 0;
  int policy = netbsd::NB_SCHED_NONE;
  int priority = netbsd::PRI_NONE;
};
struct SchedGetparamArgs {
  pid_t pid = 0;
  lwpid_t lid = 0;
};
struct SchedSetaffinityArgs {
  pid_t pid = 0;
  lwpid_t lid = 0;
  CpuMask mask = 0;  // empty = clear the affinity
};
struct SchedGetaffinityArgs {
  pid_t pid = 0;
  lwpid_t lid = 0;
};
struct SchedYieldArgs {};
struct LwpParkArgs {
  int clock_id = netbsd::NB_CLOCK_MONOTONIC;
  int flags = 0;               // NB_TIMER_ABSTIME; other bits ignored
  std::optional<Timespec> ts;  // nullopt = NULL: no timeout
  lwpid_t unpark = 0;
  uint64_t hint = 0;
  uint64_t unparkhint = 0;
};

// ptrace(2). `addr` is never a user pointer: the structure it points to
// travels by value (in `in` for the requests that read one) and the results
// come back in SysReturn::trace. `data` is passed unchanged, so the kernel
// applies NetBSD's size rules itself.
struct PtraceIn {
  int event_mask = 0;  // PT_SET_EVENT_MASK: ptrace_event_t.pe_set_event
  lwpid_t lwpid = 0;   // PT_LWPINFO / PT_LWPSTATUS / PT_LWPNEXT: pl_lwpid
};
struct PtraceArgs {
  int request = 0;
  pid_t pid = 0;
  bool addr_is_one = true;  // addr == (void *)1 (PT_CONTINUE: resume where stopped)
  int data = 0;
  PtraceIn in;
};
// wait4(2) for tracees (lwpd has no parent/child processes: a tracer waits
// for the processes it traces). pid -1 = any tracee.
struct WaitArgs {
  pid_t pid = -1;
  int options = 0;  // NB_WNOHANG
};

#define LWPD_SYSCALL_ARGS_TYPE(name, num, str, fn) name##Args,
using SysArgs = std::variant<LWPD_SYSCALLS(LWPD_SYSCALL_ARGS_TYPE) std::monostate>;
#undef LWPD_SYSCALL_ARGS_TYPE

// What ptrace(2) copies out (which fields depends on the request).
struct PtraceOut {
  int event_mask = 0;        // PT_GET_EVENT_MASK
  int report_event = 0;      // PT_GET_PROCESS_STATE: pe_report_event
  lwpid_t pe_lwp = 0;        // PT_GET_PROCESS_STATE: pe_lwp
  lwpid_t lwpid = 0;         // PT_LWPINFO / PT_LWPSTATUS / PT_LWPNEXT: pl_lwpid
  int pl_event = 0;          // PT_LWPINFO
  SigSet sigpend = 0;        // PT_LWPSTATUS / PT_LWPNEXT
  SigSet sigmask = 0;        // PT_LWPSTATUS / PT_LWPNEXT
  std::string name;          // PT_LWPSTATUS / PT_LWPNEXT: pl_name ("" = unnamed)
  uint64_t private_ptr = 0;  // PT_LWPSTATUS / PT_LWPNEXT: pl_private
  int stop_signo = 0;        // PT_GET_SIGINFO (NetBSD numbers)
  int stop_code = 0;
  pid_t stop_pid = 0;
  uint32_t stop_uid = 0;
  lwpid_t psi_lwpid = 0;  // PT_GET_SIGINFO: LWP the stop belongs to (0 = process)
  bool operator==(const PtraceOut&) const = default;
};

// What wait(2) collected (retval is the pid, 0 for WNOHANG with nothing).
struct WaitOut {
  enum Kind : uint8_t { kNone, kStopped, kExited, kSignaled } kind = kNone;
  int code = 0;  // stop signal, exit status or terminating signal (NetBSD numbers)
};

// Why an LWP returns to user mode.
enum class ReturnKind : uint8_t {
  kSyscall,  // the result of its pending syscall
  kStart,    // a new LWP runs user code for the first time
  kResume,   // back from a kick (preemption, stop, suspend)
};

// The value a kernel entry returns to user mode with.
struct SysReturn {
  ReturnKind kind = ReturnKind::kSyscall;
  Errno error = Errno::kOk;
  int64_t retval = 0;          // LID (_lwp_create, _lwp_wait, _lwp_self), pointer, count
  std::string name;            // _lwp_getname: bytes copied out (may be partial on error)
  std::optional<Timespec> ts;  // ___lwp_park60: relative time written back
  int policy = 0;              // _sched_getparam
  int priority = 0;            // _sched_getparam
  CpuMask mask = 0;            // _sched_getaffinity
  int32_t lwpctl_slot = -1;    // _lwp_ctl: index of the caller's slot in the region
  PtraceOut trace;             // ptrace
  WaitOut wait;                // __wait450

  static SysReturn ok(int64_t v = 0) { return SysReturn{.retval = v}; }
  static SysReturn err(Errno e) { return SysReturn{.error = e}; }
};

// The NetBSD syscall number and user-visible name of an argument alternative.
int syscall_number(const SysArgs& a);
const char* syscall_name(const SysArgs& a);

}  // namespace lwpd::emul
