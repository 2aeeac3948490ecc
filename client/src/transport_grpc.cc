// The gRPC transport (transport.h): the shim's syscall path over the lwpd.v1 Kernel service.
// The only file of the shim that includes gRPC headers (wire_codec.h has the messages).
//
//   Session stream   one per process: Attach -> Attached, then the process's events
//                    (Kick, LwpSignal, LwpExited, ProcExited) read by the control thread,
//                    and the SA_RESTART mask written by any thread (wmu_).
//   LwpChannel       one bidi stream per LWP: Open, then syscall -> return, trap -> resume,
//                    _lwp_exit -> exited. Used by one thread at a time (transport.h).
//   Trap RPC         asynchronous unary, for an LWP kicked in user mode: its kick handler
//                    writes the channel to the dispatcher's pipe and futex-waits; the
//                    dispatcher thread sends the Trap, whose callback (a libgrpc thread)
//                    wakes it. No gRPC call from a signal handler.
// Every RPC but Session carries the session token ("lwpd-token" metadata).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>

#include <grpcpp/grpcpp.h>

#include "futex.h"
#include "sanitizer.h"
#include "transport.h"
#include "wire_codec.h"  // before the generated gRPC header (the sigmask macro)
#include "lwpd/v1/kernel.grpc.pb.h"

namespace lwpd::client {
namespace {

constexpr const char* kTokenKey = "lwpd-token";

ChannelEnd broken(const char* what) {
  ChannelEnd e;
  e.kind = ChannelEnd::Kind::kBroken;
  e.what = what;
  return e;
}

ChannelEnd proc_exited(const pb::ExitStatus& st) {
  ChannelEnd e;
  e.kind = ChannelEnd::Kind::kProcExited;
  e.status = decode_exit(st);
  return e;
}

ChannelEnd lwp_gone() {
  ChannelEnd e;
  e.kind = ChannelEnd::Kind::kLwpGone;
  return e;
}

// Trap completion word (futex): waiting, resumed, or the LWP is gone.
enum TrapState : uint32_t { kTrapWaiting = 0, kTrapResumed = 1, kTrapGone = 2 };

class GrpcChannel;

// ---- the process ---------------------------------------------------------------------------

class GrpcTransport final : public Transport {
 public:
  explicit GrpcTransport(std::string endpoint) : endpoint_(std::move(endpoint)) {}
  ~GrpcTransport() override {
    if (pipe_r_ >= 0) close(pipe_r_);
    if (pipe_w_ >= 0) close(pipe_w_);
  }

  const char* name() const override { return "grpc"; }
  const std::string& session_token() const override { return token_; }
  int attach(const AttachInfo& info, AttachReply* out) override;
  void start(EventSink sink) override;
  void send_sigrestart(uint64_t nb_mask) override;
  std::unique_ptr<LwpChannel> open_channel(nb::lwpid_t lid) override;
  std::string find_lwpctl_path(nb::pid_t pid) override;
  void stop() override;

  // For the channels.
  void add_token(grpc::ClientContext* ctx) const { ctx->AddMetadata(kTokenKey, token_); }
  pb::Kernel::Stub& stub() { return *stub_; }
  int pipe_w() const { return pipe_w_; }
  // The process is being detached: the end of the session is expected from here on.
  void expect_end() { stopping_.store(true); }

 private:
  void control_main();
  void dispatcher_main();
  void on_session_event(const pb::SessionEvent& ev);

  std::string endpoint_;
  std::shared_ptr<grpc::Channel> chan_;
  std::unique_ptr<pb::Kernel::Stub> stub_;
  std::unique_ptr<pb::Inspect::Stub> inspect_;
  grpc::ClientContext sess_ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::SessionRequest, pb::SessionEvent>> sess_;
  bool sess_finished_ = false;  // Finish() was called (control thread, then stop())
  std::string token_;
  std::mutex wmu_;  // leaf: Session writes
  EventSink sink_;
  int pipe_r_ = -1, pipe_w_ = -1;  // kick handler -> dispatcher (GrpcChannel*)
  std::thread control_, dispatcher_;
  std::atomic<bool> stopping_{false};
};

// ---- one LWP's channel ---------------------------------------------------------------------

class GrpcChannel final : public LwpChannel {
 public:
  GrpcChannel(GrpcTransport& t, nb::lwpid_t lid) : t_(t), lid_(lid) {}
  ~GrpcChannel() override { close(); }

  ChannelEnd start(uint64_t* gen) override {
    ctx_ = std::make_unique<grpc::ClientContext>();
    t_.add_token(ctx_.get());
    stream_ = t_.stub().LwpChannel(ctx_.get());
    pb::LwpRequest rq;
    rq.mutable_open()->set_lid(lid_);
    if (!stream_->Write(rq)) return broken("cannot open an LWP channel");
    SysReply r;
    ChannelEnd e = read(&r);  // RETURN_START
    *gen = r.gen;
    return e;
  }

