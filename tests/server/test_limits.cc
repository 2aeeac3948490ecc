// Clients that do not read: every stream the daemon writes to a client has a bound, and a
// client past it is cut off (its process killed, counted in Stats) while the daemon and
// every other session go on.
#include <signal.h>

#include <thread>

#include <gtest/gtest.h>

#include "daemon.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using grpc::StatusCode;
using Clock = std::chrono::steady_clock;

constexpr int kNbSigusr1 = 30;  // NetBSD's SIGUSR1
constexpr int kQueueBound = 64;

// A connection whose client reads as little as gRPC allows: no BDP growth of the HTTP/2
// window and a 1 KiB stream window, so a stream it does not read stalls after ~1 KiB.
std::shared_ptr<grpc::Channel> narrow_channel(const DaemonProcess& d) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  return grpc::CreateCustomChannel(d.address(), grpc::InsecureChannelCredentials(), args);
}

class Limits : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = std::make_unique<DaemonProcess>(
        2, std::vector<std::string>{"--max-queued-events", std::to_string(kQueueBound),
                                    "--watch-stall-ms", "300"});
    ASSERT_TRUE(d_->ready()) << "lwpd did not come up; log:\n" << d_->log();
    inspect_ = v1::Inspect::NewStub(d_->channel());
  }
  void TearDown() override {
    if (HasFailure() && d_) std::cerr << "---- lwpd log ----\n" << d_->log();
  }

  v1::StatsReply stats() {
    grpc::ClientContext ctx;
    v1::StatsReply r;
    EXPECT_TRUE(inspect_->Stats(&ctx, {}, &r).ok());
    return r;
  }
  bool listed(int32_t pid) {
    grpc::ClientContext ctx;
    v1::ListProcsReply r;
    EXPECT_TRUE(inspect_->ListProcs(&ctx, {}, &r).ok());
    for (auto& p : r.procs())
      if (p.pid() == pid) return true;
    return false;
  }
  // Polls (bounded) until `pid` is no longer listed.
  bool gone(int32_t pid, std::chrono::seconds limit = 10s) {
    auto end = Clock::now() + limit;
    while (listed(pid)) {
      if (Clock::now() > end) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }
  // Another client, on its own connection, is served normally.
  void expect_others_served() {
    EXPECT_TRUE(d_->serving());
    Proc q(d_->channel(), "bystander");
    ASSERT_TRUE(q.ok());
    v1::SyscallReturn r;
    ASSERT_TRUE(q.start(q.pid(), &r).ok());
    ASSERT_TRUE(q.call(q.pid(), emul::LwpSelfArgs{}, &r).ok());
    EXPECT_EQ(r.retval(), q.pid());
  }

  std::unique_ptr<DaemonProcess> d_;
  std::unique_ptr<v1::Inspect::Stub> inspect_;
};

// The scenario of issue 9: a client that never reads its Session stream and signals
// itself in a loop. Each signal is an event on that stream; past the bound the process
// is killed instead of the daemon growing.
TEST_F(Limits, UnreadSessionIsCutOffAtItsBound) {
  Proc bystander(d_->channel(), "bystander");
  ASSERT_TRUE(bystander.ok());
  Proc p(narrow_channel(*d_), "flooder");
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  ASSERT_EQ(stats().sessions_cut_off(), 0u);

  // ~1 KiB of events fit the window, kQueueBound more the daemon's queue: far below this.
  int sent = 0;
  grpc::Status st;
  for (; sent < 20000; sent++) {
    st = p.call(p.pid(), emul::LwpKillArgs{.target = p.pid(), .signo = kNbSigusr1}, &r);
    if (!st.ok()) break;
    ASSERT_EQ(r.error(), v1::ERRNO_OK);
  }
  ASSERT_FALSE(st.ok()) << "never cut off after " << sent << " signals";
  EXPECT_GT(sent, kQueueBound);
  EXPECT_TRUE(gone(p.pid()));
  EXPECT_EQ(stats().sessions_cut_off(), 1u);
  EXPECT_NE(d_->log().find("session pid " + std::to_string(p.pid()) +
                           ": Session stream queue over its bound"),
            std::string::npos);

  // Reading now: what was in flight, then the reason.
  grpc::Status final_status;
  (void)p.await_exit(&final_status);
  EXPECT_EQ(final_status.error_code(), StatusCode::RESOURCE_EXHAUSTED)
      << final_status.error_message();

  // The bystander's session is untouched, and new clients are served.
  EXPECT_TRUE(listed(bystander.pid()));
  ASSERT_TRUE(bystander.start(bystander.pid(), &r).ok());
  ASSERT_TRUE(bystander.call(bystander.pid(), emul::LwpSelfArgs{}, &r).ok());
  expect_others_served();
}

