// The Kernel service: Session streams, LWP channels, unary Start/Trap/Call.
//
// Reactors and what ends them:
//   SessionReactor  Finish OK after the proc_exited event (GrpcPort), or an
//                   error for a malformed stream; when the stream breaks or
//                   is half-closed the process is abandoned (killed), and
//                   OnDone abandons it too if it is still alive.
//   ChannelReactor  one LWP's request/return pairs; ends when its LWP or the
//                   process exits (GrpcPort), on a protocol error, or when
//                   the client closes it.
//   EntryReactor    one unary Start/Trap/Call; finished by whoever takes it
//                   out of the port's route (the return, the exit, a cancel).
// Kernel calls are made from reactions with no lock of ours held (the kernel
// may call the port, and so a stream, from inside them).

#include <spdlog/spdlog.h>

#include "server/kernel_entry.h"
#include "server/pending_rpc.h"
#include "server/services.h"
#include "server/wire.h"

namespace lwpd::server {

using grpc::Status;
using grpc::StatusCode;

Status entry_status(emul::EntryStatus st) {
  switch (st) {
    case emul::EntryStatus::kOk:
      return Status::OK;
    case emul::EntryStatus::kNoSuchLwp:
      return Status(StatusCode::NOT_FOUND, emul::entry_status_name(st));
    case emul::EntryStatus::kBadArgs:
      return Status(StatusCode::INVALID_ARGUMENT, emul::entry_status_name(st));
    case emul::EntryStatus::kNotInUserMode:
    case emul::EntryStatus::kProcExited:
      return Status(StatusCode::FAILED_PRECONDITION, emul::entry_status_name(st));
  }
  return Status(StatusCode::INTERNAL, "unknown entry status");
}

Status check_status(const Daemon& d, GrpcPort::Check c) {
  switch (c) {
    case GrpcPort::Check::kOk:
    case GrpcPort::Check::kDelivered:
      return Status::OK;
    case GrpcPort::Check::kNoSuchLwp:
      return Status(StatusCode::NOT_FOUND, "no such LWP in this process");
    case GrpcPort::Check::kBusy:
      return Status(StatusCode::FAILED_PRECONDITION,
                    "LWP is in the kernel: its pending entry has not returned");
    case GrpcPort::Check::kUncollected:
      return Status(StatusCode::FAILED_PRECONDITION,
                    "LWP has a return nobody collected (a cancelled call's or its first "
                    "dispatch): take it with Start");
    case GrpcPort::Check::kRunning:
      return Status(StatusCode::FAILED_PRECONDITION,
                    "LWP is already running user code: nothing to Start");
    case GrpcPort::Check::kClosed:
      if (d.shutting_down.load(std::memory_order_relaxed))
        return Status(StatusCode::UNAVAILABLE, "lwpd is shutting down");
      return Status(StatusCode::FAILED_PRECONDITION, "process has exited");
  }
  return Status(StatusCode::INTERNAL, "unknown check");
}

namespace {

const Status kShuttingDown(StatusCode::UNAVAILABLE, "lwpd is shutting down");
const Status kBadToken(StatusCode::UNAUTHENTICATED, "missing or unknown lwpd-token");

// The session named by the request's "lwpd-token" metadata, or null.
std::shared_ptr<Session> authenticate(const Daemon& d, const grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("lwpd-token");
  if (it == md.end()) return nullptr;
  return d.sessions.find(std::string_view(it->second.data(), it->second.size()));
}

grpc::ServerUnaryReactor* finish_now(grpc::CallbackServerContext* ctx, const Status& st) {
  auto* r = ctx->DefaultReactor();
  r->Finish(st);
  return r;
}

// ---- Session ------------------------------------------------------------------------------

class SessionReactor final : public QueuedBidiReactor<v1::SessionRequest, v1::SessionEvent> {
 public:
  SessionReactor(Daemon& d, grpc::CallbackServerContext* ctx) : d_(d), ctx_(ctx) {
    SetQueueLimit(d_.max_queued_events);
    Read(&req_);
  }

  void OnReadDone(bool ok) override {
    ReactionScope rs(HbKey());
    std::shared_ptr<Session> s = session();
    if (!ok) {
      // Half-closed or broken: the process goes, as if killed. If the stream
      // still works the client gets proc_exited and the stream ends OK.
      if (s == nullptr) {
        FinishNow(Status(StatusCode::INVALID_ARGUMENT, "session closed before Attach"));
      } else {
        spdlog::debug("session pid {}: stream closed by the client, killing", s->pid);
        d_.sessions.abandon(*s);
      }
      return;
    }
    if (s == nullptr) {
      if (!Attach()) return;
    } else if (!Handle(*s)) {
      return;
    }
    Read(&req_);
  }