  ChannelEnd call(const SysRequest& sc, SysReply* out) override {
    pb::LwpRequest rq;
    encode_request(sc, rq.mutable_syscall());
    LWPD_KERNEL_ENTRY();
    if (!stream_->Write(rq)) return broken("the LWP channel broke");
    return read(out);
  }

  ChannelEnd trap(uint64_t gen, uint64_t* new_gen) override {
    pb::LwpRequest rq;
    rq.set_trap(gen);
    LWPD_KERNEL_ENTRY();
    if (!stream_->Write(rq)) return broken("the LWP channel broke");
    SysReply r;
    ChannelEnd e = read(&r);
    *new_gen = r.gen;
    return e;
  }

  ChannelEnd exit() override {
    pb::LwpRequest rq;
    rq.mutable_syscall()->mutable_lwp_exit();
    LWPD_KERNEL_ENTRY();
    if (!stream_->Write(rq)) return broken("the LWP channel broke");
    pb::LwpEvent ev;
    while (stream_->Read(&ev)) {
      if (ev.has_proc_exited()) return proc_exited(ev.proc_exited());
      if (ev.msg_case() == pb::LwpEvent::kExited) return lwp_gone();
    }
    return broken("the LWP channel broke during _lwp_exit");
  }

  void exit_for_detach() override {
    t_.expect_end();
    if (!stream_) return;
    pb::LwpRequest rq;
    rq.mutable_syscall()->mutable_proc_exit()->set_status(0);
    pb::LwpEvent ev;
    if (stream_->Write(rq)) {
      while (stream_->Read(&ev) && ev.msg_case() == pb::LwpEvent::kRet) {
      }
    }
  }

  // ASYNC-SIGNAL-SAFE (the kick handler; transport.h): atomics, write(2) and futex only.
  // The dispatcher thread makes the Trap RPC; its callback sets trap_state_.
  bool trap_from_handler(uint64_t, uint64_t* new_gen) override {
    trap_state_.store(kTrapWaiting);
    GrpcChannel* msg = this;
    while (write(t_.pipe_w(), &msg, sizeof msg) < 0 && errno == EINTR) {
    }
    uint32_t v;
    while ((v = trap_state_.load(std::memory_order_acquire)) == kTrapWaiting)
      futex_wait(&trap_state_, kTrapWaiting);
    if (v == kTrapGone) return false;
    *new_gen = trap_gen_;
    return true;
  }

  void close() override {
    if (!stream_) return;
    ctx_->TryCancel();
    (void)stream_->Finish();
    stream_.reset();
    ctx_.reset();
  }

  nb::lwpid_t lid() const { return lid_; }
  // The Trap's completion (a libgrpc thread).
  void trap_done(bool resumed, uint64_t gen) {
    if (resumed) trap_gen_ = gen;
    trap_state_.store(resumed ? kTrapResumed : kTrapGone, std::memory_order_release);
    futex_wake(&trap_state_);
  }

 private:
  // The next return on the channel; what ended it otherwise.
  ChannelEnd read(SysReply* out) {
    pb::LwpEvent ev;
    if (!stream_->Read(&ev)) return broken("the LWP channel broke");
    switch (ev.msg_case()) {
      case pb::LwpEvent::kRet:
        LWPD_KERNEL_RETURN();
        decode_return(ev.ret(), out);
        return ChannelEnd{};
      case pb::LwpEvent::kProcExited:
        return proc_exited(ev.proc_exited());
      case pb::LwpEvent::kExited:
        return lwp_gone();
      default:
        return broken("unexpected LWP channel event");
    }
  }

