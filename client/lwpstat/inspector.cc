// Inspector: the RPCs lwpstat makes, and how their failures read.
#include <cstdio>
#include <cstdlib>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "health.grpc.pb.h"
#include "lwpstat.h"

namespace lwpd::lwpstat {

namespace {

// gRPC messages may span lines (nested causes); lwpstat prints exactly one.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

int report(const Error& err) {
  std::fprintf(stderr, "lwpstat: %s\n", one_line(err.message).c_str());
  return err.code;
}

std::string default_endpoint() {
  const char* env = std::getenv("LWPD_ENDPOINT");
  if (env != nullptr && *env != '\0') return env;
  // scripts/run.sh: $XDG_RUNTIME_DIR/lwpd if the variable is non-empty, else /tmp/lwpd.
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && *xdg != '\0') return std::string("unix://") + xdg + "/lwpd/lwpd.sock";
  return "unix:///tmp/lwpd/lwpd.sock";
}

std::string to_json(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opt;
  opt.add_whitespace = true;
  opt.always_print_primitive_fields = true;  // a zero count is still a field
  opt.preserve_proto_field_names = true;     // nlwps, not nlwps; lc_pctr, not lcPctr
  std::string out;
  // Cannot fail for a message of a linked-in type (no Any, no unresolvable type).
  auto st = google::protobuf::util::MessageToJsonString(msg, &out, opt);
  if (!st.ok()) out = "{}";
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

std::string to_json_line(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opt;
  opt.always_print_primitive_fields = true;
  opt.preserve_proto_field_names = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(msg, &out, opt);
  if (!st.ok()) out = "{}";
  return out + "\n";
}

Inspector::Inspector(std::string endpoint, std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)),
      timeout_(timeout),
      channel_(grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials())),
      inspect_(v1::Inspect::NewStub(channel_)),
      admin_(v1::Admin::NewStub(channel_)) {}

Inspector::~Inspector() = default;

Error Inspector::rpc_error(const grpc::Status& st) const {
  switch (st.error_code()) {
    case grpc::StatusCode::OK:
      return Error::none();
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return {kExitUnreachable, "cannot reach lwpd at " + endpoint_ + ": " + st.error_message()};
    default:
      return {kExitFailed, "lwpd at " + endpoint_ + ": " + st.error_message() + " (gRPC code " +
                               std::to_string(static_cast<int>(st.error_code())) + ")"};
  }
}

namespace {

// One unary call with the inspector's deadline; the stub method is a member pointer
// so the four Inspect RPCs share this.
template <class Stub, class Req, class Rep>
grpc::Status unary(Stub& stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Rep*),
                   const Req& req, Rep* out, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  return (stub.*method)(&ctx, req, out);
}

}  // namespace

Error Inspector::list_procs(v1::ListProcsReply* out) {
  return rpc_error(
      unary(*inspect_, &v1::Inspect::Stub::ListProcs, v1::ListProcsRequest{}, out, timeout_));
}

Error Inspector::list_lwps(int32_t pid, v1::ListLwpsReply* out) {
  v1::ListLwpsRequest req;
  req.set_pid(pid);
  auto st = unary(*inspect_, &v1::Inspect::Stub::ListLwps, req, out, timeout_);
  if (st.error_code() == grpc::StatusCode::NOT_FOUND)
    return {kExitFailed, "no process " + std::to_string(pid)};
  return rpc_error(st);
}

Error Inspector::list_cpus(v1::ListCpusReply* out) {
  return rpc_error(
      unary(*inspect_, &v1::Inspect::Stub::ListCpus, v1::ListCpusRequest{}, out, timeout_));
}

Error Inspector::stats(v1::StatsReply* out) {
  return rpc_error(unary(*inspect_, &v1::Inspect::Stub::Stats, v1::StatsRequest{}, out, timeout_));
}

Error Inspector::health(grpc::health::v1::HealthCheckResponse* out) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  return rpc_error(unary(*stub, &grpc::health::v1::Health::Stub::Check,
                         grpc::health::v1::HealthCheckRequest{}, out, timeout_));
}

}  // namespace lwpd::lwpstat

namespace lwpd::lwpstat {

Error Inspector::watch(const v1::WatchRequest& req,
                       const std::function<bool(const v1::WatchReply&)>& on_reply) {
  grpc::ClientContext ctx;
  auto reader = inspect_->Watch(&ctx, req);
  v1::WatchReply rep;
  bool stopped = false;
  while (reader->Read(&rep)) {
    if (!on_reply(rep)) {
      stopped = true;
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (stopped) return Error::none();
  if (st.ok()) return {kExitFailed, "lwpd at " + endpoint_ + " ended the watch"};
  return rpc_error(st);
}

namespace {

template <class Req>
grpc::Status admin_call(v1::Admin::Stub& stub,
                        grpc::Status (v1::Admin::Stub::*method)(grpc::ClientContext*, const Req&,
                                                                v1::AdminReply*),
                        const std::string& token, const Req& req, v1::AdminReply* out,
                        std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ctx.AddMetadata("lwpd-admin-token", token);
  return (stub.*method)(&ctx, req, out);
}

}  // namespace

Error Inspector::admin_error(const grpc::Status& st, int32_t pid) const {
  if (st.error_code() == grpc::StatusCode::NOT_FOUND)
    return {kExitFailed, "no process " + std::to_string(pid)};
  if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED)
    return {kExitFailed, "lwpd at " + endpoint_ + " refused the admin token"};
  return rpc_error(st);
}

Error Inspector::signal_proc(const std::string& token, int32_t pid, v1::AdminSignal sig,
                             v1::AdminReply* out) {
  v1::SignalProcRequest req;
  req.set_pid(pid);
  req.set_signal(sig);
  return admin_error(admin_call(*admin_, &v1::Admin::Stub::SignalProc, token, req, out, timeout_),
                     pid);
}

Error Inspector::suspend_lwp(const std::string& token, int32_t pid, int32_t lid,
                             v1::AdminReply* out) {
  v1::LwpTarget req;
  req.set_pid(pid);
  req.set_lid(lid);
  grpc::Status st = admin_call(*admin_, &v1::Admin::Stub::SuspendLwp, token, req, out, timeout_);
  // Connected but no answer in time: the LWP has not reached a kernel boundary (e.g. an
  // uninterruptible sleep). The suspension stays requested, as _lwp_suspend's would.
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      channel_->GetState(false) == GRPC_CHANNEL_READY)
    return {kExitFailed, "suspend pid " + std::to_string(pid) + " lid " + std::to_string(lid) +
                             ": not suspended within " + std::to_string(timeout_.count()) +
                             " ms (still requested)"};
  return admin_error(st, pid);
}

Error Inspector::resume_lwp(const std::string& token, int32_t pid, int32_t lid,
                            v1::AdminReply* out) {
  v1::LwpTarget req;
  req.set_pid(pid);
  req.set_lid(lid);
  return admin_error(admin_call(*admin_, &v1::Admin::Stub::ResumeLwp, token, req, out, timeout_),
                     pid);
}

}  // namespace lwpd::lwpstat
