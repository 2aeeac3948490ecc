// The daemon owns its vCPUs (--kick-timeout-ms): a raw client that never starts or traps
// its LWP, and never reads its Session stream, holds the only vCPU until the first kick's
// deadline; then its process is killed and another client's calls run.

#include <gtest/gtest.h>

#include <chrono>
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

  Proc hog(d.channel(), "hog");  // never calls Start or Trap, never reads its Session
  ASSERT_TRUE(hog.ok()) << d.log();
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

  grpc::Status fin;
  auto st = hog.await_exit(&fin);
  ASSERT_TRUE(st.has_value()) << fin.error_message();
  EXPECT_TRUE(st->signaled());
  EXPECT_EQ(st->code(), 9);  // SIGKILL
  EXPECT_EQ(stats(d.channel()).unresponsive_kills(), 1u);
  EXPECT_NE(d.log().find("unresponsive"), std::string::npos) << d.log();
  EXPECT_TRUE(d.serving());
}

// lwpstat suspend of an LWP that never enters the kernel: the suspension cannot happen,
// so the call ends (the process is killed for not answering) within the bound.
TEST(Unresponsive, AdminSuspendOfAnUnresponsiveLwpEndsWithinTheBound) {
  DaemonProcess d(2, {"--quantum-ms", "20", "--kick-timeout-ms", "300"});
  ASSERT_TRUE(d.ready()) << d.log();
  Proc hog(d.channel(), "hog");
  ASSERT_TRUE(hog.ok()) << d.log();
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
  grpc::Status fin;
  auto ex = hog.await_exit(&fin);
  ASSERT_TRUE(ex.has_value());
  EXPECT_TRUE(ex->signaled());
  EXPECT_EQ(stats(d.channel()).unresponsive_kills(), 1u);
}

}  // namespace
}  // namespace lwpd::test
