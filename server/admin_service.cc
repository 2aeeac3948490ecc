// The Admin service: the kernel acting on any process from outside, for whoever holds
// the daemon's admin token (auth.cc). Kernel refusals are errnos in the reply; gRPC
// statuses are for protocol problems only (token, unknown pid, malformed request).
//
// SuspendLwp returns once the LWP is LSSUSPENDED without any daemon thread waiting: it
// registers a waiter with the WatchHub before arming the suspension, and the kernel's
// state event (or the LWP's death) finishes the call from the hub's pump thread.

#include "server/pending_rpc.h"
#include "server/services.h"
#include "server/wire.h"

namespace lwpd::server {

namespace {

grpc::ServerUnaryReactor* done(grpc::CallbackServerContext* ctx, const grpc::Status& st) {
  auto* r = ctx->DefaultReactor();
  r->Finish(st);
  return r;
}

const grpc::Status kNoToken(grpc::StatusCode::UNAUTHENTICATED,
                            "admin token missing or wrong (metadata lwpd-admin-token)");

// Checks the token and finds the process: nullptr with `*st` set when the call must end.
emul::ProcRef admit(const Daemon& d, const grpc::CallbackServerContext* ctx, int32_t pid,
                    grpc::Status* st) {
  if (!is_admin(d, ctx)) {
    *st = kNoToken;
    return nullptr;
  }
  if (d.shutting_down.load(std::memory_order_relaxed)) {
    *st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "lwpd is shutting down");
    return nullptr;
  }
  if (!d.kernel.config().sched_replay.empty()) {
    // The kernel would refuse it (EBUSY): say why.
    *st = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                       "lwpd replays a schedule record (--sched-replay): inputs from outside "
                       "the program come from the record, not from lwpstat");
    return nullptr;
  }
  emul::ProcRef p = pid > 0 ? d.kernel.proc_lookup(pid) : nullptr;
  if (p == nullptr) *st = grpc::Status(grpc::StatusCode::NOT_FOUND, "no such process");
  return p;
}

void fill(const Daemon& d, int32_t pid, netbsd::Errno e, std::optional<netbsd::LwpStat> state,
          v1::AdminReply* out) {
  out->set_error(errno_to_wire(e));
  if (state) out->set_state(static_cast<v1::LwpState>(static_cast<int>(*state)));
  if (auto pi = d.kernel.snapshot_proc(pid))
    out->set_proc_state(static_cast<v1::ProcState>(static_cast<int>(pi->stat)));
}

// Answered by the LWP's suspension, which a WatchHub waiter sees among the kernel's events;
// its registration is that waiter, taken back by cancel_waiter.
class SuspendReactor final : public PendingRpc {
 public:
  SuspendReactor(Daemon& d, int32_t pid, int32_t lid, v1::AdminReply* resp)
      : PendingRpc("suspend cancelled (still requested)"),
        d_(d),
        pid_(pid),
        lid_(lid),
        resp_(resp) {}

  void start(const emul::ProcRef& p) {
    id_ = d_.watch->add_waiter(pid_, lid_, [this](netbsd::Errno e) {
      fill(d_, pid_, e,
           e == netbsd::Errno::kOk ? netbsd::LwpStat::kSuspended : std::optional<netbsd::LwpStat>{},
           resp_);
      End(grpc::Status::OK);
    });
    auto r = d_.kernel.lwp_suspend_ext(p, lid_);
    if (r.ok() && r.value() != netbsd::LwpStat::kSuspended) return;  // the waiter finishes
    Settle([&] {
      fill(d_, pid_, r.error(), r.ok() ? std::optional(r.value()) : std::nullopt, resp_);
      return grpc::Status::OK;
    });
  }

 private:
  bool Withdraw(Why) override { return d_.watch->cancel_waiter(id_); }

  Daemon& d_;
  const int32_t pid_, lid_;
  v1::AdminReply* const resp_;
  uint64_t id_ = 0;
};

}  // namespace

grpc::ServerUnaryReactor* AdminService::SignalProc(grpc::CallbackServerContext* ctx,
                                                   const v1::SignalProcRequest* req,
                                                   v1::AdminReply* resp) {
  grpc::Status st;
  emul::ProcRef p = admit(d_, ctx, req->pid(), &st);
  if (p == nullptr) return done(ctx, st);
  int signo = 0;
  switch (req->signal()) {
    case v1::ADMIN_SIGSTOP:
      signo = netbsd::NB_SIGSTOP;
      break;
    case v1::ADMIN_SIGCONT:
      signo = netbsd::NB_SIGCONT;
      break;
    case v1::ADMIN_SIGKILL:
      signo = netbsd::NB_SIGKILL;
      break;
    default:
      return done(ctx,
                  grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                               "signal must be ADMIN_SIGSTOP, ADMIN_SIGCONT or ADMIN_SIGKILL"));
  }
  auto r = d_.kernel.proc_signal(p, signo);
  fill(d_, req->pid(), r.error(), std::nullopt, resp);
  return done(ctx, grpc::Status::OK);
}

namespace {

// admit() for a request naming one LWP, then INVALID_ARGUMENT for a lid <= 0.
emul::ProcRef admit_lwp(const Daemon& d, const grpc::CallbackServerContext* ctx,
                        const v1::LwpTarget& req, grpc::Status* st) {
  emul::ProcRef p = admit(d, ctx, req.pid(), st);
  if (p != nullptr && req.lid() <= 0) {
    *st = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "lid must be > 0");
    return nullptr;
  }
  return p;
}

}  // namespace

grpc::ServerUnaryReactor* AdminService::SuspendLwp(grpc::CallbackServerContext* ctx,
                                                   const v1::LwpTarget* req, v1::AdminReply* resp) {
  grpc::Status st;
  emul::ProcRef p = admit_lwp(d_, ctx, *req, &st);
  if (p == nullptr) return done(ctx, st);
  auto* r = new SuspendReactor(d_, req->pid(), req->lid(), resp);
  r->start(p);
  return r->Returned();
}

grpc::ServerUnaryReactor* AdminService::ResumeLwp(grpc::CallbackServerContext* ctx,
                                                  const v1::LwpTarget* req, v1::AdminReply* resp) {
  grpc::Status st;
  emul::ProcRef p = admit_lwp(d_, ctx, *req, &st);
  if (p == nullptr) return done(ctx, st);
  auto r = d_.kernel.lwp_continue_ext(p, req->lid());
  fill(d_, req->pid(), r.error(), r.ok() ? std::optional(r.value()) : std::nullopt, resp);
  return done(ctx, grpc::Status::OK);
}

}  // namespace lwpd::server
