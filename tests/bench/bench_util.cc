#include "bench_util.h"

// The generated headers first: <signal.h>'s sigmask macro vs LwpCreateArgs::sigmask().
#include "bench_echo.grpc.pb.h"
#undef sigmask

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#undef sigmask

namespace lwpd::bench {

// ---- processes -------------------------------------------------------------------------

pid_t spawn_exec(const std::vector<std::string>& argv) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid != 0) return pid;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  perror("execv");
  _exit(127);
}

bool wait_pid(pid_t pid, int timeout_ms, int* status) {
  const uint64_t end = now_ns() + uint64_t(timeout_ms) * 1000000;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (now_ns() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool wait_socket(const std::string& path, pid_t pid, int timeout_ms) {
  const uint64_t end = now_ns() + uint64_t(timeout_ms) * 1000000;
  struct stat st;
  while (stat(path.c_str(), &st) != 0) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    if (now_ns() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void stop_process(pid_t pid, int grace_ms) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  int st;
  if (!wait_pid(pid, grace_ms, &st)) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("killed by signal ") + strsignal(WTERMSIG(st));
  return "status " + std::to_string(st);
}

// ---- /proc readings --------------------------------------------------------------------

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {

uint64_t field_after(const std::string& text, const char* key) {
  auto pos = text.find(key);
  if (pos == std::string::npos) return 0;
  return strtoull(text.c_str() + pos + strlen(key), nullptr, 10);
}

}  // namespace

ProcSnap snap_proc(pid_t pid) {
  ProcSnap s;
  const std::string base = "/proc/" + std::to_string(pid);
  {
    // utime and stime are fields 14 and 15; skip past the ")" of comm first.
    std::string stat = slurp(base + "/stat");
    auto rp = stat.rfind(')');
    if (rp != std::string::npos) {
      std::istringstream is(stat.substr(rp + 2));
      std::string tok;
      for (int field = 3; is >> tok; field++) {
        if (field == 14 || field == 15) s.ticks += strtoull(tok.c_str(), nullptr, 10);
        if (field == 15) break;
      }
    }
  }
  DIR* d = opendir((base + "/task").c_str());
  if (d == nullptr) return s;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string t = base + "/task/" + e->d_name;
    s.threads++;
    const uint64_t cpu = strtoull(slurp(t + "/schedstat").c_str(), nullptr, 10);
    std::string status = slurp(t + "/status");
    const uint64_t v = field_after(status, "\nvoluntary_ctxt_switches:");
    const uint64_t iv = field_after(status, "\nnonvoluntary_ctxt_switches:");
    s.cpu_ns += cpu;
    s.vcsw += v;
    s.ivcsw += iv;
    std::string comm = slurp(t + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    ProcSnap::Part& p = s.by_comm[comm];
    p.cpu_ns += cpu;
    p.csw += v + iv;
    p.threads++;
  }
  closedir(d);
  return s;
}

int64_t rss_bytes(pid_t pid) {
  std::istringstream is(slurp("/proc/" + std::to_string(pid) + "/statm"));
  int64_t size = 0, resident = 0;
  is >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

long clock_ticks_per_s() { return sysconf(_SC_CLK_TCK); }

uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// ---- the baseline service --------------------------------------------------------------

namespace {

namespace pb = ::lwpd::v1;

// One PingPong stream, shaped like lwpd's ChannelReactor: a read is always outstanding, and
// replies go through a queue because gRPC allows one write in flight. Each request gets a
// SyscallReturn of the size lwpd sends for _lwp_getprivate (retval + gen).
class EchoReactor final : public grpc::ServerBidiReactor<pb::LwpRequest, pb::LwpEvent> {
 public:
  EchoReactor() { StartRead(&req_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    pb::LwpEvent ev;
    auto* r = ev.mutable_ret();
    r->set_retval(0x7f0000001000 + static_cast<int64_t>(gen_));
    r->set_gen(++gen_);
    {
      std::lock_guard g(mu_);
      q_.push_back(std::move(ev));
      if (!writing_) {
        writing_ = true;
        StartWrite(&q_.front());
      }
    }
    StartRead(&req_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard g(mu_);
    q_.pop_front();
    writing_ = false;
    if (ok && !q_.empty()) {
      writing_ = true;
      StartWrite(&q_.front());
    }
  }

  void OnDone() override { delete this; }

 private:
  pb::LwpRequest req_;
  uint64_t gen_ = 0;
  std::mutex mu_;
  std::deque<pb::LwpEvent> q_;
  bool writing_ = false;
};

class EchoService final : public ::lwpd::bench::v1::Echo::CallbackService {
  grpc::ServerBidiReactor<pb::LwpRequest, pb::LwpEvent>* PingPong(
      grpc::CallbackServerContext*) override {
    return new EchoReactor;
  }
  grpc::ServerUnaryReactor* Once(grpc::CallbackServerContext* ctx, const pb::LwpRequest*,
                                 pb::LwpEvent* resp) override {
    auto* r = resp->mutable_ret();
    r->set_retval(0x7f0000001000);
    r->set_gen(1);
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int run_echo_server(const std::string& listen) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (listen.rfind("unix://", 0) == 0) unlink(listen.substr(7).c_str());
  EchoService svc;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&svc);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (server == nullptr || port == 0) {
    fprintf(stderr, "echo server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  server->Wait();
  return 0;
}

// ---- results ---------------------------------------------------------------------------

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void put_result(int fd, const std::string& key, double value) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s %.17g\n", key.c_str(), value);
  (void)!write(fd, line, static_cast<size_t>(n));
}

std::map<std::string, double> read_results(int fd) {
  std::string all;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    all.append(buf, static_cast<size_t>(n));
  }
  std::map<std::string, double> out;
  std::istringstream is(all);
  std::string key;
  double v;
  while (is >> key >> v) out[key] = v;
  return out;
}

std::string machine_summary() {
  std::string model;
  std::istringstream cpu(slurp("/proc/cpuinfo"));
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  struct utsname u {};
  uname(&u);
  return model + ", " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs, Linux " + u.release;
}

}  // namespace lwpd::bench
