// fuzz_requests: every request of the lwpd.v1 gRPC API, decoded from fuzz bytes and
// executed by the daemon's real services (Kernel, Inspect, Admin, Trace) on an in-process
// gRPC server.
//
// Why in-process gRPC and not the handlers alone: the handlers are reactors that only
// make sense inside gRPC's callback machinery (metadata, cancellation, Finish/OnDone), and
// an in-process channel keeps every byte of that path -- deserialisation of the request
// included -- without a socket. The daemon (kernel, session table, services, server) is
// built once per fuzzing process, as lwpd's main() builds it; each input attaches its own
// sessions and must leave the daemon as it found it (no session, no process, no trace
// session), which the run checks at its end.
//
// Input (requests_format.h): a header, then steps. A unary step's bytes are the request.
// Bytes that do not parse as the request type are sent as they are (the server must refuse
// them cleanly); bytes that parse have their IDs translated first and are sent re-encoded:
// pids and LIDs differ from run to run (the daemon lives on and allocates them upwards), so
// an ID field (pid, lid, target, wait_for, unpark, targets, lwpid) holding 1..8 names the
// run's n-th known ID instead -- the attached processes' pids, then the LIDs that
// _lwp_create calls returned. The step also picks the metadata (a session token, the admin
// token, the trace token, a wrong one or none). A streaming step parses its bytes into the request message(s) on the client side
// (the typed stub needs messages) and runs the stream to its end. Blocking calls (a park
// without timeout, a tracer's Wait, an admin suspend) are not waited for beyond a few ms:
// they must end when the input's sessions end, at the latest.
//
// Findings abort with a message: a call still pending 20 s after its sessions ended, a
// session or process left behind, or anything ASan/UBSan/LSan see in the daemon's code.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "emul/kernel.h"
#include "fuzz_input.h"
#include "requests_format.h"
#include "server/hb_annotate.h"
#include "server/services.h"
#include "server/sessions.h"
#include "server/watch.h"

namespace lwpd::fuzz {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace v1 = ::lwpd::v1;

constexpr const char* kAdminToken = "0123456789abcdef0123456789abcdef";
constexpr auto kStepWait = 5ms;       // how long a step waits for its unary call
constexpr auto kCallDeadline = 30s;   // far beyond the end of the run (see finding below)
// After the sessions end, everything must be gone within this (generous: TSan replays on a
// loaded machine; a ctest run once took 44 s in all without a reproducible cause).
constexpr auto kCleanupLimit = 20s;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_requests: %s\n", what.c_str());
  std::abort();
}

// The daemon, assembled as server/main.cc does, on an in-process channel. Built once and
// never destroyed: its threads (vCPUs, janitor, watch pump, gRPC) run until exit.
struct Daemon {
  server::WatchHub watch;
  std::unique_ptr<emul::Kernel> kernel;
  std::unique_ptr<server::Sessions> sessions;
  std::unique_ptr<server::Daemon> d;
  std::unique_ptr<server::KernelService> kernel_svc;
  std::unique_ptr<server::InspectService> inspect_svc;
  std::unique_ptr<server::AdminService> admin_svc;
  std::unique_ptr<server::TraceService> trace_svc;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> generic;
  std::unique_ptr<v1::Kernel::Stub> kstub;
  std::unique_ptr<v1::Inspect::Stub> istub;
  std::unique_ptr<v1::Trace::Stub> tstub;

  Daemon() {
    // A log line per session (spdlog) or per invalid UTF-8 string parsed (protobuf) would
    // drown the fuzzer's own output. LWPD_FUZZ_LOG=debug (any spdlog level) turns the
    // daemon's log on, to read what one input does.
    const char* level = std::getenv("LWPD_FUZZ_LOG");
    spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::off);
    google::protobuf::SetLogHandler(nullptr);
    emul::KernelConfig cfg;
    // One vCPU per attached process: each main LWP stays in user mode after its Start, and
    // a second one could not start while the first held the only vCPU.
    cfg.ncpus = 2;
    cfg.quantum = std::chrono::hours(1);  // no time slicing: requests decide
    cfg.pin_cpus = false;
    // vCPU revocation on, as in the daemon (which defaults to 2 s): an input that kicks an LWP
    // its raw client never traps exercises the revocation path too.
    cfg.kick_timeout = std::chrono::milliseconds(250);
    cfg.observer = &watch;
    kernel = std::make_unique<emul::Kernel>(cfg);
    sessions = std::make_unique<server::Sessions>(*kernel);
    d.reset(new server::Daemon{.kernel = *kernel, .sessions = *sessions});
    d->uid = 0;
    d->admin_token = kAdminToken;
    d->version = "fuzz";
    d->watch = &watch;
    kernel_svc = std::make_unique<server::KernelService>(*d);
    inspect_svc = std::make_unique<server::InspectService>(*d);
    admin_svc = std::make_unique<server::AdminService>(*d);
    trace_svc = std::make_unique<server::TraceService>(*d);
    grpc::ServerBuilder b;
    b.RegisterService(kernel_svc.get());
    b.RegisterService(inspect_svc.get());
    b.RegisterService(admin_svc.get());
    b.RegisterService(trace_svc.get());
    server = b.BuildAndStart();
    if (server == nullptr) finding("cannot start the in-process server");
    channel = server->InProcessChannel(grpc::ChannelArguments());
    generic = std::make_unique<grpc::GenericStub>(channel);
    kstub = v1::Kernel::NewStub(channel);
    istub = v1::Inspect::NewStub(channel);
    tstub = v1::Trace::NewStub(channel);
  }
};

