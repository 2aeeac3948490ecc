// The Trace service: debuggers for whoever holds the daemon's admin token without being
// an emulated process (lwpstat trace, a debugger in any language). The tracing itself is
// the emulated kernel's (Kernel::debugger_*, kern_ptrace.cc); this file maps it to gRPC.
//
// Reactors and what ends them:
//   SessionReactor  one debugger. Opened in the constructor (admin token checked); the
//                   first event is TraceOpened. Ends -- debugger closed, i.e. its
//                   tracees killed and its pending Waits finished -- when the client
//                   half-closes (OK), cancels or disconnects (CANCELLED), or the daemon
//                   shuts down (shutdown(): UNAVAILABLE); OnDone closes it in any case.
//   WaitReactor     one Wait, a PendingRpc (pending_rpc.h: the rule for every RPC the
//                   kernel answers later). Finished at once, or by the kernel's on_change callback
//                   (which re-waits: a change may be another tracee's, or a stop already
//                   collected), or by OnCancel when it takes the registration back.
//                   Exactly one of them owns the reactor at a time: the registration
//                   exists only while no thread does, and it is claimed exactly once
//                   (fired by the kernel, or debugger_wait_cancel returning true).
//                   A caller that gives up is seen late (its cancellation is processed
//                   after other calls of the same client): a stop or exit collected for
//                   a Wait whose reply never arrived (IsCancelled in OnDone) is made
//                   collectable again (debugger_wait_undo), so the next Wait sees it; a
//                   delivered exit is forgotten (debugger_wait_delivered).
//   Ptrace          synchronous: the default reactor.
//
// Locking: Table::mu_ is taken with no kernel lock held and is held only around the map
// and the non-blocking FinishNow of a session stream (Table::mu_ -> the stream's leaf).
// Kernel calls are made holding nothing of ours.

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/pending_rpc.h"
#include "server/services.h"
#include "server/stream.h"
#include "server/wire.h"

namespace lwpd::server {

namespace {

using grpc::Status;
using grpc::StatusCode;

const Status kNoAdmin(StatusCode::UNAUTHENTICATED,
                      "admin token missing or wrong (metadata lwpd-admin-token)");
const Status kNoTrace(StatusCode::UNAUTHENTICATED,
                      "trace token missing or unknown (metadata lwpd-trace-token)");
const Status kShuttingDown(StatusCode::UNAVAILABLE, "lwpd is shutting down");

// One open debugger, shared by its session reactor and the calls made with its token.
struct TraceSession {
  std::string token;
  emul::ProcRef dbg;
  int32_t pid = 0;
};

class SessionReactor;

}  // namespace

class TraceService::Table {
 public:
  // False after shutdown(): the session must not open.
  bool add(const std::shared_ptr<TraceSession>& s, SessionReactor* r) EXCLUDES(mu_) {
    MutexLock g(mu_);
    if (closed_) return false;
    by_token_.emplace(s->token, Entry{s, r});
    return true;
  }
  void remove(const std::string& token) EXCLUDES(mu_) {
    MutexLock g(mu_);
    by_token_.erase(token);
  }
  std::shared_ptr<TraceSession> find(const grpc::CallbackServerContext* ctx) const {
    const auto& md = ctx->client_metadata();
    auto it = md.find("lwpd-trace-token");
    if (it == md.end()) return nullptr;
    MutexLock g(mu_);
    auto e = by_token_.find(std::string(it->second.data(), it->second.size()));
    return e == by_token_.end() ? nullptr : e->second.s;
  }
  // Finishes every session's stream; returns their debuggers for the caller to close.
  std::vector<emul::ProcRef> shutdown(const Status& st);
  size_t size() const EXCLUDES(mu_) {
    MutexLock g(mu_);
    return by_token_.size();
  }

