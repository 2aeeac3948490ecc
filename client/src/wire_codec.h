// kernel_call.h's plain values <-> the lwpd.v1 messages (proto/lwpd/v1/kernel.proto): the
// one wire contract of a kernel entry, spoken by both transports -- as a gRPC message on an
// LWP channel, as serialized bytes in a shared-memory slot.
#pragma once

#include "kernel_call.h"
// glibc's <signal.h> defines a BSD macro sigmask(sig) that breaks the generated accessor
// LwpCreateArgs::sigmask(); the shim never uses the macro.
#undef sigmask
#include "lwpd/v1/kernel.pb.h"

namespace lwpd::client {

namespace pb = ::lwpd::v1;

void encode_request(const SysRequest& rq, pb::Syscall* out);
// The wire's Errno has NetBSD's numbers (checked against common/netbsd_abi.h by
// proto/netbsd_abi_check.cc).
void decode_return(const pb::SyscallReturn& r, SysReply* out);
ExitStatus decode_exit(const pb::ExitStatus& st);

}  // namespace lwpd::client
