// lwpd: the daemon. Parses the flags, builds the emulated kernel and the gRPC
// server (Kernel + Inspect + Admin + Trace services, grpc.health.v1, reflection), and shuts
// down cleanly on SIGTERM/SIGINT.
//
// Shutdown sequence (run by main once the signal thread reports a signal):
//   1. stop accepting connections, refuse new requests and report NOT_SERVING on health;
//   2. end every session's transports, every watch stream and every trace
//      session with UNAVAILABLE (streams that would otherwise live as long as
//      their process / client; closing a debugger also ends its pending Waits);
//   3. Server::Shutdown with a deadline (then gRPC cancels what is left) —
//      when it returns every reactor is done;
//   4. drop the sessions, then the kernel (stops the vCPUs).

// The project headers come first: <signal.h> defines a `sigmask` macro that
// would break the generated LwpCreateArgs::sigmask() accessor.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/common_interface_defs.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include "emul/kernel.h"
#include "server/listener.h"
#include "server/region_server.h"
#include "server/runtime_dir.h"
#include "server/services.h"
#include "server/sessions.h"

namespace {

using namespace lwpd;

constexpr const char* kVersion = "lwpd 0.1.0 (lwpd.v1)";
// How long Server::Shutdown lets calls finish before cancelling them. Our
// long-lived calls are already ended by then (step 2 below), so this only
// lets their final statuses reach the clients; gRPC also waits this long for
// idle client connections, so it bounds the shutdown time.
constexpr auto kShutdownGrace = std::chrono::milliseconds(500);
// Bound on the metadata of one request or response (the sum of its headers), set
// explicitly rather than left to gRPC's default: a request over it fails with
// RESOURCE_EXHAUSTED before any of our code runs. The shim's channel uses the same bound
// (client/src/transport_grpc.cc); our own metadata (tokens) is under 100 bytes.
constexpr int kMaxMetadataBytes = 8 * 1024;

std::string default_socket_dir() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && *xdg == '/') return std::string(xdg) + "/lwpd";
  return "/tmp/lwpd";
}

// The filesystem path of a unix: listen address, or nullopt for TCP.
std::optional<std::string> unix_path(const std::string& addr) {
  if (addr.rfind("unix://", 0) == 0) return addr.substr(7);
  if (addr.rfind("unix:", 0) == 0) return addr.substr(5);
  return std::nullopt;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// mkdir -p with `mode` for the directories it creates.
bool make_dirs(const std::string& dir, mode_t mode) {
  if (dir.empty()) return false;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
  if (!make_dirs(dir_of(dir), mode) && dir_of(dir) != dir) return false;
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return false;
  ::chmod(dir.c_str(), mode);  // not subject to the umask
  return true;
}

// A socket file left by a daemon that died is removed; one that still
// accepts connections belongs to a running daemon: refuse to start.
bool clear_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return true;
  if (!S_ISSOCK(st.st_mode)) {
    spdlog::error("{} exists and is not a socket", path);
    return false;
  }
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool live = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  if (fd >= 0) ::close(fd);
  if (live) {
    spdlog::error("{}: another lwpd is listening there", path);
    return false;
  }
  spdlog::info("removing stale socket {}", path);
  ::unlink(path.c_str());
  return true;
}

// A fresh admin token in a new 0600 file (replacing any old one); "" on failure.
std::string write_admin_token(const std::string& path) {
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return "";
  std::string tok = server::random_token();
  std::string line = tok + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  return ok ? tok : "";
}

void kernel_log(int level, const std::string& msg) {
  switch (level) {
    case 0:
      spdlog::debug("kernel: {}", msg);
      break;
    case 1:
      spdlog::info("kernel: {}", msg);
      break;
    case 2:
      spdlog::warn("kernel: {}", msg);
      break;
    default:
      spdlog::error("kernel: {}", msg);
      break;
  }
}

constexpr int netbsd_root_reserve() { return lwpd::netbsd::NPROC_ROOT_RESERVE; }

// Tells systemd (Type=notify in lwpd.service) how the daemon is doing: "READY=1" once every
// listener is up, "STOPPING=1" when the shutdown starts. Without $NOTIFY_SOCKET (not under
// systemd) sd_notify does nothing, so this is safe to call unconditionally.
void notify_service_manager(const char* state) {
  int rc = sd_notify(0, state);
  if (rc < 0) spdlog::warn("sd_notify({}): {}", state, std::strerror(-rc));
}