 private:
  struct Entry {
    std::shared_ptr<TraceSession> s;
    SessionReactor* r;  // valid while in the map: OnDone removes it before deleting
  };
  mutable Mutex mu_{LockRank::kTraceTable};
  bool closed_ GUARDED_BY(mu_) = false;
  std::unordered_map<std::string, Entry> by_token_ GUARDED_BY(mu_);
};

namespace {

Status closed_status(const Daemon& d) {
  if (d.shutting_down.load(std::memory_order_relaxed)) return kShuttingDown;
  return Status(StatusCode::ABORTED, "the trace session has ended");
}

// ---- Session --------------------------------------------------------------------------

class SessionReactor final
    : public QueuedBidiReactor<v1::TraceSessionRequest, v1::TraceSessionEvent> {
 public:
  SessionReactor(Daemon& d, TraceService::Table& t, const grpc::CallbackServerContext* ctx)
      : d_(d), t_(t) {
    Status st = Open(ctx);
    if (!st.ok()) {
      FinishNow(st);
      return;
    }
    v1::TraceSessionEvent ev;
    ev.mutable_opened()->set_pid(s_->pid);
    ev.mutable_opened()->set_token(s_->token);
    Send(std::move(ev));
    Read(&req_);
  }

  void OnReadDone(bool ok) override {
    ReactionScope rs(HbKey());
    if (!ok) {  // half-closed by the client, or broken: the session ends
      End(Status::OK);
      return;
    }
    if (!req_.name().empty())
      spdlog::info("trace session: debugger pid {} is '{}'", s_->pid, req_.name().substr(0, 64));
    Read(&req_);
  }

  void OnCancel() override {
    ReactionScope rs(HbKey());
    End(Status(StatusCode::CANCELLED, "trace session cancelled"));
  }

  void OnDone() override {
    LWPD_REACTION_BEGINS(HbKey());  // every other reaction has returned
    Close();
    delete this;
  }

 private:
  // Checks the admin token and opens the debugger.
  Status Open(const grpc::CallbackServerContext* ctx) {
    if (!is_admin(d_, ctx)) return kNoAdmin;
    if (d_.shutting_down.load(std::memory_order_relaxed)) return kShuttingDown;
    auto r = d_.kernel.debugger_open(0);  // uid 0: the admin token may trace any process
    if (r.error() == netbsd::Errno::kEBUSY)
      return Status(StatusCode::FAILED_PRECONDITION,
                    "lwpd replays a schedule record (--sched-replay): a debugger's requests "
                    "come from the record");
    if (!r.ok())
      return Status(StatusCode::RESOURCE_EXHAUSTED,
                    std::string("cannot open a debugger: ") + netbsd::errno_name(r.error()));
    auto s = std::make_shared<TraceSession>();
    s->dbg = r.release();
    s->pid = d_.kernel.proc_pid(s->dbg);
    s->token = random_token();
    if (!t_.add(s, this)) {
      d_.kernel.debugger_close(s->dbg);
      return kShuttingDown;
    }
    s_ = std::move(s);
    spdlog::info("trace session: debugger pid {} opened", s_->pid);
    return Status::OK;
  }

  // The debugger's end (once): its token stops working first, then the kernel kills its
  // tracees and finishes its pending Waits.
  void Close() {
    if (s_ == nullptr || closed_.exchange(true)) return;
    t_.remove(s_->token);
    d_.kernel.debugger_close(s_->dbg);
    spdlog::info("trace session: debugger pid {} closed", s_->pid);
  }
  void End(const Status& st) {
    Close();
    FinishNow(st);
  }

  Daemon& d_;
  TraceService::Table& t_;
  std::shared_ptr<TraceSession> s_;  // set once by the constructor
  v1::TraceSessionRequest req_;      // owned by the one outstanding read
  std::atomic<bool> closed_{false};
};

// ---- Wait -----------------------------------------------------------------------------

std::atomic<uint64_t> g_wait_key{1};

class WaitReactor final : public PendingRpc {
 public:
  WaitReactor(Daemon& d, grpc::CallbackServerContext* ctx, std::shared_ptr<TraceSession> s,
              emul::WaitArgs a, v1::SyscallReturn* resp)
      : PendingRpc("wait cancelled"),
        d_(d),
        ctx_(ctx),
        s_(std::move(s)),
        a_(a),
        resp_(resp),
        cancelled_(std::make_shared<Flag>()) {}

  // Returns the reactor to gRPC (from the method handler).
  WaitReactor* Start() {
    LWPD_HANDOFF_TO_GRPC(this);
    Pass(this);
    return this;
  }

  void Done() override {
    // The caller gave up (deadline, cancel, disconnect) while a stop or exit it collected
    // was on its way: without this the tracee would stay stopped with nobody knowing, or
    // its exit status would be lost.
    if (collected_ != 0 && ctx_->IsCancelled()) {
      spdlog::debug("trace: debugger pid {}: {} of pid {} not delivered, collectable again",
                    s_->pid, collected_exit_ ? "exit" : "stop", collected_);
      d_.kernel.debugger_wait_undo(s_->dbg, collected_);
    } else if (collected_exit_) {
      d_.kernel.debugger_wait_delivered(s_->dbg, collected_);
    }
  }

 private:
  // A cancel also raises the flag first, for a Pass running meanwhile to see.
  bool Withdraw(Why why) override {
    if (why == Why::kCancelled) cancelled_->set.store(true, std::memory_order_seq_cst);
    return d_.kernel.debugger_wait_cancel(s_->dbg, key_);
  }

  struct Flag {
    std::atomic<bool> set{false};
  };

