// The gRPC services of the daemon, on gRPC's callback API:
//   Kernel   sessions (one per emulated process), LWP channels and the unary
//            Start/Trap/Call entries; every RPC but Session needs the session
//            token ("lwpd-token" metadata) and acts on its own process only.
//   Inspect  read-only snapshots of the kernel and the Watch event stream; no token.
//   Admin    signal any process, suspend/resume any LWP; needs the admin token.
//   Trace    ptrace/wait for a debugger that is no emulated process; admin token to open.
// Rules (STYLE.md): a reaction never blocks and holds no lock across
// reactions; every reactor finishes exactly once and cleans up in OnDone.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "emul/kernel.h"
#include "lwpd/v1/kernel.grpc.pb.h"
#include "server/listener.h"
#include "server/sessions.h"
#include "server/watch.h"

namespace lwpd::server {

// What the services share. Outlives the gRPC server.
struct Daemon {
  emul::Kernel& kernel;
  Sessions& sessions;
  // Sessions' credentials come from their connection's peer (session_identity); `uid` is
  // used only without a listener (an in-process server in tests).
  uint32_t uid = 0;
  Listener* listener = nullptr;  // the daemon's acceptor (peer identity, counters); set once
  std::string runtime_dir;       // where lwpctl region files appear
  std::string admin_token;       // grants admin rights (metadata "lwpd-admin-token"); set once
  std::string version;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  bool offer_regions = true;  // the shared-memory fast path (--no-shm)
  // SCHED_FIFO priority of the region threads (--rt-priority; region_server.h, "Priority"),
  // 0 for the host's normal scheduling.
  int rt_priority = 0;
  // Doorbell wake-ups in a row that find nothing posted, after which a region's client is cut
  // off (region_server.h).
  uint32_t region_max_idle_wakeups = 1u << 20;
  size_t max_queued_events = 4096;   // bound of a session's stream queues (--max-queued-events)
  std::atomic<uint64_t> entries{0};  // kernel entries served (relaxed counter)
  std::atomic<uint64_t> kicks_direct{0};   // kicks sent by tgkill to a region client's thread
  std::atomic<bool> shutting_down{false};  // new requests get UNAVAILABLE
  WatchHub* watch = nullptr;               // the kernel's observer (Watch, SuspendLwp); set once
};

class KernelService final : public v1::Kernel::CallbackService {
 public:
  explicit KernelService(Daemon& d) : d_(d) {}

  grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionEvent>* Session(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerBidiReactor<v1::LwpRequest, v1::LwpEvent>* LwpChannel(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Start(grpc::CallbackServerContext* ctx, const v1::LwpRef* req,
                                  v1::SyscallReturn* resp) override;
  grpc::ServerUnaryReactor* Trap(grpc::CallbackServerContext* ctx, const v1::LwpRef* req,
                                 v1::SyscallReturn* resp) override;
  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* ctx, const v1::LwpCall* req,
                                 v1::SyscallReturn* resp) override;

 private:
  Daemon& d_;
};

class InspectService final : public v1::Inspect::CallbackService {
 public:
  explicit InspectService(Daemon& d) : d_(d) {}

  grpc::ServerUnaryReactor* ListProcs(grpc::CallbackServerContext* ctx,
                                      const v1::ListProcsRequest* req,
                                      v1::ListProcsReply* resp) override;
  grpc::ServerUnaryReactor* ListLwps(grpc::CallbackServerContext* ctx,
                                     const v1::ListLwpsRequest* req,
                                     v1::ListLwpsReply* resp) override;
  grpc::ServerUnaryReactor* ListCpus(grpc::CallbackServerContext* ctx,
                                     const v1::ListCpusRequest* req,
                                     v1::ListCpusReply* resp) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx, const v1::StatsRequest* req,
                                  v1::StatsReply* resp) override;
  grpc::ServerWriteReactor<v1::WatchReply>* Watch(grpc::CallbackServerContext* ctx,
                                                  const v1::WatchRequest* req) override;

 private:
  Daemon& d_;
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  explicit AdminService(Daemon& d) : d_(d) {}

  grpc::ServerUnaryReactor* SignalProc(grpc::CallbackServerContext* ctx,
                                       const v1::SignalProcRequest* req,
                                       v1::AdminReply* resp) override;
  grpc::ServerUnaryReactor* SuspendLwp(grpc::CallbackServerContext* ctx, const v1::LwpTarget* req,
                                       v1::AdminReply* resp) override;
  grpc::ServerUnaryReactor* ResumeLwp(grpc::CallbackServerContext* ctx, const v1::LwpTarget* req,
                                      v1::AdminReply* resp) override;

 private:
  Daemon& d_;
};

// Trace: debuggers (emul Kernel::debugger_*) for admin-token holders that are not
// emulated processes. Session opens one and lives as long as it; Ptrace and Wait carry
// the session's trace token ("lwpd-trace-token"). See trace_service.cc.
class TraceService final : public v1::Trace::CallbackService {
 public:
  explicit TraceService(Daemon& d);
  ~TraceService() override;

  grpc::ServerBidiReactor<v1::TraceSessionRequest, v1::TraceSessionEvent>* Session(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Ptrace(grpc::CallbackServerContext* ctx, const v1::PtraceArgs* req,
                                   v1::SyscallReturn* resp) override;
  grpc::ServerUnaryReactor* Wait(grpc::CallbackServerContext* ctx, const v1::WaitArgs* req,
                                 v1::SyscallReturn* resp) override;

  // Daemon shutdown: ends every trace session's stream with `st` and closes its debugger
  // (tracees killed, pending Waits finished with UNAVAILABLE); new sessions are refused.
  void shutdown(const grpc::Status& st);
  size_t sessions() const;

  class Table;  // the open sessions by trace token (trace_service.cc)

 private:
  Daemon& d_;
  std::unique_ptr<Table> table_;
};

// True iff the request carries the daemon's admin token in its "lwpd-admin-token" metadata
// (compared in constant time). Admin rights: stop/continue/kill any process, suspend/resume
// any LWP, trace any process.
bool is_admin(const Daemon& d, const grpc::CallbackServerContext* ctx);

// Who a session is, by the rules of README "Security and limits": a Unix peer is its kernel
// uid (SO_PEERCRED); a TCP peer, or one the listener does not know, is nobody (32767) unless
// the request carries the admin token (then uid 0). Without a listener: d.uid.
SessionIdentity session_identity(const Daemon& d, const grpc::CallbackServerContext* ctx);

// Resident set size of this process in bytes (from /proc/self/statm), -1 if unknown.
int64_t self_rss_bytes();

}  // namespace lwpd::server