  GrpcTransport& t_;
  const nb::lwpid_t lid_;
  // Owned by the thread using the channel (transport.h).
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::LwpRequest, pb::LwpEvent>> stream_;
  std::atomic<uint32_t> trap_state_{kTrapResumed};  // futex word, see TrapState
  uint64_t trap_gen_ = 0;                           // written before trap_state_ = kTrapResumed
};

// ---- GrpcTransport ---------------------------------------------------------------------------

// Session handshake: Attach -> Attached. Errors as Transport::attach().
int GrpcTransport::attach(const AttachInfo& info, AttachReply* out) {
  // The daemon's metadata bound (server/main.cc, kMaxMetadataBytes), stated rather than
  // left to gRPC's default; the shim's own metadata is one short token.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, 8 * 1024);
  chan_ = grpc::CreateCustomChannel(endpoint_, grpc::InsecureChannelCredentials(), args);
  stub_ = pb::Kernel::NewStub(chan_);
  inspect_ = pb::Inspect::NewStub(chan_);
  sess_ = stub_->Session(&sess_ctx_);
  pb::SessionRequest rq;
  rq.mutable_attach()->set_comm(info.comm);
  rq.mutable_attach()->set_host_pid(info.host_pid);
  pb::SessionEvent ev;
  if (!sess_->Write(rq) || !sess_->Read(&ev)) {
    grpc::Status st = sess_->Finish();
    sess_finished_ = true;
    switch (st.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        return ECONNREFUSED;
      case grpc::StatusCode::RESOURCE_EXHAUSTED:  // a process limit (README "Security and limits")
        return EAGAIN;
      default:
        return EPROTO;
    }
  }
  if (!ev.has_attached()) {
    sess_ctx_.TryCancel();
    (void)sess_->Finish();
    sess_finished_ = true;
    return EPROTO;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    const int e = errno;
    sess_ctx_.TryCancel();
    (void)sess_->Finish();
    sess_finished_ = true;
    return e;
  }
  pipe_r_ = fds[0];
  pipe_w_ = fds[1];
  out->pid = ev.attached().pid();
  token_ = ev.attached().token();
  out->lwpctl_path = ev.attached().lwpctl_path();
  out->ncpus = ev.attached().ncpus();
  return 0;
}

void GrpcTransport::start(EventSink sink) {
  sink_ = std::move(sink);
  control_ = std::thread([this] { control_main(); });
  dispatcher_ = std::thread([this] { dispatcher_main(); });
}

void GrpcTransport::send_sigrestart(uint64_t nb_mask) {
  std::lock_guard g(wmu_);
  pb::SessionRequest rq;
  rq.set_sigrestart(nb_mask);
  sess_->Write(rq);
}

std::unique_ptr<LwpChannel> GrpcTransport::open_channel(nb::lwpid_t lid) {
  return std::make_unique<GrpcChannel>(*this, lid);
}

// Older daemons do not name the file in Attached: ask the inspection service.
std::string GrpcTransport::find_lwpctl_path(nb::pid_t pid) {
  grpc::ClientContext ctx;
  pb::ListLwpsRequest rq;
  rq.set_pid(pid);
  pb::ListLwpsReply rep;
  if (inspect_->ListLwps(&ctx, rq, &rep).ok()) return rep.proc().lwpctl_path();
  return "";
}

void GrpcTransport::stop() {
  stopping_.store(true);
  sess_ctx_.TryCancel();
  if (pipe_w_ >= 0) close(pipe_w_);  // the dispatcher reads EOF
  pipe_w_ = -1;
  if (dispatcher_.joinable()) dispatcher_.join();
  if (control_.joinable()) control_.join();
  if (pipe_r_ >= 0) close(pipe_r_);
  pipe_r_ = -1;
  if (!sess_finished_) (void)sess_->Finish();
  sess_finished_ = true;
}

// The event a Session message carries; false for one this version does not know (ignored).
bool event_of(const pb::SessionEvent& ev, Event* out) {
  Event& e = *out;
  switch (ev.msg_case()) {
    case pb::SessionEvent::kKick:
      e.kind = Event::Kind::kKick;
      e.lid = ev.kick().lid();
      e.gen = ev.kick().gen();
      break;
    case pb::SessionEvent::kSignal:
      e.kind = Event::Kind::kSignal;
      e.lid = ev.signal().lid();
      e.nb_signo = ev.signal().info().signo();
      break;
    case pb::SessionEvent::kLwpExited:
      e.kind = Event::Kind::kLwpExited;
      e.lid = ev.lwp_exited().lid();
      break;
    case pb::SessionEvent::kProcExited:
      e.kind = Event::Kind::kProcExited;
      e.status = decode_exit(ev.proc_exited());
      break;
    default:
      return false;
  }
  return true;
}

void GrpcTransport::control_main() {
  pb::SessionEvent ev;
  while (sess_->Read(&ev)) {
    Event e;
    if (event_of(ev, &e)) sink_(e);
  }
  if (stopping_.load()) return;
  grpc::Status st = sess_->Finish();
  sess_finished_ = true;
  Event lost;
  lost.kind = Event::Kind::kLost;
  lost.what = "the session with lwpd ended (" + st.error_message() + ")";
  sink_(lost);
}

struct TrapCall {
  grpc::ClientContext ctx;
  pb::LwpRef req;
  pb::SyscallReturn resp;
};

void GrpcTransport::dispatcher_main() {
  for (;;) {
    GrpcChannel* ch = nullptr;
    ssize_t n = read(pipe_r_, &ch, sizeof ch);
    if (n == 0) return;
    if (n != static_cast<ssize_t>(sizeof ch)) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    auto* t = new TrapCall;
    add_token(&t->ctx);
    t->req.set_lid(ch->lid());
    // The callback runs on a libgrpc thread after the Trap's return: for TSan, a kernel
    // entry and its return; the release comes once the callback object exists.
    std::function<void(grpc::Status)> done = [this, t, ch](grpc::Status st) {
      LWPD_KERNEL_RETURN();
      if (!st.ok() && !stopping_.load() && st.error_code() != grpc::StatusCode::ABORTED)
        fprintf(stderr, "liblwpclient: Trap(%d) failed: %s\n", ch->lid(),
                st.error_message().c_str());
      ch->trap_done(st.ok(), t->resp.gen());
      delete t;
    };
    LWPD_KERNEL_ENTRY();
    stub_->async()->Trap(&t->ctx, &t->req, &t->resp, std::move(done));
  }
}

}  // namespace

std::unique_ptr<Transport> make_grpc_transport(const std::string& endpoint) {
  return std::make_unique<GrpcTransport>(endpoint);
}

}  // namespace lwpd::client
