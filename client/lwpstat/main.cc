// lwpstat: inspect a running lwpd — processes, LWPs, vCPUs, a live top view, the
// event stream, the daemon's health — and administer it (stop/cont/kill a process,
// suspend/resume an LWP, trace a process). The command line only; the work is in
// commands.cc/top.cc.
#include <csignal>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "lwpstat.h"

namespace {

using namespace lwpd::lwpstat;

// Everything the command line sets; the subcommands' callbacks read it after parsing.
struct Args {
  GlobalOptions global;
  TopOptions top;
  WatchOptions watch;
  AdminOptions admin;
  TraceOptions trace;
  int32_t pid = 0;
  int32_t lid = 0;
};

struct Subcommand {
  CLI::App* app;
  std::function<int(Inspector&)> run;
};

// Options every subcommand accepts, before or after its name (fallthrough).
void add_global_options(CLI::App& app, GlobalOptions& g, AdminOptions& adm) {
  app.add_option("--admin-token-file", adm.token_file,
                 "admin token for stop/cont/kill/suspend/resume (default: "
                 "$LWPD_ADMIN_TOKEN_FILE, else admin.token beside the endpoint's unix socket)");
  app.add_option("--endpoint", g.endpoint,
                 "lwpd address: unix:///path.sock or HOST:PORT (default: $LWPD_ENDPOINT, "
                 "else unix://$XDG_RUNTIME_DIR/lwpd/lwpd.sock, else "
                 "unix:///tmp/lwpd/lwpd.sock)")
      ->capture_default_str();
  app.add_option("--timeout-ms", g.timeout_ms, "deadline of each request to lwpd")
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
  app.add_flag("--json", g.json,
               "print the reply as one JSON document (proto3 JSON mapping, .proto field "
               "names); every subcommand but top (watch: one object per line)");
}

CLI::App* add_top(CLI::App& app, TopOptions& t) {
  auto* top = app.add_subcommand(
      "top", "refreshing view of the vCPUs and the busiest LWPs (q or Ctrl-C quits)");
  top->add_option("-n,--iterations", t.iterations, "frames to draw, then exit (0 = no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  top->add_option("-d,--interval-ms", t.interval_ms, "time between frames")
      ->check(CLI::Range(50, 3600000))
      ->capture_default_str();
  top->add_option("--lwps", t.lwp_rows, "LWP rows to show (0 = as many as fit)")
      ->check(CLI::NonNegativeNumber);
  top->add_flag("-b,--batch", t.batch,
                "plain frames one after another, no screen control or keys (the default "
                "when stdout is not a terminal)");
  return top;
}

CLI::App* add_watch(CLI::App& app, WatchOptions& w) {
  auto* watch = app.add_subcommand(
      "watch",
      "live kernel events (LWP creation, state changes, vCPU switches, exits), one "
      "line each; drop markers show events lost by a slow reader");
  watch->add_option("pid", w.pid, "only this process (default: every process)")
      ->check(CLI::PositiveNumber);
  watch->add_option("-n,--count", w.count, "exit after this many events (0 = never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  watch
      ->add_option("--buffer", w.buffer,
                   "events the daemon buffers for this watcher before dropping (0 = its "
                   "default, 4096)")
      ->check(CLI::Range(0, 65536));
  return watch;
}

// stop|cont|kill PID and suspend|resume PID LID.
void add_admin(CLI::App& app, Args& a, std::vector<Subcommand>& subs) {
  struct Spec {
    const char* name;
    const char* help;
    bool lwp;
  };
  static const Spec specs[] = {
      {"stop", "stop a process (SIGSTOP; admin token)", false},
      {"cont", "continue a stopped process (SIGCONT; admin token)", false},
      {"kill", "kill a process (SIGKILL; admin token)", false},
      {"suspend",
       "suspend one LWP as _lwp_suspend would; returns once it is LSSUSPENDED "
       "(admin token)",
       true},
      {"resume", "resume an LWP suspended with suspend or _lwp_suspend (admin token)", true}};
  for (const Spec& sp : specs) {
    auto* sub = app.add_subcommand(sp.name, sp.help);
    sub->add_option("pid", a.pid, "process ID")->required()->check(CLI::PositiveNumber);
    if (sp.lwp) sub->add_option("lid", a.lid, "LWP ID")->required()->check(CLI::PositiveNumber);
    const std::string what = sp.name;
    subs.push_back({sub, [&a, what](Inspector& in) {
                      return cmd_admin(in, a.global, a.admin, what, a.pid, a.lid);
                    }});
  }
}

CLI::App* add_trace(CLI::App& app, TraceOptions& t) {
  auto* trace = app.add_subcommand(
      "trace",
      "trace a process as a debugger (admin token): one line per stop (LWP create/exit "
      "events, signals) until it exits; --count or Ctrl-C detach and leave it running");
  trace->add_option("pid", t.pid, "process ID")->required()->check(CLI::PositiveNumber);
  trace
      ->add_option("--events", t.events,
                   "LWP events that stop the tracee: create, exit (comma-separated) or none")
      ->delimiter(',')
      ->check(CLI::IsMember({"create", "exit", "none"}))
      ->capture_default_str();
  trace->add_option("-n,--count", t.count, "detach after this many stops (0 = never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return trace;
}

std::vector<Subcommand> add_subcommands(CLI::App& app, Args& a) {
  const GlobalOptions& g = a.global;
  std::vector<Subcommand> subs;
  subs.push_back({app.add_subcommand("ps", "processes: pid, uid, state, LWP counts, comm"),
                  [&](Inspector& in) { return cmd_ps(in, g); }});
  auto* lwps = app.add_subcommand("lwps", "the LWPs of one process");
  lwps->add_option("pid", a.pid, "process ID")->required()->check(CLI::PositiveNumber);
  subs.push_back({lwps, [&](Inspector& in) { return cmd_lwps(in, g, a.pid); }});
  subs.push_back({app.add_subcommand("cpus", "vCPUs: current LWP, run queue, counters, idle %"),
                  [&](Inspector& in) { return cmd_cpus(in, g); }});
  auto* show = app.add_subcommand("show", "every field of one LWP");
  show->add_option("pid", a.pid, "process ID")->required()->check(CLI::PositiveNumber);
  show->add_option("lid", a.lid, "LWP ID")->required()->check(CLI::PositiveNumber);
  subs.push_back({show, [&](Inspector& in) { return cmd_show(in, g, a.pid, a.lid); }});
  subs.push_back({app.add_subcommand("stats", "daemon totals: processes, LWPs, syscalls, RSS"),
                  [&](Inspector& in) { return cmd_stats(in, g); }});
  subs.push_back({app.add_subcommand("health",
                                     "grpc.health.v1 check: prints SERVING and exits 0, "
                                     "else one line on stderr and exits non-zero"),
                  [&](Inspector& in) { return cmd_health(in, g); }});
  subs.push_back({add_top(app, a.top), [&](Inspector& in) { return cmd_top(in, a.top); }});
  subs.push_back(
      {add_watch(app, a.watch), [&](Inspector& in) { return cmd_watch(in, g, a.watch); }});
  add_admin(app, a, subs);
  subs.push_back(
      {add_trace(app, a.trace), [&](Inspector& in) { return cmd_trace(in, g, a.admin, a.trace); }});
  return subs;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // `lwpstat ps | head`: a closed pipe is not a crash
  Args a;
  a.global.endpoint = default_endpoint();

  CLI::App app{"lwpstat: inspect a running lwpd (processes, LWPs, vCPUs, health)"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  add_global_options(app, a.global, a.admin);
  std::vector<Subcommand> subs = add_subcommands(app, a);
  try {
    app.parse(argc, argv);
    if (a.global.json && app.got_subcommand("top"))
      throw CLI::ValidationError("--json", "top has no JSON output; use ps, lwps or cpus");
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  // trace takes SIGINT/SIGTERM with sigwait: blocked before gRPC starts any thread.
  for (const auto& s : subs)
    if (s.app->parsed() && s.app->get_name() == "trace") trace_block_signals();
  Inspector in(a.global.endpoint, std::chrono::milliseconds(a.global.timeout_ms));
  for (const auto& s : subs)
    if (s.app->parsed()) return s.run(in);
  return kExitFailed;  // unreachable: require_subcommand(1)
}