  void OnCancel() override {
    ReactionScope rs(HbKey());
    if (auto s = session()) {
      spdlog::debug("session pid {}: cancelled, killing", s->pid);
      d_.sessions.abandon(*s);
    }
    FinishNow(Status(StatusCode::CANCELLED, "session cancelled"));
  }

  void OnDone() override {
    LWPD_REACTION_BEGINS(HbKey());  // every other reaction has returned
    if (auto s = session()) {
      s->port->detach_session(this);
      d_.sessions.abandon(*s);  // no-op unless the stream ended with the process alive
    }
    delete this;
  }

 private:
  std::shared_ptr<Session> session() EXCLUDES(mu_) {
    MutexLock g(mu_);
    return s_;
  }

  // Under the port and process locks: cut_off only posts.
  void OnQueueOverflow() override {
    if (auto s = session()) d_.sessions.cut_off(s, "Session stream");
  }

  // The first message. False when the stream is finishing.
  bool Attach() {
    if (!req_.has_attach()) {
      FinishNow(Status(StatusCode::INVALID_ARGUMENT, "first Session message must be Attach"));
      return false;
    }
    if (d_.shutting_down.load(std::memory_order_relaxed)) {
      FinishNow(kShuttingDown);
      return false;
    }
    std::string comm = req_.attach().comm().substr(0, 64);
    const SessionIdentity who = session_identity(d_, ctx_);
    auto r = d_.sessions.create(comm, who);
    if (!r.ok()) {
      FinishNow(Status(StatusCode::RESOURCE_EXHAUSTED,
                       std::string("cannot create a process: ") + netbsd::errno_name(r.error())));
      return false;
    }
    std::shared_ptr<Session> s = r.release();
    {
      MutexLock g(mu_);
      s_ = s;
    }
    v1::SessionEvent ev;
    auto* a = ev.mutable_attached();
    a->set_pid(s->pid);
    a->set_token(s->token);
    if (!d_.runtime_dir.empty())
      a->set_lwpctl_path(d_.runtime_dir + "/lwpctl." + std::to_string(s->pid));
    a->set_ncpus(d_.kernel.ncpus());
    log_attached(*s, who, comm);
    if (!s->port->attach_session(this, std::move(ev)) ||
        d_.shutting_down.load(std::memory_order_relaxed)) {
      d_.sessions.abandon(*s);
      FinishNow(kShuttingDown);
      return false;
    }
    return true;
  }

  // Who attached, as the kernel says; the host pid the client claims is only a hint.
  void log_attached(const Session& s, const SessionIdentity& who, const std::string& comm) {
    std::string peer = "peer unknown";
    if (who.peer && who.peer->is_unix) {
      peer = fmt::format("peer uid {} pid {}{}", who.peer->uid, who.peer->pid,
                         who.peer->pidfd ? " (pidfd held)" : "");
    } else if (who.peer) {
      peer = "peer TCP";
    }
    spdlog::info("session pid {}: attached as uid {} (comm '{}', {}, claimed host pid {})",
                 s.pid, s.uid, comm, peer, req_.attach().host_pid());
  }

  // A message after Attach. False when the stream is finishing.
  bool Handle(Session& s) {
    switch (req_.msg_case()) {
      case v1::SessionRequest::kSigrestart:
        d_.kernel.proc_set_sigrestart(s.proc, req_.sigrestart());
        return true;
      case v1::SessionRequest::kAttach:
      case v1::SessionRequest::MSG_NOT_SET:
        break;
    }
    spdlog::warn("session pid {}: malformed message, killing the process", s.pid);
    // The stream ends with this status, not OK, once the process is released (as any
    // session's end: the client then no longer finds its process listed).
    s.port->fail_session(Status(StatusCode::INVALID_ARGUMENT,
                                req_.has_attach() ? "Attach sent twice"
                                                  : "empty SessionRequest (no message set)"));
    d_.sessions.abandon(s);
    return false;
  }

