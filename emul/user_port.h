// The user port: the narrow interface through which the emulated kernel talks
// to the user side of one process (the client shim over gRPC, in-process test
// threads, later a shared-memory transport).
//
// Protocol, seen from one LWP:
//   * An LWP is either in user mode (running user code on its host thread,
//     allowed only while LSONPROC) or in the kernel (it has a pending entry:
//     its start, a syscall, or a trap after a kick).
//   * lwp_return() ends the pending entry: the host thread resumes user code.
//     It carries the user-run generation `gen`, incremented on every return.
//   * lwp_kick(gen) asks a thread running user code in generation `gen` to
//     enter the kernel (Kernel::trap) at once. A kick whose gen is not the
//     thread's current generation is stale and must be ignored.
//   * lwp_signal() hands a signal to the user side for delivery on that LWP;
//     it is sent only while the LWP is in user mode or just before its return.
//   * lwp_exited(): the LWP's pending entry never returns; the host thread ends.
//   * proc_exited(): the process is gone; the user side ends with `status`.
//   * proc_unresponsive(lid): LWP `lid` did not answer a kick in time and the process is
//     about to be killed for it (KernelConfig::kick_timeout); the user side is not to be
//     trusted any more -- a transport that can end the client's host process does so.
//
// Every method is called with the process lock held, in the order the kernel
// decided things, so an implementation must not block, must not call back into
// the Kernel, and must keep per-LWP order (a queue per LWP is enough).
#pragma once

#include <cstdint>

#include "emul/netbsd.h"
#include "emul/syscalls.h"

namespace lwpd::emul {

struct SigInfo {
  int signo = 0;
  int code = netbsd::NB_SI_LWP;
  pid_t pid = 0;  // sender's pid (0 = the kernel)
  uint32_t uid = 0;
  lwpid_t lid = 0;  // target LWP
};

// How a process ended, as wait(2) would report it.
struct ExitStatus {
  bool signaled = false;
  int code = 0;  // exit status, or the terminating signal when `signaled`
};

class UserPort {
 public:
  virtual ~UserPort() = default;
  virtual void lwp_return(lwpid_t lid, const SysReturn& ret, uint64_t gen) = 0;
  virtual void lwp_kick(lwpid_t lid, uint64_t gen) = 0;
  virtual void lwp_signal(lwpid_t lid, const SigInfo& info) = 0;
  virtual void lwp_exited(lwpid_t lid) = 0;
  virtual void proc_exited(const ExitStatus& status) = 0;
  virtual void proc_unresponsive(lwpid_t /*lid*/) {}
};

}  // namespace lwpd::emul
