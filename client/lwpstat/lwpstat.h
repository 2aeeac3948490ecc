// lwpstat: the inspector CLI. Shared declarations of its parts:
//
//   main.cc       the command line (CLI11): global options, subcommands, dispatch
//   inspector.cc  Inspector: one channel to lwpd, the Inspect and Health RPCs, and
//                 the mapping of gRPC failures to the one line lwpstat prints
//   commands.cc   ps, lwps, cpus, show, stats, health: one snapshot, a table or JSON
//   top.cc        top: a refreshing view of the vCPUs and the busiest LWPs
//   watch.cc      watch: the live event stream (Inspect.Watch), one line per event
//   admin.cc      stop, cont, kill, suspend, resume (Admin service, admin token)
//   trace.cc      trace: a debugger on the Trace service (admin token), one line per stop
//   table.cc      aligned text tables and the value formatting they share
//
// Exit status: 0 success; 1 the daemon answered but the request failed (no such
// process or LWP, health not SERVING, admin token refused or unreadable, a kernel
// errno from an admin command); 2 the daemon could not be reached;
// CLI11's own codes (>= 100) for command-line errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "health.pb.h"  // grpc.health.v1, generated from health.proto here
#include "lwpd/v1/kernel.grpc.pb.h"
#include "lwpd/v1/kernel.pb.h"

namespace grpc {
class Channel;
class Status;
}  // namespace grpc

namespace lwpd::lwpstat {

namespace v1 = ::lwpd::v1;

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // the daemon said no
inline constexpr int kExitUnreachable = 2;  // no daemon to ask

// A failed step: the exit status and the line to print after "lwpstat: ".
// Empty (code 0) means success. Functions return it instead of throwing.
struct [[nodiscard]] Error {
  int code = kExitOk;
  std::string message;

  explicit operator bool() const { return code != kExitOk; }
  static Error none() { return {}; }
};

// Prints "lwpstat: <message>" on stderr; returns err.code.
int report(const Error& err);

// The endpoint lwpstat talks to when --endpoint is not given: $LWPD_ENDPOINT, else
// the socket scripts/run.sh starts lwpd on (unix://$XDG_RUNTIME_DIR/lwpd/lwpd.sock if
// XDG_RUNTIME_DIR is set, else unix:///tmp/lwpd/lwpd.sock).
std::string default_endpoint();

// One gRPC channel to lwpd. Every call is unary, has the same deadline and fails
// fast (no wait-for-ready): a daemon that is down is reported at once.
class Inspector {
 public:
  Inspector(std::string endpoint, std::chrono::milliseconds timeout);
  ~Inspector();

  const std::string& endpoint() const { return endpoint_; }
  // The channel, for the services without a wrapper here (trace.cc).
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // A call's status as the inspector reports it (see rpc_error below).
  Error status_error(const grpc::Status& st) const { return rpc_error(st); }

  // Errors: kExitUnreachable (daemon down, deadline), kExitFailed (any other
  // failure status); list_lwps: kExitFailed "no process PID" for NOT_FOUND.
  Error list_procs(v1::ListProcsReply* out);
  Error list_lwps(int32_t pid, v1::ListLwpsReply* out);
  Error list_cpus(v1::ListCpusReply* out);
  Error stats(v1::StatsReply* out);
  // grpc.health.v1.Health/Check of the whole server (service ""). Errors as
  // above; an answer other than SERVING is not an error here.
  Error health(grpc::health::v1::HealthCheckResponse* out);

  // Inspect.Watch: calls `on_reply` for every message until it returns false (then the
  // stream is cancelled and this returns no error), or the stream ends (an error: the
  // daemon ended it). No deadline: a watch lasts until stopped.
  Error watch(const v1::WatchRequest& req,
              const std::function<bool(const v1::WatchReply&)>& on_reply);

  // Admin calls with `token` as "lwpd-admin-token"; NOT_FOUND is "no process PID",
  // UNAUTHENTICATED "lwpd refused the admin token". The reply's errno is not checked here.
  Error signal_proc(const std::string& token, int32_t pid, v1::AdminSignal sig,
                    v1::AdminReply* out);
  Error suspend_lwp(const std::string& token, int32_t pid, int32_t lid, v1::AdminReply* out);
  Error resume_lwp(const std::string& token, int32_t pid, int32_t lid, v1::AdminReply* out);

 private:
  Error rpc_error(const grpc::Status& st) const;
  Error admin_error(const grpc::Status& st, int32_t pid) const;

  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inspect::Stub> inspect_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

// ---- output ---------------------------------------------------------------------

// `msg` as one JSON document (proto3 JSON mapping with the .proto field names,
// every field present, enums by name, 64-bit integers as strings), newline-terminated.
std::string to_json(const google::protobuf::Message& msg);
// The same on a single line (for streams: one JSON object per line).
std::string to_json_line(const google::protobuf::Message& msg);

// ---- subcommands (commands.cc, top.cc); each returns the exit status ------------

struct GlobalOptions {
  std::string endpoint;
  int timeout_ms = 5000;
  bool json = false;
};

struct TopOptions {
  int iterations = 0;      // frames to draw; 0 = until `q` or a signal
  int interval_ms = 1000;  // between frames
  int lwp_rows = 0;        // LWP rows to show; 0 = what fits the terminal
  bool batch = false;      // plain frames one after another, no escapes, no keys
};

int cmd_ps(Inspector& in, const GlobalOptions& g);
int cmd_lwps(Inspector& in, const GlobalOptions& g, int32_t pid);
int cmd_cpus(Inspector& in, const GlobalOptions& g);
int cmd_show(Inspector& in, const GlobalOptions& g, int32_t pid, int32_t lid);
int cmd_stats(Inspector& in, const GlobalOptions& g);
int cmd_health(Inspector& in, const GlobalOptions& g);
int cmd_top(Inspector& in, const TopOptions& t);

struct WatchOptions {
  int32_t pid = 0;      // 0 = every process
  int64_t count = 0;    // stop after this many lines (events and drop markers); 0 = never
  uint32_t buffer = 0;  // WatchRequest.buffer (0 = the daemon's default)
};
int cmd_watch(Inspector& in, const GlobalOptions& g, const WatchOptions& w);

struct AdminOptions {
  std::string token_file;  // --admin-token-file; "" = $LWPD_ADMIN_TOKEN_FILE, else beside
                           // the endpoint's unix socket
};
// The admin token: read from a.token_file, else $LWPD_ADMIN_TOKEN_FILE, else admin.token
// beside the endpoint's unix socket. Errors: kExitFailed (no file derivable, unreadable,
// empty).
Error admin_token(const std::string& endpoint, const AdminOptions& a, std::string* token);

// What: "stop", "cont", "kill" (pid) or "suspend", "resume" (pid, lid).
int cmd_admin(Inspector& in, const GlobalOptions& g, const AdminOptions& a, const std::string& what,
              int32_t pid, int32_t lid);

struct TraceOptions {
  int32_t pid = 0;
  std::vector<std::string> events{"create", "exit"};  // --events: create, exit, none
  int64_t count = 0;                                  // stops to report, then detach; 0 = all
};
// trace PID (trace.cc): a debugger on the Trace service (admin token). Call
// trace_block_signals() first, before any gRPC channel exists.
int cmd_trace(Inspector& in, const GlobalOptions& g, const AdminOptions& a, const TraceOptions& t);
void trace_block_signals();

}  // namespace lwpd::lwpstat
