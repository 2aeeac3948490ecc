// A kernel entry on behalf of a transport (an LWP channel, a unary Trap/Call, a slot of a
// shared-memory region): the one sequence they share, and how its refusals read as gRPC
// statuses.
#pragma once

#include <grpcpp/grpcpp.h>

#include "server/grpc_port.h"
#include "server/services.h"

namespace lwpd::server {

// Why the kernel refused an entry, as a status (NOT_FOUND, INVALID_ARGUMENT, ...).
grpc::Status entry_status(emul::EntryStatus st);
// Why the port refused to route one (OK for kOk/kDelivered).
grpc::Status check_status(const Daemon& d, GrpcPort::Check c);

// Register `t` for the LWP's return, count the entry, enter the kernel (`enter`). OK: the
// return will reach `t` (or has already). Otherwise the status `t` is to end with: the
// port refused (no entry was made), or the kernel refused and abort_entry took the
// registration back -- which gives the caller the right to end `t` (pending_rpc.h's rule;
// when abort_entry finds it gone the return reached `t` first, and that is OK).
template <class Enter>
grpc::Status enter_kernel(Daemon& d, GrpcPort& port, lwpid_t lid, ReturnTarget* t, int sysno,
                          Enter&& enter) {
  GrpcPort::Check c = port.begin_entry(lid, t, sysno);
  if (c != GrpcPort::Check::kOk) return check_status(d, c);
  d.entries.fetch_add(1, std::memory_order_relaxed);
  emul::EntryStatus st = enter();
  if (st != emul::EntryStatus::kOk && port.abort_entry(lid, t)) return entry_status(st);
  return grpc::Status::OK;
}

}  // namespace lwpd::server
