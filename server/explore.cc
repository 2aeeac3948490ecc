// lwpd-explore: run a program once per scheduling seed, each time against a fresh private
// lwpd in deterministic mode, and stop at the first run that fails.
//
//   lwpd-explore [--seeds A..B] [--strategy random|pct] [--pct-depth D] [--pct-steps K]
//                [--cpus N] [--timeout-s S] [--lwpd PATH] [--json] -- PROGRAM [ARGS...]
//
// A run fails when the program exits with a status other than 0, is killed by a signal, or
// outlives --timeout-s. Output: "failing seed: S" and the command that replays that run
// (the same seed gives the same run: README "Finding races"); exit status 1 when a failing
// seed was found, 0 when every seed passed, 2 on lwpd-explore's own errors (bad arguments,
// a daemon that does not start). A progress line on a terminal's stderr; --json prints a
// summary on stdout instead of the text.
//
// Each run: a private runtime directory; lwpd --sched-seed S listening on a Unix socket
// there, started with $NOTIFY_SOCKET pointing at a datagram socket of ours, so we know it is
// ready when it says READY=1 (no polling); the program with LWPD_ENDPOINT naming that
// socket, its output kept in the directory and shown if the run fails; then SIGTERM to the
// daemon, and the directory removed. Both children die with us (PR_SET_PDEATHSIG).
// The strategy and its parameters are the daemon's (lwpd --sched-strategy).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kExitPass = 0, kExitFound = 1, kExitError = 2;

struct Options {
  std::string seeds = "1..100";
  std::string strategy = "random";
  int pct_depth = 3;
  int pct_steps = 50;
  int cpus = 2;
  int timeout_s = 60;
  std::string lwpd;
  bool json = false;
  std::vector<std::string> program;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "lwpd-explore: %s\n", msg.c_str());
  std::exit(kExitError);
}

// "A..B" or "A" (inclusive).
std::pair<uint64_t, uint64_t> parse_seeds(const std::string& s) {
  try {
    const auto dots = s.find("..");
    size_t used = 0;
    const uint64_t a = std::stoull(s.substr(0, dots), &used);
    if (used != (dots == std::string::npos ? s.size() : dots)) throw std::invalid_argument(s);
    if (dots == std::string::npos) return {a, a};
    const std::string rest = s.substr(dots + 2);
    const uint64_t b = std::stoull(rest, &used);
    if (used != rest.size() || b < a) throw std::invalid_argument(s);
    return {a, b};
  } catch (const std::exception&) {
    die("--seeds wants A..B with A <= B (or one seed), not '" + s + "'");
  }
}

// The daemon beside us (build tree: server/lwpd; installed: bin/../sbin/lwpd), else $PATH's.
std::string find_lwpd() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& p : {self.parent_path() / "lwpd", self.parent_path() / "../sbin/lwpd"})
      if (access(p.c_str(), X_OK) == 0) return p.lexically_normal();
  }
  return "lwpd";
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_-./=:@%+,") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o;
}

// fork + exec with `env` added to ours, stdout/stderr to `out` (if >= 0); the child dies
// with us. Returns the pid, or -1 with errno.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int out) {
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; e++) envs.emplace_back(*e);
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> a, en;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (const auto& s : envs) en.push_back(const_cast<char*>(s.c_str()));
  en.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  setpgid(0, 0);
  if (out >= 0) {
    dup2(out, 1);
    dup2(out, 2);
  }
  execvpe(a[0], a.data(), en.data());
  std::fprintf(stderr, "lwpd-explore: cannot run %s: %s\n", a[0], std::strerror(errno));
  _exit(127);
}