  Daemon& d_;
  grpc::CallbackServerContext* const ctx_;
  v1::SessionRequest req_;      // owned by the one outstanding read
  Mutex mu_{LockRank::kLeaf};
  std::shared_ptr<Session> s_ GUARDED_BY(mu_);  // set once by Attach
};

// ---- LwpChannel ---------------------------------------------------------------------------

class ChannelReactor final : public QueuedBidiReactor<v1::LwpRequest, v1::LwpEvent>,
                             public ReturnTarget {
 public:
  ChannelReactor(Daemon& d, std::shared_ptr<Session> s) : d_(d), s_(std::move(s)) {
    if (d_.shutting_down.load(std::memory_order_relaxed)) {
      FinishNow(kShuttingDown);
    } else if (s_ == nullptr) {
      FinishNow(kBadToken);
    } else {
      SetQueueLimit(d_.max_queued_events);
      Read(&req_);
    }
  }

  void OnReadDone(bool ok) override {
    ReactionScope rs(HbKey());
    if (!ok) {
      End(Status::OK);  // the client closed its side
      return;
    }
    Status st = Handle();
    if (!st.ok()) {
      End(st);
      return;
    }
    if (!Finishing()) Read(&req_);
  }

  void OnCancel() override {
    ReactionScope rs(HbKey());
    End(Status(StatusCode::CANCELLED, "channel cancelled"));
  }

  void OnDone() override {
    LWPD_REACTION_BEGINS(HbKey());  // every other reaction has returned
    if (lwpid_t lid = lid_.load(std::memory_order_acquire); lid != 0)
      s_->port->close_channel(lid, this);
    delete this;
  }

  // ---- ReturnTarget (under the port lock) ----
  void Deliver(const v1::SyscallReturn& r) override {
    v1::LwpEvent ev;
    *ev.mutable_ret() = r;
    Send(std::move(ev));
  }
  void Exited() override {
    v1::LwpEvent ev;
    ev.set_exited(true);
    Send(std::move(ev));
    FinishAfterWrites(Status::OK);
  }
  void ProcExited(const v1::ExitStatus& st) override {
    v1::LwpEvent ev;
    *ev.mutable_proc_exited() = st;
    Send(std::move(ev));
    FinishAfterWrites(Status::OK);
  }
  void Fail(const Status& st) override { FinishNow(st); }

 private:
  // A client that sends entries and never reads their returns. Under the port lock.
  void OnQueueOverflow() override { d_.sessions.cut_off(s_, "LwpChannel"); }

  Status Handle() {
    const lwpid_t lid = lid_.load(std::memory_order_relaxed);  // written only here
    switch (req_.msg_case()) {
      case v1::LwpRequest::kOpen: {
        if (lid != 0) return Status(StatusCode::INVALID_ARGUMENT, "LwpOpen sent twice");
        const lwpid_t want = req_.open().lid();
        GrpcPort::Check c = s_->port->open_channel(want, this);
        if (c == GrpcPort::Check::kBusy)
          return Status(StatusCode::FAILED_PRECONDITION, "LWP already has an open channel");
        if (c != GrpcPort::Check::kOk) return check_status(d_, c);
        lid_.store(want, std::memory_order_release);  // read by OnDone
        return Status::OK;
      }
      case v1::LwpRequest::kSyscall: {
        if (lid == 0) return Status(StatusCode::INVALID_ARGUMENT, "syscall before LwpOpen");
        auto args = syscall_from_wire(req_.syscall());
        if (!args) return Status(StatusCode::INVALID_ARGUMENT, "Syscall has no call set");
        return Enter(lid, emul::syscall_number(*args),
                     [&] { return d_.kernel.syscall(s_->proc, lid, std::move(*args)); });
      }
      case v1::LwpRequest::kTrap:
        if (lid == 0) return Status(StatusCode::INVALID_ARGUMENT, "trap before LwpOpen");
        return Enter(lid, 0, [&] { return d_.kernel.trap(s_->proc, lid); });
      case v1::LwpRequest::MSG_NOT_SET:
        break;
    }
    return Status(StatusCode::INVALID_ARGUMENT, "empty LwpRequest");
  }

  template <class F>
  Status Enter(lwpid_t lid, int sysno, F&& enter) {
    return enter_kernel(d_, *s_->port, lid, this, sysno, std::forward<F>(enter));
  }

  // End the channel from our side: unbind it first so no return is routed here.
  void End(const Status& st) {
    if (lwpid_t lid = lid_.load(std::memory_order_acquire); lid != 0)
      s_->port->close_channel(lid, this);
    FinishNow(st);
  }

  Daemon& d_;
  const std::shared_ptr<Session> s_;
  v1::LwpRequest req_;           // owned by the one outstanding read
  std::atomic<lwpid_t> lid_{0};  // bound LWP; set once by OnReadDone
};

// ---- unary Start / Trap / Call -------------------------------------------------------------

// Answered by the LWP's return (GrpcPort routes it here); its registration is the route's
// target, taken back by abort_entry when the kernel refuses the entry (enter_kernel: the
// LWP is back in user mode) or by cancel_entry when the call is cancelled (the LWP stays
// in the kernel and its return is buffered for the next Start).
class EntryReactor final : public PendingRpc, public ReturnTarget {
 public:
  EntryReactor(std::shared_ptr<Session> s, lwpid_t lid, v1::SyscallReturn* resp)
      : PendingRpc("cancelled"), s_(std::move(s)), lid_(lid), resp_(resp) {}