Daemon& daemon() {
  static Daemon* d = new Daemon;  // never freed (see Daemon)
  return *d;
}

// An attached emulated process: its Session stream, kept open for the whole run.
struct Attached {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionEvent>> stream;
  std::string token;
  int32_t pid = 0;
};

// A unary call in flight; completion is reported to the run's condition variable.
struct Pending {
  grpc::ClientContext ctx;
  grpc::ByteBuffer req, resp;
  bool done = false;  // [Run::mu_]
};

class Run {
 public:
  explicit Run(FuzzInput& in) : in_(in), dm_(daemon()) {}
  void go();

 private:
  void attach(int n);
  void open_trace();
  void step();
  Pending& unary(const char* method, const std::string& body, uint8_t md);
  void channel_step(uint8_t md);
  void session_step();
  void watch_step();
  void trace_session_step(uint8_t md);
  void add_metadata(grpc::ClientContext& ctx, uint8_t md) const;
  std::string request_bytes(unsigned rpc, std::string body);
  void translate_ids(google::protobuf::Message& m) const;
  void learn_ids(unsigned rpc, const std::string& sent, Pending& p);
  void teardown();

  FuzzInput& in_;
  Daemon& dm_;
  std::vector<std::unique_ptr<Attached>> procs_;
  std::unique_ptr<grpc::ClientContext> trace_ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::TraceSessionRequest, v1::TraceSessionEvent>>
      trace_;
  std::string trace_token_;
  std::vector<int32_t> ids_;  // pids of the attached processes, then created LIDs
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Pending>> calls_;  // completed ones too (freed at the end)
};

void Run::go() {
  const uint8_t h = in_.u8();
  attach(1 + (h & 1));
  if ((h & 2) != 0) open_trace();
  for (int i = 0; i < kMaxRequestSteps && !in_.done(); i++) step();
  teardown();
}

void Run::attach(int n) {
  for (int i = 0; i < n; i++) {
    auto a = std::make_unique<Attached>();
    a->stream = dm_.kstub->Session(&a->ctx);
    v1::SessionRequest att;
    att.mutable_attach()->set_comm("fuzz");
    v1::SessionEvent ev;
    if (!a->stream->Write(att) || !a->stream->Read(&ev) || !ev.has_attached())
      finding("attach failed");
    a->token = ev.attached().token();
    a->pid = ev.attached().pid();
    ids_.push_back(a->pid);
    // The main LWP's first dispatch: it is then in user mode, so Call reaches the kernel.
    grpc::ClientContext sctx;
    sctx.AddMetadata("lwpd-token", a->token);
    sctx.set_deadline(std::chrono::system_clock::now() + kCleanupLimit);
    v1::LwpRef ref;
    ref.set_lid(a->pid);
    v1::SyscallReturn ret;
    grpc::Status st = dm_.kstub->Start(&sctx, ref, &ret);
    if (!st.ok()) finding("Start failed: " + st.error_message());
    procs_.push_back(std::move(a));
  }
}

void Run::open_trace() {
  trace_ctx_ = std::make_unique<grpc::ClientContext>();
  trace_ctx_->AddMetadata("lwpd-admin-token", kAdminToken);
  trace_ = dm_.tstub->Session(trace_ctx_.get());
  v1::TraceSessionEvent ev;
  if (!trace_->Read(&ev) || !ev.has_opened()) finding("trace session did not open");
  trace_token_ = ev.opened().token();
  ids_.push_back(ev.opened().pid());
}