// Wait for `pid` at most `limit`; nullopt if it is still running then.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds limit) {
  const int pfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pfd >= 0) {
    pollfd p{.fd = pfd, .events = POLLIN, .revents = 0};
    const int r = poll(&p, 1, static_cast<int>(limit.count()));
    close(pfd);
    if (r == 0) return std::nullopt;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

struct RunResult {
  bool failed = false;
  std::string why;     // "exit status 3", "killed by signal ...", "timed out after N s"
  std::string output;  // the program's output (kept for a failing run)
};

class Explorer {
 public:
  explicit Explorer(const Options& o) : o_(o), lwpd_(o.lwpd.empty() ? find_lwpd() : o.lwpd) {}

  RunResult run(uint64_t seed) {
    char tmpl[] = "/tmp/lwpd-explore.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) die(std::string("mkdtemp: ") + std::strerror(errno));
    const std::string dir = tmpl;
    RunResult r = run_in(dir, seed);
    std::error_code ec;
    fs::remove_all(dir, ec);
    return r;
  }

 private:
  RunResult run_in(const std::string& dir, uint64_t seed) {
    const std::string sock = dir + "/lwpd.sock";
    // The readiness channel: lwpd sends READY=1 (sd_notify) once it listens.
    const int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    const std::string npath = dir + "/notify";
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", npath.c_str());
    if (nfd < 0 || bind(nfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      die("notify socket: " + std::string(std::strerror(errno)));
    const int dlog = open((dir + "/lwpd.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    std::vector<std::string> dargv = {lwpd_,
                                      "--listen",
                                      "unix://" + sock,
                                      "--runtime-dir",
                                      dir,
                                      "--cpus",
                                      std::to_string(o_.cpus),
                                      "--sched-seed",
                                      std::to_string(seed),
                                      "--sched-strategy",
                                      o_.strategy,
                                      "--pct-depth",
                                      std::to_string(o_.pct_depth),
                                      "--pct-steps",
                                      std::to_string(o_.pct_steps),
                                      "--log-level",
                                      "warn"};
    const pid_t daemon = spawn(dargv, {"NOTIFY_SOCKET=" + npath}, dlog);
    close(dlog);
    if (daemon < 0) die("cannot start " + lwpd_ + ": " + std::strerror(errno));
    if (!await_ready(nfd, daemon)) {
      close(nfd);
      kill(daemon, SIGKILL);
      wait_for(daemon, std::chrono::seconds(5));
      std::string log = slurp(dir + "/lwpd.log");
      die("lwpd (" + lwpd_ + ") did not start for seed " + std::to_string(seed) +
          (log.empty() ? "" : ":\n" + log));
    }
    close(nfd);

    const int out = open((dir + "/out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    const pid_t prog = spawn(o_.program, {"LWPD_ENDPOINT=unix://" + sock}, out);
    close(out);
    if (prog < 0) die("cannot start " + o_.program[0] + ": " + std::strerror(errno));
    RunResult r;
    std::optional<int> st = wait_for(prog, std::chrono::seconds(o_.timeout_s));
    if (!st) {
      kill(-prog, SIGKILL);
      wait_for(prog, std::chrono::seconds(10));
      r.failed = true;
      r.why = "timed out after " + std::to_string(o_.timeout_s) + " s";
    } else if (*st != 0) {
      r.failed = true;
      r.why = describe(*st);
    }
    if (r.failed) r.output = slurp(dir + "/out");
    kill(daemon, SIGTERM);
    if (!wait_for(daemon, std::chrono::seconds(10))) {
      kill(daemon, SIGKILL);
      wait_for(daemon, std::chrono::seconds(5));
    }
    return r;
  }

  bool await_ready(int nfd, pid_t daemon) {
    const auto until = Clock::now() + std::chrono::seconds(20);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{.fd = nfd, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, static_cast<int>(std::min<long>(left, 200))) > 0) {
        char buf[512];
        const ssize_t n = recv(nfd, buf, sizeof buf - 1, 0);
        if (n > 0) {
          buf[n] = 0;
          if (std::strstr(buf, "READY=1") != nullptr) return true;
        }
      }
      int status = 0;
      if (waitpid(daemon, &status, WNOHANG) == daemon) return false;  // it died
    }
  }

  static std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  const Options& o_;
  const std::string lwpd_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Run a program once per scheduling seed against a private deterministic lwpd; "
      "stop at the first failing seed (README \"Finding races\")",
      "lwpd-explore"};
  app.add_option("--seeds", o.seeds, "seeds to try, A..B inclusive (default 1..100)");
  app.add_option("--strategy", o.strategy, "random (default) or pct (lwpd --sched-strategy)")
      ->check(CLI::IsMember({"random", "pct"}));
  app.add_option("--pct-depth", o.pct_depth, "PCT's bug depth d (default 3)")
      ->check(CLI::Range(1, 64));
  app.add_option("--pct-steps", o.pct_steps,
                 "PCT's change points fall among this many first steps (default 50)")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--cpus", o.cpus, "logical CPUs of each daemon (default 2)")
      ->check(CLI::Range(1, 64));
  app.add_option("--timeout-s", o.timeout_s, "a run longer than this fails (default 60)")
      ->check(CLI::Range(1, 86400));
  app.add_option("--lwpd", o.lwpd, "the daemon to start (default: the lwpd beside this program)");
  app.add_flag("--json", o.json, "print a JSON summary on stdout");
  app.add_option("program", o.program, "PROGRAM [ARGS...] (after --)")->required();
  app.positionals_at_end();
  CLI11_PARSE(app, argc, argv);
  const auto [first, last] = parse_seeds(o.seeds);

  std::string replay_base = "lwpd-explore --strategy " + o.strategy;
  if (o.strategy == "pct")
    replay_base += " --pct-depth " + std::to_string(o.pct_depth) + " --pct-steps " +
                   std::to_string(o.pct_steps);
  replay_base += " --cpus " + std::to_string(o.cpus) + " --timeout-s " +
                 std::to_string(o.timeout_s) + " --seeds ";
  std::string prog_text;
  for (const auto& a : o.program) prog_text += " " + shell_quote(a);

  const bool progress = !o.json && isatty(2) != 0;
  Explorer ex(o);
  const auto t0 = Clock::now();
  uint64_t runs = 0;
  std::optional<uint64_t> failing;
  RunResult fail;
  const uint64_t total = last - first + 1;
  for (uint64_t seed = first;; seed++) {
    if (progress) {
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      std::fprintf(stderr, "\rseed %llu of %llu (%llu), %.1f runs/s   ",
                   static_cast<unsigned long long>(runs + 1),
                   static_cast<unsigned long long>(total), static_cast<unsigned long long>(seed),
                   secs > 0 ? static_cast<double>(runs) / secs : 0.0);
    }
    RunResult r = ex.run(seed);
    runs++;
    if (r.failed) {
      failing = seed;
      fail = std::move(r);
      break;
    }
    if (seed == last) break;
  }
  if (progress) std::fprintf(stderr, "\n");
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double rate = secs > 0 ? static_cast<double>(runs) / secs : 0.0;
  const std::string replay =
      failing ? replay_base + std::to_string(*failing) + " --" + prog_text : "";
  if (o.json) {
    std::printf(
        "{\"first_seed\":%llu,\"last_seed\":%llu,\"strategy\":\"%s\",\"cpus\":%d,\"runs\":%llu,"
        "\"seconds\":%.3f,\"runs_per_s\":%.2f,\"failing_seed\":%s,\"failure\":\"%s\","
        "\"replay\":\"%s\"}\n",
        static_cast<unsigned long long>(first), static_cast<unsigned long long>(last),
        o.strategy.c_str(), o.cpus, static_cast<unsigned long long>(runs), secs, rate,
        failing ? std::to_string(*failing).c_str() : "null", json_escape(fail.why).c_str(),
        json_escape(replay).c_str());
  } else if (failing) {
    if (!fail.output.empty())
      std::fprintf(stderr, "--- output of the failing run ---\n%s", fail.output.c_str());
    std::printf("failing seed: %llu (%s, after %llu runs, %.1f runs/s)\nreplay: %s\n",
                static_cast<unsigned long long>(*failing), fail.why.c_str(),
                static_cast<unsigned long long>(runs), rate, replay.c_str());
  } else {
    std::printf("all %llu seeds passed (%llu..%llu, %s, %.1f runs/s)\n",
                static_cast<unsigned long long>(runs), static_cast<unsigned long long>(first),
                static_cast<unsigned long long>(last), o.strategy.c_str(), rate);
  }
  return failing ? kExitFound : kExitPass;
}