struct Options {
  std::vector<std::string> listen;
  std::string runtime_dir;
  int cpus = 0;
  int quantum_ms = 100;
  std::string log_level = "info";
  std::string admin_token_file;
  int kick_timeout_ms = -1;  // -1: default_kick_timeout_ms()
  int maxproc = lwpd::netbsd::NPROC;
  int maxproc_per_uid = lwpd::netbsd::MAXUPRC;
  int maxlwp_per_uid = lwpd::netbsd::MAXUPRC;
  int handshake_timeout_ms = 5000;
  int idle_timeout_ms = 300000;
  int rt_priority = 1;
  std::string pin_cpus = "auto";
  int max_conns_per_uid = 256;
  int max_queued_events = 4096;
  int watch_stall_ms = 30000;
  bool no_shm = false;
  std::optional<uint64_t> sched_seed;  // deterministic mode
  std::string sched_strategy = "random";
  std::string sched_record, sched_replay;
  int pct_depth = 3;
  int pct_steps = 50;
};

// The default bound on an unanswered kick: ten time slices, and never under two seconds.
// Answering a kick takes a chain of host threads (the client's control thread, the kicked
// thread, its dispatcher, the daemon's gRPC thread); on a host with a load of 18 on two
// cores an honest client's chain took over half a second. A sanitizer build runs all of
// them 5-15x slower, so it waits ten times as long.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kKickTimeoutScale = 10;
#else
constexpr int kKickTimeoutScale = 1;
#endif
int default_kick_timeout_ms(int quantum_ms) {
  return kKickTimeoutScale * std::max(10 * quantum_ms, 2000);
}

// Raise the soft fd limit to the hard one: connections cost fds, and the soft default
// (1024 under systemd) exists for select(), which neither gRPC nor the listener uses.
void raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rlimit want = rl;
  want.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &want) == 0)
    spdlog::debug("fd limit raised from {} to {}", rl.rlim_cur, rl.rlim_max);
}

// A ThreadSanitizer build symbolizes a report's stacks when it prints it, and the suppressions
// (tests/tsan.supp) match the symbolized names. The symbolizer opens the executable and every
// loaded library the first time it is used; a report made while the daemon is out of fds (what
// the listener's EMFILE tests provoke) would come out as bare addresses that no suppression
// matches. Symbolizing one address at start-up, while fds are free, loads those tables for good.
void warm_up_sanitizer_symbolizer() {
#if defined(__SANITIZE_THREAD__)
  char name[128];
  __sanitizer_symbolize_pc(reinterpret_cast<void*>(&warm_up_sanitizer_symbolizer), "%F", name,
                           sizeof name);
#endif
}

// Signals are handled by a thread in sigwait(2), never in a handler: the
// first SIGTERM/SIGINT starts the clean shutdown, a second one during it
// exits at once. main() ends the thread by setting `stop` and signalling it.
class SignalThread {
 public:
  explicit SignalThread(const sigset_t& set) : set_(set), t_([this] { run(); }) {}
  ~SignalThread() {
    stop_.store(true, std::memory_order_release);  // matched by the load in run()
    pthread_kill(t_.native_handle(), SIGTERM);
    t_.join();
  }
  std::future<int> first() { return first_.get_future(); }

 private:
  void run() {
    bool seen = false;
    for (;;) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      if (stop_.load(std::memory_order_acquire)) return;
      if (!seen) {
        seen = true;
        first_.set_value(sig);
      } else {
        spdlog::warn("second signal {} during shutdown: exiting now", sig);
        std::_Exit(1);
      }
    }
  }
  sigset_t set_;
  std::atomic<bool> stop_{false};
  std::promise<int> first_;
  std::thread t_;
};