// Metadata byte: bits 0-2 the session token (0-1: attached process 0/1, 2: a wrong one,
// else none), bit 3 the admin token, bit 4 a wrong admin token, bit 5 the trace token,
// bit 6 a wrong trace token.
void Run::add_metadata(grpc::ClientContext& ctx, uint8_t md) const {
  const unsigned s = md & 7;
  if (s < 2 && s < procs_.size()) ctx.AddMetadata("lwpd-token", procs_[s]->token);
  if (s == 2) ctx.AddMetadata("lwpd-token", "ffffffffffffffffffffffffffffffff");
  if ((md & 0x08) != 0) ctx.AddMetadata("lwpd-admin-token", kAdminToken);
  if ((md & 0x10) != 0) ctx.AddMetadata("lwpd-admin-token", "0");
  if ((md & 0x20) != 0 && !trace_token_.empty()) ctx.AddMetadata("lwpd-trace-token", trace_token_);
  if ((md & 0x40) != 0) ctx.AddMetadata("lwpd-trace-token", "x");
}

void Run::step() {
  const unsigned rpc = in_.u8() % kNumRpcs;
  const uint8_t md = in_.u8();
  switch (rpc) {
    case kRpcLwpChannel: channel_step(md); return;
    case kRpcSession: session_step(); return;
    case kRpcWatch: watch_step(); return;
    case kRpcTraceSession: trace_session_step(md); return;
    default: break;
  }
  const std::string body = request_bytes(rpc, in_.bytes(kMaxBody));
  Pending& p = unary(kUnaryMethods[rpc], body, md);
  learn_ids(rpc, body, p);
}

// The request message of a unary RPC, empty.
std::unique_ptr<google::protobuf::Message> request_prototype(unsigned rpc) {
  switch (rpc) {
    case kRpcStart:
    case kRpcTrap: return std::make_unique<v1::LwpRef>();
    case kRpcCall: return std::make_unique<v1::LwpCall>();
    case kRpcListProcs: return std::make_unique<v1::ListProcsRequest>();
    case kRpcListLwps: return std::make_unique<v1::ListLwpsRequest>();
    case kRpcListCpus: return std::make_unique<v1::ListCpusRequest>();
    case kRpcStats: return std::make_unique<v1::StatsRequest>();
    case kRpcSignalProc: return std::make_unique<v1::SignalProcRequest>();
    case kRpcSuspendLwp:
    case kRpcResumeLwp: return std::make_unique<v1::LwpTarget>();
    case kRpcPtrace: return std::make_unique<v1::PtraceArgs>();
    case kRpcWait: return std::make_unique<v1::WaitArgs>();
    default: return nullptr;
  }
}

std::string Run::request_bytes(unsigned rpc, std::string body) {
  auto m = request_prototype(rpc);
  if (m == nullptr || !m->ParseFromString(body)) return body;
  translate_ids(*m);
  return m->SerializeAsString();
}

bool is_id_field(const std::string& name) {
  return name == "pid" || name == "lid" || name == "target" || name == "wait_for" ||
         name == "unpark" || name == "targets" || name == "lwpid";
}

void Run::translate_ids(google::protobuf::Message& m) const {
  using google::protobuf::FieldDescriptor;
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  auto map = [&](int32_t v) {
    return v >= 1 && v <= 8 && static_cast<size_t>(v) <= ids_.size() ? ids_[v - 1] : v;
  };
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) continue;  // no repeated messages in requests
      if (r->HasField(m, f)) translate_ids(*r->MutableMessage(&m, f));
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 && is_id_field(f->name())) {
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(m, f); j++)
          r->SetRepeatedInt32(&m, f, j, map(r->GetRepeatedInt32(m, f, j)));
      } else {
        r->SetInt32(&m, f, map(r->GetInt32(m, f)));
      }
    }
  }
}

// A finished _lwp_create names a new LWP: later steps may name it by index.
void Run::learn_ids(unsigned rpc, const std::string& sent, Pending& p) {
  if (rpc != kRpcCall) return;
  {
    std::lock_guard g(mu_);
    if (!p.done) return;
  }
  v1::LwpCall call;
  v1::SyscallReturn ret;
  if (!call.ParseFromString(sent) || !call.syscall().has_lwp_create()) return;
  std::vector<grpc::Slice> slices;
  if (!p.resp.Dump(&slices).ok()) return;
  std::string out;
  for (auto& sl : slices) out.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (ret.ParseFromString(out) && ret.error() == v1::ERRNO_OK && ret.retval() > 0 &&
      ids_.size() < 8)
    ids_.push_back(static_cast<int32_t>(ret.retval()));
}

