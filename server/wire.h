// Wire mapping: lwpd.v1 protobuf messages <-> the emulated kernel's plain
// structs. The only place that knows both; emul/ never sees protobuf and the
// services never pick fields apart by hand.
//
// The syscall mapping is driven by the LWPD_SYSCALLS table (emul/syscalls.h):
// the proto oneof case of a syscall is Syscall::k<Name>, its message is
// lwpd::v1::<Name>Args, and its emul struct emul::<Name>Args, so adding a
// syscall means adding one decode() overload here (the compiler points at it).
#pragma once

#include <optional>

#include "emul/kernel.h"
#include "lwpd/v1/kernel.pb.h"

namespace lwpd::server {

namespace v1 = ::lwpd::v1;
namespace emul = ::lwpd::emul;

// Decode a Syscall. nullopt when no member of the oneof is set (the request
// is malformed: INVALID_ARGUMENT).
std::optional<emul::SysArgs> syscall_from_wire(const v1::Syscall& s);

// The two tracing calls on their own (the Trace service's Ptrace and Wait).
emul::PtraceArgs ptrace_from_wire(const v1::PtraceArgs& w);
emul::WaitArgs wait_from_wire(const v1::WaitArgs& w);

// Encode an emul argument struct (clients and tests use it to build requests).
v1::Syscall syscall_to_wire(const emul::SysArgs& a);

// A return to user mode, with the user-run generation it starts.
void return_to_wire(const emul::SysReturn& r, uint64_t gen, v1::SyscallReturn* out);

v1::Errno errno_to_wire(netbsd::Errno e);
void siginfo_to_wire(const emul::SigInfo& si, v1::SigInfo* out);
void exit_status_to_wire(const emul::ExitStatus& st, v1::ExitStatus* out);

// Inspection snapshots.
void lwp_info_to_wire(const emul::LwpInfo& li, v1::LwpInfo* out);
void proc_info_to_wire(const emul::ProcInfo& pi, bool with_lwps, v1::ProcInfo* out);
void cpu_info_to_wire(const emul::CpuInfo& ci, v1::CpuInfo* out);

}  // namespace lwpd::server