int run(const Options& o) {
  // Runtime directory: the lwpctl region files live there, world-readable so
  // clients of any uid can map them.
  std::string runtime_dir = o.runtime_dir;
  if (runtime_dir.empty()) {
    runtime_dir = default_socket_dir();
    for (const auto& a : o.listen)
      if (auto p = unix_path(a)) {
        runtime_dir = dir_of(*p);
        break;
      }
  }
  if (!make_dirs(runtime_dir, 0755)) {
    spdlog::error("cannot create runtime directory {}: {}", runtime_dir, std::strerror(errno));
    return 1;
  }
  // One daemon per runtime directory; only its owner cleans what a killed one left.
  server::RuntimeDirLock dir_lock;
  if (std::string err; !dir_lock.acquire(runtime_dir, &err)) {
    spdlog::error("{}", err);
    return 1;
  }
  if (int n = server::remove_stale_lwpctl_files(runtime_dir); n > 0)
    spdlog::info("removed {} stale lwpctl file(s) from {}", n, runtime_dir);
  for (const auto& a : o.listen) {
    if (auto p = unix_path(a)) {
      if (p->empty() || (*p)[0] != '/') {
        spdlog::error("--listen {}: unix socket paths must be absolute", a);
        return 1;
      }
      if (!make_dirs(dir_of(*p), 0755) || !clear_stale_socket(*p)) return 1;
    }
  }
  const std::string admin_file =
      o.admin_token_file.empty() ? runtime_dir + "/admin.token" : o.admin_token_file;
  const std::string admin_token = write_admin_token(admin_file);
  if (admin_token.empty()) {
    spdlog::error("cannot write admin token {}: {}", admin_file, std::strerror(errno));
    return 1;
  }

  emul::KernelConfig kcfg;
  kcfg.ncpus =
      o.cpus > 0 ? o.cpus : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  kcfg.quantum = std::chrono::milliseconds(o.quantum_ms);
  kcfg.rt_priority = o.rt_priority;
  kcfg.pin_cpus = o.pin_cpus != "never";
  kcfg.pin_realtime = o.pin_cpus == "always";
  kcfg.kick_timeout = std::chrono::milliseconds(
      o.kick_timeout_ms >= 0 ? o.kick_timeout_ms : default_kick_timeout_ms(o.quantum_ms));
  kcfg.maxproc = o.maxproc;
  kcfg.maxuprc = o.maxproc_per_uid;
  kcfg.nthr_per_uid = o.maxlwp_per_uid;
  kcfg.runtime_dir = runtime_dir;
  kcfg.sched_seed = o.sched_seed;
  kcfg.sched_strategy = o.sched_strategy == "pct" ? emul::KernelConfig::SchedStrategy::kPct
                                                  : emul::KernelConfig::SchedStrategy::kRandom;
  kcfg.pct_depth = o.pct_depth;
  kcfg.pct_steps = o.pct_steps;
  kcfg.sched_record = o.sched_record;
  kcfg.sched_replay = o.sched_replay;
  // A replay that diverges stops the daemon (exit status 4) with the message: never silently.
  static std::atomic<bool> diverged{false};
  kcfg.on_replay_divergence = [](const std::string& why) {
    if (diverged.exchange(true)) return;
    spdlog::error("{}: stopping", why);
    ::kill(::getpid(), SIGTERM);  // the signal thread starts the clean shutdown
  };
  kcfg.log = kernel_log;
  // Declared before the kernel, which calls it until its vCPUs stop.
  server::WatchHub watch{std::chrono::milliseconds(o.watch_stall_ms)};
  kcfg.observer = &watch;
  emul::Kernel kernel(kcfg);
  server::Sessions sessions(kernel);
  server::Listener listener(
      server::ListenerConfig{.handshake_timeout = std::chrono::milliseconds(o.handshake_timeout_ms),
                             .max_conns_per_uid = o.max_conns_per_uid});
  server::Daemon d{.kernel = kernel, .sessions = sessions};
  d.uid = ::geteuid();
  d.listener = &listener;
  d.max_queued_events = static_cast<size_t>(o.max_queued_events);
  d.runtime_dir = runtime_dir;
  d.admin_token = admin_token;
  d.version = kVersion;
  d.watch = &watch;
  d.offer_regions = !o.no_shm;
  d.rt_priority = o.rt_priority;
  server::KernelService kernel_svc(d);
  server::InspectService inspect_svc(d);
  server::AdminService admin_svc(d);
  server::TraceService trace_svc(d);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // No listening port: the daemon's listener accepts and hands connections over.
  grpc::ServerBuilder b;
  b.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, kMaxMetadataBytes);
  // A connection that carries no call (one that sent its preface and nothing since, or a
  // client's channel left idle) is closed after --idle-timeout-ms: the handshake timeout
  // bounds what comes before the preface, this what comes after. A live Session or Watch
  // stream is a call in progress, so an attached process is never idle.
  b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, o.idle_timeout_ms);
  b.RegisterService(&kernel_svc);
  b.RegisterService(&inspect_svc);
  b.RegisterService(&admin_svc);
  b.RegisterService(&trace_svc);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (server == nullptr) {
    spdlog::error("cannot start the gRPC server (bad or busy --listen address?)");
    return 1;
  }
  for (const auto& a : o.listen) {
    if (!listener.listen(a)) {
      spdlog::error("cannot listen on {}", a);
      listener.stop();
      server->Shutdown();
      return 1;
    }
    spdlog::info("listening on {}", a);
  }
  listener.set_region_handler(
      [&d](int fd, const server::Peer& peer) { server::serve_region_hello(d, fd, peer); });
  listener.start(server.get());
  spdlog::info("{}: {} vCPUs, quantum {} ms, kick timeout {} ms, runtime dir {}", kVersion,
               kernel.ncpus(), o.quantum_ms, kcfg.kick_timeout.count(), runtime_dir);
  if (o.sched_seed)
    spdlog::info("deterministic scheduling: seed {}, strategy {}", *o.sched_seed,
                 o.sched_strategy == "pct"
                     ? fmt::format("pct (depth {}, {} steps)", o.pct_depth, o.pct_steps)
                     : o.sched_strategy);
  spdlog::info("limits: {} processes ({} kept for root), {} per uid, {} LWPs per uid", kcfg.maxproc,
               lwpd::netbsd::NPROC_ROOT_RESERVE, kcfg.maxuprc, kcfg.nthr_per_uid);
  notify_service_manager("READY=1");

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  SignalThread sig(set);
  int signo = sig.first().get();
  spdlog::info("signal {}: shutting down", signo);
  notify_service_manager("STOPPING=1");

  listener.stop();
  d.shutting_down.store(true, std::memory_order_relaxed);
  if (auto* h = server->GetHealthCheckService()) h->SetServingStatus(false);
  const grpc::Status bye(grpc::StatusCode::UNAVAILABLE, "lwpd is shutting down");
  // Debuggers first: their pending Waits end UNAVAILABLE rather than with a tracee's
  // death (their tracees are killed without telling them, as for any tracer's exit).
  trace_svc.shutdown(bye);
  sessions.shutdown(bye);
  watch.shutdown(bye);
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->Wait();
  ::unlink(admin_file.c_str());  // the token dies with this daemon
  spdlog::info("stopped");
  return diverged.load() ? 4 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask and only the
  // signal thread sees these signals.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Options o;
  CLI::App app{"lwpd: NetBSD LWP emulation daemon"};
  app.add_option("--listen", o.listen,
                 "address to serve on, repeatable: unix:///abs/path.sock or 127.0.0.1:PORT "
                 "(default unix://$XDG_RUNTIME_DIR/lwpd/lwpd.sock, else /tmp/lwpd/lwpd.sock)");
  app.add_option("--runtime-dir", o.runtime_dir,
                 "directory for lwpctl region files (default: the directory of the first unix "
                 "socket, else of the default socket)");
  app.add_option("--cpus", o.cpus, "number of vCPUs (default: host CPUs)")
      ->check(CLI::Range(1, 64));
  app.add_option("--quantum-ms", o.quantum_ms, "time slice in milliseconds")
      ->check(CLI::Range(1, 60000));
  app.add_option("--log-level", o.log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--admin-token-file", o.admin_token_file,
                 "where to write the fresh admin token (mode 0600; default: admin.token in the "
                 "runtime directory)");
  app.add_option("--kick-timeout-ms", o.kick_timeout_ms,
                 "an LWP still running user code this long after a kick loses its vCPU and its "
                 "process is killed (0: never; default: 10 time slices, at least 2000 ms; 10x that "
                 "in sanitizer builds)")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--maxproc", o.maxproc,
                 "most emulated processes at once (kern.maxproc); the last 5 are kept for root")
      ->check(CLI::Range(netbsd_root_reserve() + 1, 30000));
  app.add_option("--maxproc-per-uid", o.maxproc_per_uid,
                 "most processes per non-root uid (RLIMIT_NPROC)")
      ->check(CLI::Range(1, 30000));
  app.add_option("--maxlwp-per-uid", o.maxlwp_per_uid,
                 "most LWPs per non-root uid, first LWPs of processes not counted (RLIMIT_NTHR)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--handshake-timeout-ms", o.handshake_timeout_ms,
                 "a new connection must send its HTTP/2 preface within this time or it is "
                 "closed (default 5000)")
      ->check(CLI::Range(10, 600000));
  app.add_option("--idle-timeout-ms", o.idle_timeout_ms,
                 "a connection with no call in progress for this long is closed (gRPC's "
                 "max_connection_idle; a client reconnects on its next call; default 300000)")
      ->check(CLI::Range(10, 86400000));
  app.add_option("--rt-priority", o.rt_priority,
                 "run the threads that serve kernel entries (vCPU workers, shared-memory "
                 "regions) SCHED_FIFO at this priority, rationed: at most 2 ms in one go and "
                 "about half of any longer stretch, normal priority otherwise; where SCHED_FIFO "
                 "is not allowed (no CAP_SYS_NICE or RLIMIT_RTPRIO) they run at normal "
                 "priority; 0: normal priority (default 1)")
      ->check(CLI::Range(0, 99));
  app.add_option("--pin-cpus", o.pin_cpus,
                 "pin each vCPU worker to a host CPU: auto (unless it runs real-time: a pinned "
                 "real-time worker takes its host CPU from client threads even while another "
                 "is idle), always, never (default auto)")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  app.add_option("--max-conns-per-uid", o.max_conns_per_uid,
                 "open connections allowed per peer uid (all TCP peers share one count; uid 0 "
                 "is exempt); more are closed at once (default 256)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--max-queued-events", o.max_queued_events,
                 "events queued for one session stream (Session, LwpChannel) that its client "
                 "has not read; past it the session is cut off: its process is killed")
      ->check(CLI::Range(64, 1 << 20));
  app.add_option("--watch-stall-ms", o.watch_stall_ms,
                 "a Watch stream whose buffer is full and whose client has read nothing for "
                 "this long is ended with RESOURCE_EXHAUSTED")
      ->check(CLI::Range(100, 3600 * 1000));
  app.add_flag("--no-shm", o.no_shm,
               "do not offer the shared-memory fast path to clients on this host (they then "
               "use gRPC for every kernel entry)");
  uint64_t seed = 0;
  CLI::Option* seed_opt =
      app.add_option("--sched-seed", seed,
                     "deterministic scheduling: one LWP runs user code at a time and every "
                     "scheduling decision comes from a generator with this seed; park timeouts "
                     "run on a virtual clock (README \"Finding races\")");
  app.add_option("--sched-strategy", o.sched_strategy,
                 "with --sched-seed: random (each decision uniform among the candidates) or pct "
                 "(random LWP priorities with --pct-depth - 1 change points)")
      ->check(CLI::IsMember({"random", "pct"}));
  app.add_option("--pct-depth", o.pct_depth,
                 "PCT: the bug depth d it aims at (d - 1 priority change points; default 3)")
      ->check(CLI::Range(1, 64));
  app.add_option("--pct-steps", o.pct_steps,
                 "PCT: the change points fall among the first this many scheduling steps "
                 "(kernel entries; default 50)")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--sched-record", o.sched_record,
                 "with --sched-seed: write every scheduling decision to this file");
  app.add_option("--sched-replay", o.sched_replay,
                 "with --sched-seed (and the recorded run's strategy): take every scheduling "
                 "decision from this record; the first that does not fit stops the daemon "
                 "(exit status 4) with a message naming it")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  if (seed_opt->count() > 0) o.sched_seed = seed;
  if ((!o.sched_record.empty() || !o.sched_replay.empty()) && !o.sched_seed) {
    std::fprintf(stderr, "lwpd: --sched-record and --sched-replay need --sched-seed\n");
    return 2;
  }

  auto logger = spdlog::stderr_color_mt("lwpd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");

  warm_up_sanitizer_symbolizer();
  raise_fd_limit();
  if (o.listen.empty()) o.listen.push_back("unix://" + default_socket_dir() + "/lwpd.sock");
  int rc = run(o);
  spdlog::shutdown();
  return rc;
}