Pending& Run::unary(const char* method, const std::string& body, uint8_t md) {
  auto* p = calls_.emplace_back(std::make_unique<Pending>()).get();
  add_metadata(p->ctx, md);
  p->ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  grpc::Slice slice(body);
  p->req = grpc::ByteBuffer(&slice, 1);
  // The callback runs on a gRPC thread after this hand-off, through Debian's uninstrumented
  // libgrpc: tell ThreadSanitizer (server/hb_annotate.h).
  LWPD_HANDOFF_TO_GRPC(p);
  dm_.generic->UnaryCall(&p->ctx, method, grpc::StubOptions(), &p->req, &p->resp,
                         [this, p](const grpc::Status&) {
                           // Acquire only: once `done` is set under mu_ the run may free p.
                           LWPD_REACTION_BEGINS(p);
                           std::lock_guard g(mu_);
                           p->done = true;
                           cv_.notify_all();
                         });
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, kStepWait, [&] { return p->done; });
  return *p;
}

// An LWP channel: 1-3 requests parsed from the input, then the client closes its side.
void Run::channel_step(uint8_t md) {
  grpc::ClientContext ctx;
  add_metadata(ctx, md);
  ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  auto s = dm_.kstub->LwpChannel(&ctx);
  const int n = 1 + in_.u8() % 3;
  for (int i = 0; i < n; i++) {
    v1::LwpRequest r;
    if (!r.ParseFromString(in_.bytes(kMaxBody))) continue;
    translate_ids(r);
    if (!s->Write(r)) break;
  }
  s->WritesDone();
  v1::LwpEvent ev;
  while (s->Read(&ev)) {
  }
  (void)s->Finish();
}

// A second session: the parsed messages (an Attach first, or not), then the client closes
// it, which kills the process it may have created.
void Run::session_step() {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  auto s = dm_.kstub->Session(&ctx);
  const int n = 1 + in_.u8() % 3;
  for (int i = 0; i < n; i++) {
    v1::SessionRequest r;
    if (!r.ParseFromString(in_.bytes(kMaxBody))) continue;
    if (!s->Write(r)) break;
  }
  s->WritesDone();
  v1::SessionEvent ev;
  while (s->Read(&ev)) {
  }
  (void)s->Finish();
}

// A watcher that reads its first batch (WATCH_SUBSCRIBED, or an error) and hangs up.
void Run::watch_step() {
  v1::WatchRequest r;
  if (!r.ParseFromString(in_.bytes(kMaxBody))) return;
  translate_ids(r);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  auto s = dm_.istub->Watch(&ctx, r);
  v1::WatchReply rep;
  (void)s->Read(&rep);
  ctx.TryCancel();
  (void)s->Finish();
}

// A second debugger (with or without the admin token) that opens and closes at once.
void Run::trace_session_step(uint8_t md) {
  grpc::ClientContext ctx;
  add_metadata(ctx, md);
  ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  auto s = dm_.tstub->Session(&ctx);
  v1::TraceSessionRequest r;
  if (r.ParseFromString(in_.bytes(kMaxBody))) (void)s->Write(r);
  s->WritesDone();
  v1::TraceSessionEvent ev;
  while (s->Read(&ev)) {
  }
  (void)s->Finish();
}

// The sessions end (their processes are killed, their blocked calls finish), the debugger
// closes; then every call must be done and the daemon empty again.
void Run::teardown() {
  for (auto& a : procs_) {
    a->stream->WritesDone();
    v1::SessionEvent ev;
    while (a->stream->Read(&ev)) {
    }
    (void)a->stream->Finish();
  }
  if (trace_ != nullptr) {
    trace_->WritesDone();
    v1::TraceSessionEvent ev;
    while (trace_->Read(&ev)) {
    }
    (void)trace_->Finish();
  }
  const auto end = Clock::now() + kCleanupLimit;
  {
    std::unique_lock lk(mu_);
    if (!cv_.wait_until(lk, end, [&] {
          for (auto& c : calls_)
            if (!c->done) return false;
          return true;
        }))
      finding("a call is still pending after its sessions ended");
  }
  for (;;) {
    const bool empty = dm_.sessions->size() == 0 && dm_.trace_svc->sessions() == 0 &&
                       dm_.kernel->snapshot_procs().empty();
    if (empty) break;
    if (Clock::now() > end) finding("sessions or processes left after the run");
    std::this_thread::sleep_for(100us);  // polling the janitor's progress, bounded above
  }
  if (std::string e = dm_.kernel->check_invariants(); !e.empty()) finding("invariant: " + e);
}

}  // namespace
}  // namespace lwpd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lwpd::fuzz::FuzzInput in(data, size);
  lwpd::fuzz::Run r(in);
  r.go();
  return 0;
}