// The same for an LwpChannel: entries sent, returns never read.
TEST_F(Limits, UnreadLwpChannelIsCutOffAtItsBound) {
  auto ch = narrow_channel(*d_);
  Proc p(ch, "pipeliner");
  ASSERT_TRUE(p.ok());
  auto ctx = call_ctx(p.token(), 60s);
  auto s = p.stub().LwpChannel(ctx.get());
  v1::LwpRequest open, self;
  open.mutable_open()->set_lid(p.pid());
  ASSERT_TRUE(s->Write(open));
  v1::LwpEvent ev;
  ASSERT_TRUE(s->Read(&ev));  // RETURN_START: the LWP runs user code
  ASSERT_TRUE(ev.has_ret());
  *self.mutable_syscall() = sys(emul::LwpSelfArgs{});
  // Writes go through until the daemon ends the stream (then Write fails).
  int sent = 0;
  const auto end = Clock::now() + 60s;
  while (stats().sessions_cut_off() == 0) {
    ASSERT_LT(Clock::now(), end) << "never cut off after " << sent << " entries";
    for (int i = 0; i < 50 && s->Write(self); i++) sent++;
  }
  EXPECT_GT(sent, kQueueBound);
  EXPECT_TRUE(gone(p.pid()));
  EXPECT_EQ(stats().sessions_cut_off(), 1u);
  EXPECT_NE(d_->log().find("LwpChannel queue over its bound"), std::string::npos);
  ctx->TryCancel();
  (void)s->Finish();
  expect_others_served();
}

// A Watch client that reads nothing is dropped once its buffer is full and nothing was
// read for the stall limit (300 ms here); one that reads later learns why.
TEST_F(Limits, WatchThatReadsNothingIsCutOff) {
  auto stub = v1::Inspect::NewStub(narrow_channel(*d_));
  grpc::ClientContext wctx;
  v1::WatchRequest req;
  req.set_buffer(64);
  auto w = stub->Watch(&wctx, req);
  v1::WatchReply first;
  ASSERT_TRUE(w->Read(&first));  // WATCH_SUBSCRIBED: the watch is live

  // Churn LWPs (create, start, exit, wait: ~8 events each) until the daemon cuts it off.
  Proc p(d_->channel(), "churn");
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  const auto end = Clock::now() + 60s;
  while (stats().watchers_cut_off() == 0) {
    ASSERT_LT(Clock::now(), end) << "watch never cut off";
    emul::LwpCreateArgs c;
    c.uc_flags = netbsd::UC_CPU;
    ASSERT_TRUE(p.call(p.pid(), c, &r).ok());
    ASSERT_EQ(r.error(), v1::ERRNO_OK);
    const int32_t lid = static_cast<int32_t>(r.retval());
    ASSERT_TRUE(p.start(lid, &r).ok());
    EXPECT_EQ(p.call(lid, emul::LwpExitArgs{}, &r).error_code(), StatusCode::ABORTED);
    ASSERT_TRUE(p.call(p.pid(), emul::LwpWaitArgs{.wait_for = lid}, &r).ok());
  }
  EXPECT_EQ(stats().watchers_cut_off(), 1u);
  v1::WatchReply rep;
  while (w->Read(&rep)) {
  }
  grpc::Status st = w->Finish();
  EXPECT_EQ(st.error_code(), StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  // The process that made the events is not affected.
  ASSERT_TRUE(p.call(p.pid(), emul::LwpSelfArgs{}, &r).ok());
  expect_others_served();
}

}  // namespace
}  // namespace lwpd::test