  // ---- ReturnTarget (under the port lock, which has just taken the registration) ----
  void Deliver(const v1::SyscallReturn& r) override {
    *resp_ = r;
    End(Status::OK);
  }
  void Exited() override { End(Status(StatusCode::ABORTED, "LWP exited")); }
  void ProcExited(const v1::ExitStatus&) override {
    End(Status(StatusCode::ABORTED, "process exited"));
  }
  void Fail(const Status& st) override { End(st); }

  server::Session& session() { return *s_; }
  lwpid_t lid() const { return lid_; }

 private:
  bool Withdraw(Why why) override {
    return why == Why::kSettled ? s_->port->abort_entry(lid_, this)
                                : s_->port->cancel_entry(lid_, this);
  }
  // (enter_kernel settles a refusal with abort_entry itself, as for a channel.)

  const std::shared_ptr<Session> s_;
  const lwpid_t lid_;
  v1::SyscallReturn* const resp_;
};

}  // namespace

grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionEvent>* KernelService::Session(
    grpc::CallbackServerContext* ctx) {
  return new SessionReactor(d_, ctx);
}

grpc::ServerBidiReactor<v1::LwpRequest, v1::LwpEvent>* KernelService::LwpChannel(
    grpc::CallbackServerContext* ctx) {
  return new ChannelReactor(d_, authenticate(d_, ctx));
}

grpc::ServerUnaryReactor* KernelService::Start(grpc::CallbackServerContext* ctx,
                                               const v1::LwpRef* req, v1::SyscallReturn* resp) {
  if (d_.shutting_down.load(std::memory_order_relaxed)) return finish_now(ctx, kShuttingDown);
  auto s = authenticate(d_, ctx);
  if (s == nullptr) return finish_now(ctx, kBadToken);
  auto* r = new EntryReactor(std::move(s), req->lid(), resp);
  GrpcPort::Check c = r->session().port->start_wait(r->lid(), r);
  if (c != GrpcPort::Check::kOk && c != GrpcPort::Check::kDelivered) r->End(check_status(d_, c));
  return r->Returned();
}

grpc::ServerUnaryReactor* KernelService::Trap(grpc::CallbackServerContext* ctx,
                                              const v1::LwpRef* req, v1::SyscallReturn* resp) {
  if (d_.shutting_down.load(std::memory_order_relaxed)) return finish_now(ctx, kShuttingDown);
  auto s = authenticate(d_, ctx);
  if (s == nullptr) return finish_now(ctx, kBadToken);
  auto* r = new EntryReactor(std::move(s), req->lid(), resp);
  auto& ss = r->session();
  Status st = enter_kernel(d_, *ss.port, r->lid(), r, 0,
                           [&] { return d_.kernel.trap(ss.proc, r->lid()); });
  if (!st.ok()) r->End(st);
  return r->Returned();
}

grpc::ServerUnaryReactor* KernelService::Call(grpc::CallbackServerContext* ctx,
                                              const v1::LwpCall* req, v1::SyscallReturn* resp) {
  if (d_.shutting_down.load(std::memory_order_relaxed)) return finish_now(ctx, kShuttingDown);
  auto s = authenticate(d_, ctx);
  if (s == nullptr) return finish_now(ctx, kBadToken);
  auto args = syscall_from_wire(req->syscall());
  if (!args)
    return finish_now(ctx, Status(StatusCode::INVALID_ARGUMENT, "LwpCall carries no syscall"));
  auto* r = new EntryReactor(std::move(s), req->lid(), resp);
  auto& ss = r->session();
  Status st = enter_kernel(d_, *ss.port, r->lid(), r, emul::syscall_number(*args), [&] {
    return d_.kernel.syscall(ss.proc, r->lid(), std::move(*args));
  });
  if (!st.ok()) r->End(st);
  return r->Returned();
}

}  // namespace lwpd::server
