// The input format of fuzz_requests, shared with the seed generator (gen_seeds.cc).
//
//   header  byte 0: bit 0  attach 2 processes instead of 1 (Session + Start of the main LWP)
//                   bit 1  open a debugger (Trace.Session with the admin token)
//   steps   up to kMaxRequestSteps, each: rpc byte (Rpc below, modulo kNumRpcs), metadata
//           byte (fuzz_requests.cc: Run::add_metadata), then
//             unary rpc:   a length byte and that many bytes: the serialized request, sent
//                          as is (the server decodes it);
//             LwpChannel, Session: a count byte (1-3 messages), then per message a length
//                          byte and bytes, parsed by the client into the request type;
//             Watch, Trace.Session: one length byte and bytes, parsed likewise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lwpd::fuzz {

enum Rpc : uint8_t {
  kRpcStart,
  kRpcTrap,
  kRpcCall,
  kRpcListProcs,
  kRpcListLwps,
  kRpcListCpus,
  kRpcStats,
  kRpcSignalProc,
  kRpcSuspendLwp,
  kRpcResumeLwp,
  kRpcPtrace,
  kRpcWait,
  // streaming
  kRpcLwpChannel,
  kRpcSession,
  kRpcWatch,
  kRpcTraceSession,
  kNumRpcs
};

// Full method names of the unary RPCs, indexed by Rpc.
inline constexpr const char* kUnaryMethods[] = {
    "/lwpd.v1.Kernel/Start",      "/lwpd.v1.Kernel/Trap",        "/lwpd.v1.Kernel/Call",
    "/lwpd.v1.Inspect/ListProcs", "/lwpd.v1.Inspect/ListLwps",   "/lwpd.v1.Inspect/ListCpus",
    "/lwpd.v1.Inspect/Stats",     "/lwpd.v1.Admin/SignalProc",   "/lwpd.v1.Admin/SuspendLwp",
    "/lwpd.v1.Admin/ResumeLwp",   "/lwpd.v1.Trace/Ptrace",       "/lwpd.v1.Trace/Wait",
};
static_assert(sizeof(kUnaryMethods) / sizeof(kUnaryMethods[0]) == kRpcLwpChannel);

inline constexpr int kMaxRequestSteps = 48;
inline constexpr size_t kMaxBody = 255;  // a length byte

}  // namespace lwpd::fuzz
