// The daemon owns its vCPUs (--kick-timeout-ms): a raw client that never starts or traps
// its LWP, and never reads its Session stream (server_raw_hog_fixture, a process of its
// own), holds a vCPU until the first kick's deadline; then its process is killed, its host
// process too (through the peer's pidfd), and another client's calls run.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <fstream>
#include <thread>

#include "daemon.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

v1::StatsReply stats(const std::shared_ptr<grpc::Channel>& ch) {
  auto inspect = v1::Inspect::NewStub(ch);
  grpc::ClientContext ctx;
  v1::StatsReply s;
  EXPECT_TRUE(inspect->Stats(&ctx, {}, &s).ok());
  return s;
}

// server_raw_hog_fixture with stdin and stdout on pipes.
class Hog {
 public:
  explicit Hog(const std::string& address) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    host_ = fork();
    if (host_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      setenv("LWPD_ENDPOINT", address.c_str(), 1);
      execl(RAW_HOG_FIXTURE_BINARY, "server_raw_hog_fixture", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    FILE* f = fdopen(out[0], "r");
    if (f != nullptr && std::fscanf(f, "%d", &pid_) != 1) pid_ = 0;
    if (f != nullptr) std::fclose(f);
  }
  ~Hog() {
    if (in_ >= 0) close(in_);
    if (host_ > 0) {
      kill(host_, SIGKILL);
      waitpid(host_, nullptr, 0);
    }
  }
  int32_t pid() const { return pid_; }
  // The host process's wait status once it has exited (bounded), else nullopt.
  std::optional<int> host_exit(std::chrono::milliseconds limit = 20s) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      int st = 0;
      if (waitpid(host_, &st, WNOHANG) == host_) {
        host_ = -1;
        return st;
      }
      std::this_thread::sleep_for(5ms);  // polling a child's exit, not synchronising
    }
    return std::nullopt;
  }

 private:
  pid_t host_ = -1;
  int in_ = -1;
  int32_t pid_ = 0;
};

// Does a vCPU run an LWP of process `pid`?
bool on_cpu(const std::shared_ptr<grpc::Channel>& ch, int32_t pid) {
  auto inspect = v1::Inspect::NewStub(ch);
  grpc::ClientContext ctx;
  v1::ListCpusReply r;
  if (!inspect->ListCpus(&ctx, {}, &r).ok()) return false;
  for (const auto& c : r.cpus())
    if (c.cur_pid() == pid) return true;
  return false;
}

TEST(Unresponsive, ClientThatNeverStartsItsLwpLosesTheVcpu) {
  DaemonProcess d(1, {"--quantum-ms", "20", "--kick-timeout-ms", "300"});
  ASSERT_TRUE(d.ready()) << d.log();
  EXPECT_EQ(stats(d.channel()).kick_timeout_ms(), 300u);

  Hog hog(d.address());
  ASSERT_GT(hog.pid(), 0) << d.log();
  const auto deadline = Clock::now() + 20s;
  while (!on_cpu(d.channel(), hog.pid())) {
    ASSERT_LT(Clock::now(), deadline) << "the hog never got the vCPU\n" << d.log();
    std::this_thread::yield();
  }

  const auto t0 = Clock::now();
  Proc honest(d.channel(), "honest");
  ASSERT_TRUE(honest.ok()) << d.log();
  v1::SyscallReturn r;
  ASSERT_TRUE(honest.start(honest.pid(), &r).ok()) << d.log();
  for (int i = 0; i < 200; i++) {
    ASSERT_TRUE(honest.call(honest.pid(), emul::LwpKillArgs{.target = honest.pid(), .signo = 0},
                            &r)
                    .ok());
    ASSERT_EQ(r.error(), v1::ERRNO_OK);
  }
  EXPECT_LT(Clock::now() - t0, 15s);

  auto host = hog.host_exit();
  ASSERT_TRUE(host.has_value()) << "the hog's host process lives on\n" << d.log();
  EXPECT_TRUE(WIFSIGNALED(*host) && WTERMSIG(*host) == SIGKILL) << *host;
  EXPECT_EQ(stats(d.channel()).unresponsive_kills(), 1u);
  EXPECT_NE(d.log().find("unresponsive"), std::string::npos) << d.log();
  EXPECT_TRUE(d.serving());
}

// lwpstat suspend of an LWP that never enters the kernel: the suspension cannot happen,
// so the call ends (the process is killed for not answering) within the bound.
TEST(Unresponsive, AdminSuspendOfAnUnresponsiveLwpEndsWithinTheBound) {
  DaemonProcess d(2, {"--quantum-ms", "20", "--kick-timeout-ms", "300"});
  ASSERT_TRUE(d.ready()) << d.log();
  Hog hog(d.address());
  ASSERT_GT(hog.pid(), 0) << d.log();
  const auto deadline = Clock::now() + 20s;
  while (!on_cpu(d.channel(), hog.pid())) {
    ASSERT_LT(Clock::now(), deadline) << "the hog never got a vCPU\n" << d.log();
    std::this_thread::yield();
  }
  std::string token;
  {
    std::ifstream f(d.runtime_dir() + "/admin.token");
    std::getline(f, token);
  }
  ASSERT_FALSE(token.empty());
  auto admin = v1::Admin::NewStub(d.channel());
  grpc::ClientContext ctx;
  ctx.AddMetadata("lwpd-admin-token", token);
  ctx.set_deadline(std::chrono::system_clock::now() + 20s);
  v1::LwpTarget t;
  t.set_pid(hog.pid());
  t.set_lid(hog.pid());
  v1::AdminReply rep;
  const auto t0 = Clock::now();
  grpc::Status st = admin->SuspendLwp(&ctx, t, &rep);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(rep.error(), v1::ERRNO_OK);  // the LWP died instead of being suspended
  EXPECT_LT(Clock::now() - t0, 10s);
  auto host = hog.host_exit();
  ASSERT_TRUE(host.has_value()) << d.log();
  EXPECT_TRUE(WIFSIGNALED(*host) && WTERMSIG(*host) == SIGKILL) << *host;
  EXPECT_EQ(stats(d.channel()).unresponsive_kills(), 1u);
}

}  // namespace
}  // namespace lwpd::test
