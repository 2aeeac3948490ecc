#include "client_test_util.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

namespace lwpd::clienttest {

namespace {

Daemon g_daemon;

bool wait_pid(pid_t pid, int timeout_s, int* status) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

class DaemonEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/lwpd-client-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
    g_daemon.dir = tmpl;
    std::string sock = g_daemon.dir + "/lwpd.sock";
    g_daemon.endpoint = "unix://" + sock;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::string listen = g_daemon.endpoint;
      execl(LWPD_BINARY, "lwpd", "--listen", listen.c_str(), "--runtime-dir", g_daemon.dir.c_str(),
            "--cpus", "2", "--quantum-ms", "20", "--log-level", "warn",
            static_cast<char*>(nullptr));
      perror("exec lwpd");
      _exit(127);
    }
    g_daemon.pid = pid;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    struct stat st;
    while (stat(sock.c_str(), &st) != 0) {
      int status;
      ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << "lwpd exited early";
      ASSERT_LT(std::chrono::steady_clock::now(), end) << "lwpd did not create its socket";
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void TearDown() override {
    if (g_daemon.pid > 0) {
      kill(g_daemon.pid, SIGTERM);
      int st;
      if (!wait_pid(g_daemon.pid, 10, &st)) {
        kill(g_daemon.pid, SIGKILL);
        waitpid(g_daemon.pid, &st, 0);
      }
    }
    if (!g_daemon.dir.empty()) {
      std::string cmd = "rm -rf '" + g_daemon.dir + "'";
      (void)!system(cmd.c_str());
    }
  }
};

const auto* g_env = ::testing::AddGlobalTestEnvironment(new DaemonEnv);

}  // namespace

const Daemon& daemon() { return g_daemon; }

void child_fail(const char* file, int line, const std::string& what) {
  fprintf(stderr, "[child %d, lwp %d] %s:%d: CHECK failed: %s\n", getpid(), _lwp_self(), file, line,
          what.c_str());
  fflush(stderr);
  _exit(1);
}

std::string describe_status(int st) {
  if (st == -1) return "child timed out (killed)";
  if (WIFEXITED(st)) return "child exited with status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("child killed by signal ") + strsignal(WTERMSIG(st));
  return "child status " + std::to_string(st);
}

int finish_child(pid_t pid, int timeout_s) {
  int st = 0;
  if (!wait_pid(pid, timeout_s, &st)) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
  }
  return st;
}

pid_t start_child(const std::function<void()>& body) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    if (lwpd_attach(g_daemon.endpoint.c_str()) != 0) {
      perror("lwpd_attach");
      _exit(90);
    }
    body();
    _lwp_exit();
  }
  return pid;
}

int run_child(const std::function<void()>& body, int timeout_s) {
  pid_t pid = start_child(body);
  if (pid < 0) return -1;
  return finish_child(pid, timeout_s);
}

int run_program(const std::vector<std::string>& argv, int timeout_s) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    setenv("LWPD_ENDPOINT", g_daemon.endpoint.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    perror("execv");
    _exit(127);
  }
  return finish_child(pid, timeout_s);
}

lwpid_t spawn(void (*fn)(void*), void* arg, unsigned long flags, size_t stack) {
  ucontext_t uc;
  char* st = static_cast<char*>(malloc(stack));
  C_CHECK(st != nullptr);
  _lwp_makecontext(&uc, fn, arg, nullptr, st, stack);
  lwpid_t lid = 0;
  C_OK(_lwp_create(&uc, flags, &lid));
  return lid;
}

long now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ksleep_ms(int ms) {
  long end = now_ms() + ms;
  for (long left = ms; left > 0; left = end - now_ms()) {
    struct timespec ts = {left / 1000, (left % 1000) * 1000000};
    _lwp_park(CLOCK_MONOTONIC, 0, &ts, 0, nullptr, nullptr);
  }
}

}  // namespace lwpd::clienttest