  // One look, by the thread that owns the reactor (no registration exists). Once
  // debugger_wait has registered the callback, `self` may be finished and deleted by
  // another thread at any moment: from then on only copies are used.
  static void Pass(WaitReactor* self) {
    if (self->cancelled_->set.load(std::memory_order_seq_cst)) {
      self->End(Status(StatusCode::CANCELLED, "wait cancelled"));
      return;
    }
    emul::Kernel& k = self->d_.kernel;
    const emul::ProcRef dbg = self->s_->dbg;
    const int32_t dpid = self->s_->pid, wpid = self->a_.pid;
    const uint64_t key = self->key_;
    const std::shared_ptr<Flag> cancelled = self->cancelled_;
    auto w = k.debugger_wait(dbg, self->a_, key, [self] { Pass(self); });
    switch (w.kind) {
      case emul::Kernel::DebuggerWait::kDone:
        if (w.ret.wait.kind != emul::WaitOut::kNone) {
          self->collected_ = static_cast<int32_t>(w.ret.retval);
          self->collected_exit_ = w.ret.wait.kind != emul::WaitOut::kStopped;
        }
        return_to_wire(w.ret, 0, self->resp_);
        self->End(Status::OK);
        return;
      case emul::Kernel::DebuggerWait::kClosed:
        self->End(closed_status(self->d_));
        return;
      case emul::Kernel::DebuggerWait::kPending:
        spdlog::debug("trace: debugger pid {} waits for pid {}", dpid, wpid);
        // A cancel that came before the registration could not take it: take it now. The
        // seq_cst flag and the kernel's lock make one of the two see the other.
        if (cancelled->set.load(std::memory_order_seq_cst) && k.debugger_wait_cancel(dbg, key))
          self->End(Status(StatusCode::CANCELLED, "wait cancelled"));
        return;
    }
  }

  Daemon& d_;
  grpc::CallbackServerContext* const ctx_;
  const std::shared_ptr<TraceSession> s_;
  const emul::WaitArgs a_;
  int32_t collected_ = 0;        // pid whose stop or exit this Wait collected (by the
  bool collected_exit_ = false;  // owning thread); an exit (or a kill by a signal)
  v1::SyscallReturn* const resp_;
  const uint64_t key_ = g_wait_key.fetch_add(1, std::memory_order_relaxed);
  const std::shared_ptr<Flag> cancelled_;  // outlives the reactor for Pass's last look
};

grpc::ServerUnaryReactor* finish_now(grpc::CallbackServerContext* ctx, const Status& st) {
  auto* r = ctx->DefaultReactor();
  r->Finish(st);
  return r;
}

// The prologue of Ptrace and Wait: the session their trace token names (counted as a kernel
// entry), or nullptr with `*st` set.
std::shared_ptr<TraceSession> admit(Daemon& d, const TraceService::Table& table,
                                    const grpc::CallbackServerContext* ctx, Status* st) {
  if (d.shutting_down.load(std::memory_order_relaxed)) {
    *st = kShuttingDown;
    return nullptr;
  }
  std::shared_ptr<TraceSession> s = table.find(ctx);
  if (s == nullptr) {
    *st = kNoTrace;
    return nullptr;
  }
  d.entries.fetch_add(1, std::memory_order_relaxed);
  return s;
}

}  // namespace

std::vector<emul::ProcRef> TraceService::Table::shutdown(const Status& st) {
  std::vector<emul::ProcRef> dbgs;
  MutexLock g(mu_);
  closed_ = true;
  for (auto& [token, e] : by_token_) {
    dbgs.push_back(e.s->dbg);
    e.r->FinishNow(st);  // non-blocking; OnDone (which needs mu_) runs later
  }
  return dbgs;
}

TraceService::TraceService(Daemon& d) : d_(d), table_(std::make_unique<Table>()) {}

TraceService::~TraceService() = default;

grpc::ServerBidiReactor<v1::TraceSessionRequest, v1::TraceSessionEvent>* TraceService::Session(
    grpc::CallbackServerContext* ctx) {
  return new SessionReactor(d_, *table_, ctx);
}

grpc::ServerUnaryReactor* TraceService::Ptrace(grpc::CallbackServerContext* ctx,
                                               const v1::PtraceArgs* req, v1::SyscallReturn* resp) {
  Status st;
  std::shared_ptr<TraceSession> s = admit(d_, *table_, ctx, &st);
  if (s == nullptr) return finish_now(ctx, st);
  std::optional<emul::SysReturn> r = d_.kernel.debugger_ptrace(s->dbg, ptrace_from_wire(*req));
  if (!r) return finish_now(ctx, closed_status(d_));
  return_to_wire(*r, 0, resp);
  return finish_now(ctx, Status::OK);
}

grpc::ServerUnaryReactor* TraceService::Wait(grpc::CallbackServerContext* ctx,
                                             const v1::WaitArgs* req, v1::SyscallReturn* resp) {
  Status st;
  std::shared_ptr<TraceSession> s = admit(d_, *table_, ctx, &st);
  if (s == nullptr) return finish_now(ctx, st);
  return (new WaitReactor(d_, ctx, std::move(s), wait_from_wire(*req), resp))->Start();
}

void TraceService::shutdown(const Status& st) {
  for (const emul::ProcRef& dbg : table_->shutdown(st)) d_.kernel.debugger_close(dbg);
}

size_t TraceService::sessions() const { return table_->size(); }

}  // namespace lwpd::server
