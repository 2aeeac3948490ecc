// A kernel entry and its return as plain C++ values: what crosses the transport seam
// (transport.h). The wrappers (lwp_calls.cc, ptrace.cc) fill a SysRequest in NetBSD's
// numbers and read a SysReply; a transport turns them into its own wire format (protobuf
// for gRPC, a slot of shared memory for the fast path). No protobuf here, no pointers into
// the transport: every type is trivially copyable, so a transport may copy one into a
// shared-memory slot as it is. The one exception to "values only" is
// LwpUnparkAllReq::targets, which points at the caller's array for the duration of the
// call, as a system call's argument points at user memory: the transport copies it in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <variant>

#include "common/netbsd_abi.h"

namespace lwpd::client {

namespace nb = ::lwpd::netbsd;

// A short byte string (LWP names), bounded as the shim's own buffers are.
struct ShortBytes {
  static constexpr size_t kMax = 64;
  uint32_t len = 0;
  char data[kMax] = {};

  void assign(const char* s, size_t n) {
    len = static_cast<uint32_t>(n < kMax ? n : kMax);
    memcpy(data, s, len);
  }
};

// ---- requests: one struct per call, fields as the wire contract names them -------------
// (proto/lwpd/v1/kernel.proto, message <Name>Args). NetBSD numbers throughout.

struct ProcExitReq {
  int32_t status = 0;
};
struct LwpCreateReq {
  uint32_t uc_flags = 0;
  uint64_t pc = 0;
  uint64_t rflags = 0;
  uint64_t sigmask = 0;  // NetBSD bits (sig-1)
  uint64_t tls_base = 0;
  uint64_t flags = 0;
  bool lid_out_fault = false;
};
struct LwpExitReq {};
struct LwpWaitReq {
  nb::lwpid_t wait_for = 0;
};
struct LwpSuspendReq {
  nb::lwpid_t target = 0;
};
struct LwpContinueReq {
  nb::lwpid_t target = 0;
};
struct LwpWakeupReq {
  nb::lwpid_t target = 0;
};
struct LwpGetprivateReq {};
struct LwpSetprivateReq {
  uint64_t ptr = 0;
};
struct LwpKillReq {
  nb::lwpid_t target = 0;
  int32_t signo = 0;  // NetBSD number
};
struct LwpDetachReq {
  nb::lwpid_t target = 0;
};
struct LwpUnparkReq {
  nb::lwpid_t target = 0;
  uint64_t hint = 0;
};
struct LwpUnparkAllReq {
  bool targets_null = false;
  uint64_t ntargets = 0;                 // as passed
  const nb::lwpid_t* targets = nullptr;  // the caller's array (copied in by the transport)
  size_t ncopy = 0;                      // how many of them to send (0 when out of range)
  uint64_t hint = 0;
};
struct LwpSetnameReq {
  nb::lwpid_t target = 0;
  ShortBytes name;
};
struct LwpGetnameReq {
  nb::lwpid_t target = 0;
  uint64_t len = 0;
};
struct LwpCtlReq {
  int32_t features = 0;
};
struct SchedSetparamReq {
  int32_t pid = 0, lid = 0, policy = 0, priority = 0;
};
struct SchedGetparamReq {
  int32_t pid = 0, lid = 0;
};
struct SchedSetaffinityReq {
  int32_t pid = 0, lid = 0;
  uint64_t mask = 0;
};
struct SchedGetaffinityReq {
  int32_t pid = 0, lid = 0;
};
struct SchedYieldReq {};
struct LwpParkReq {
  int32_t clock_id = 0;  // NetBSD clock id
  int32_t flags = 0;
  bool has_ts = false;
  int64_t ts_sec = 0, ts_nsec = 0;
  nb::lwpid_t unpark = 0;
  uint64_t hint = 0, unparkhint = 0;
};
struct PtraceReq {
  int32_t request = 0, pid = 0;
  bool addr_not_one = false;
  int32_t data = 0, event_mask = 0, lwpid = 0;
};
struct WaitReq {
  int32_t pid = 0, options = 0;
};

using SysRequest =
    std::variant<ProcExitReq, LwpCreateReq, LwpExitReq, LwpWaitReq, LwpSuspendReq,
                 LwpContinueReq, LwpWakeupReq, LwpGetprivateReq, LwpSetprivateReq, LwpKillReq,
                 LwpDetachReq, LwpUnparkReq, LwpUnparkAllReq, LwpSetnameReq, LwpGetnameReq,
                 LwpCtlReq, SchedSetparamReq, SchedGetparamReq, SchedSetaffinityReq,
                 SchedGetaffinityReq, SchedYieldReq, LwpParkReq, PtraceReq, WaitReq>;
static_assert(std::is_trivially_copyable_v<SysRequest>);

// ---- the return ------------------------------------------------------------------------

enum class ReturnKind : uint8_t {
  kSyscall,  // the result of the pending syscall
  kStart,    // a new LWP may run user code for the first time
  kResume,   // back from a trap (kick): continue user code
};

enum class WaitKind : uint8_t { kNone, kStopped, kExited, kSignaled };

struct SigInfoOut {
  int32_t signo = 0, code = 0, pid = 0;  // NetBSD numbers
  uint32_t uid = 0;
};

// What ptrace copies out (kernel.proto, PtraceOut).
struct PtraceOut {
  int32_t event_mask = 0, report_event = 0, report_lwp = 0, lwpid = 0, pl_event = 0;
  uint64_t sigpend = 0, sigmask = 0;  // NetBSD bits
  ShortBytes name;
  uint64_t private_ptr = 0;
  SigInfoOut siginfo;
  int32_t psi_lwpid = 0;
};

struct WaitOut {
  WaitKind kind = WaitKind::kNone;
  int32_t code = 0;  // NetBSD signal numbers
};

struct SysReply {
  ReturnKind kind = ReturnKind::kSyscall;
  nb::Errno error = nb::Errno::kOk;
  int64_t retval = 0;  // LID, pointer, count
  uint64_t gen = 0;    // user-run generation that starts with this return
  ShortBytes name;     // _lwp_getname (partial on ENAMETOOLONG)
  bool has_ts = false;
  int64_t ts_sec = 0, ts_nsec = 0;  // _lwp_park: the relative time left
  int32_t policy = 0, priority = 0;
  uint64_t mask = 0;
  int32_t lwpctl_slot = 0;
  PtraceOut ptrace;
  WaitOut wait;
};
static_assert(std::is_trivially_copyable_v<SysReply>);

// How the emulated process ended (NetBSD signal numbers when `signaled`).
struct ExitStatus {
  bool signaled = false;
  int32_t code = 0;
};

}  // namespace lwpd::client
