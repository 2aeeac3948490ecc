// Protocol errors reach the client as the status the proto documents, with a message that
// says what was wrong; what a killed daemon left is cleaned at the next start; a session's
// end is seen only once its process is gone from the listings.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "daemon.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using grpc::StatusCode;
using Clock = std::chrono::steady_clock;

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(start(d_)); }
  void TearDown() override {
    if (HasFailure() && d_) std::cerr << "---- lwpd log ----\n" << d_->log();
  }
  void start(std::unique_ptr<DaemonProcess>& d, std::vector<std::string> extra = {}) {
    d = std::make_unique<DaemonProcess>(2, std::move(extra));
    ASSERT_TRUE(d->ready()) << "lwpd did not come up; log:\n" << d->log();
    inspect_ = v1::Inspect::NewStub(d->channel());
  }

  bool listed(int32_t pid) {
    grpc::ClientContext ctx;
    v1::ListProcsReply r;
    EXPECT_TRUE(inspect_->ListProcs(&ctx, {}, &r).ok());
    for (auto& p : r.procs())
      if (p.pid() == pid) return true;
    return false;
  }
  // Attaches on a raw Session stream, sends `second`, and returns the stream's status
  // (read to its end) and the pid.
  grpc::Status session_with(const v1::SessionRequest& second, int32_t* pid) {
    auto stub = v1::Kernel::NewStub(d_->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    auto s = stub->Session(&ctx);
    v1::SessionRequest attach;
    attach.mutable_attach()->set_comm("twice");
    EXPECT_TRUE(s->Write(attach));
    v1::SessionEvent ev;
    EXPECT_TRUE(s->Read(&ev));
    EXPECT_TRUE(ev.has_attached());
    *pid = ev.attached().pid();
    EXPECT_TRUE(s->Write(second));
    while (s->Read(&ev)) {
    }
    return s->Finish();
  }

  std::unique_ptr<DaemonProcess> d_;
  std::unique_ptr<v1::Inspect::Stub> inspect_;
};

// Issue 13: both used to end with status OK and an empty message (the process's exit,
// caused by the kill of the malformed session, finished the stream first).
TEST_F(Faults, AttachSentTwiceIsInvalidArgument) {
  v1::SessionRequest again;
  again.mutable_attach()->set_comm("again");
  int32_t pid = 0;
  grpc::Status st = session_with(again, &pid);
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "Attach sent twice");
  EXPECT_FALSE(listed(pid));  // the status comes after the process is released
}

TEST_F(Faults, EmptySessionRequestAfterAttachIsInvalidArgument) {
  int32_t pid = 0;
  grpc::Status st = session_with(v1::SessionRequest{}, &pid);
  EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("empty SessionRequest"), std::string::npos)
      << st.error_message();
  EXPECT_FALSE(listed(pid));
}

TEST_F(Faults, StartOfARunningLwpSaysItRuns) {
  Proc p(d_->channel());
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  grpc::Status st = p.start(p.pid(), &r);
  EXPECT_EQ(st.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("already running user code"), std::string::npos)
      << st.error_message();
  // A Call while another entry of the LWP is pending names that instead.
  auto slow = std::thread([&] {
    v1::SyscallReturn pr;
    emul::LwpParkArgs park;  // parks until unparked (no timeout)
    (void)p.call(p.pid(), park, &pr);
  });
  auto parked = [&] {
    grpc::ClientContext ctx;
    v1::ListLwpsRequest req;
    req.set_pid(p.pid());
    v1::ListLwpsReply rep;
    if (!inspect_->ListLwps(&ctx, req, &rep).ok()) return false;
    for (auto& l : rep.proc().lwps())
      if (l.lid() == p.pid()) return l.state() == v1::LSSLEEP && l.wchan() == "parked";
    return false;
  };
  auto end = Clock::now() + 10s;
  while (!parked() && Clock::now() < end) std::this_thread::sleep_for(5ms);
  if (parked()) {
    grpc::Status busy = p.call(p.pid(), emul::LwpSelfArgs{}, &r);
    EXPECT_EQ(busy.error_code(), StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(busy.error_message().find("in the kernel"), std::string::npos)
        << busy.error_message();
  } else {
    ADD_FAILURE() << "the main LWP never parked";
  }
  p.cancel_session();  // kills the process: the parked call ends
  slow.join();
}

TEST_F(Faults, NegativePidIsInvalidArgumentForListLwpsAsForWatch) {
  for (int32_t pid : {-1, -2, INT32_MIN}) {
    grpc::ClientContext ctx;
    v1::ListLwpsRequest req;
    req.set_pid(pid);
    v1::ListLwpsReply rep;
    grpc::Status st = inspect_->ListLwps(&ctx, req, &rep);
    EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << pid;

    grpc::ClientContext wctx;
    v1::WatchRequest wreq;
    wreq.set_pid(pid);
    auto w = inspect_->Watch(&wctx, wreq);
    v1::WatchReply wr;
    while (w->Read(&wr)) {
    }
    EXPECT_EQ(w->Finish().error_code(), StatusCode::INVALID_ARGUMENT) << pid;
  }
  grpc::ClientContext ctx;
  v1::ListLwpsRequest req;  // pid 0: well formed, no such process
  v1::ListLwpsReply rep;
  EXPECT_EQ(inspect_->ListLwps(&ctx, req, &rep).error_code(), StatusCode::NOT_FOUND);
}

// The final status of a Session stream is sent only after the process has left the
// kernel's table: no polling here, the check right after the end must hold every time.
TEST_F(Faults, ProcessIsUnlistedWhenItsSessionEnds) {
  for (int i = 0; i < 20; i++) {
    Proc p(d_->channel());
    ASSERT_TRUE(p.ok());
    v1::SyscallReturn r;
    ASSERT_TRUE(p.start(p.pid(), &r).ok());
    EXPECT_EQ(p.call(p.pid(), emul::ProcExitArgs{.status = 3}, &r).error_code(),
              StatusCode::ABORTED);
    grpc::Status st;
    auto exit = p.await_exit(&st);
    ASSERT_TRUE(st.ok()) << st.error_message();
    ASSERT_TRUE(exit.has_value());
    EXPECT_EQ(exit->code(), 3);
    ASSERT_FALSE(listed(p.pid())) << "round " << i;
  }
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/lwpd-rundir-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    if (std::system(("rm -rf '" + path_ + "'").c_str()) != 0) {
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// lwpctl files of a daemon killed with kill -9 are removed at the next start; files that
// are not the daemon's own are left alone.
TEST_F(Faults, StaleLwpctlFilesAreRemovedAtTheNextStart) {
  TempDir run;
  std::unique_ptr<DaemonProcess> a;
  ASSERT_NO_FATAL_FAILURE(start(a, {"--runtime-dir", run.path()}));
  Proc p(a->channel());
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  ASSERT_TRUE(p.call(p.pid(), emul::LwpCtlArgs{.features = 1}, &r).ok());
  ASSERT_EQ(r.error(), v1::ERRNO_OK);
  const std::string region = run.path() + "/lwpctl." + std::to_string(p.pid());
  ASSERT_TRUE(exists(region));
  for (const char* other : {"/lwpctl.x1", "/lwpctl.", "/notes"}) std::ofstream(run.path() + other);

  a.reset();  // SIGKILL: nothing cleaned
  ASSERT_TRUE(exists(region));
  std::unique_ptr<DaemonProcess> b;
  ASSERT_NO_FATAL_FAILURE(start(b, {"--runtime-dir", run.path()}));
  EXPECT_FALSE(exists(region));
  EXPECT_NE(b->log().find("removed 1 stale lwpctl file(s)"), std::string::npos) << b->log();
  for (const char* other : {"/lwpctl.x1", "/lwpctl.", "/notes"})
    EXPECT_TRUE(exists(run.path() + other)) << other;
}

// A second daemon on the same runtime directory would delete the first one's regions:
// it refuses to start, and the first goes on undisturbed.
TEST_F(Faults, SecondDaemonOnTheSameRuntimeDirRefusesToStart) {
  Proc p(d_->channel());
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  ASSERT_TRUE(p.call(p.pid(), emul::LwpCtlArgs{.features = 1}, &r).ok());
  const std::string region = d_->runtime_dir() + "/lwpctl." + std::to_string(p.pid());
  ASSERT_TRUE(exists(region));

  DaemonProcess second(2, {"--runtime-dir", d_->runtime_dir()});
  EXPECT_FALSE(second.ready());
  EXPECT_NE(second.log().find("another lwpd uses the runtime directory " + d_->runtime_dir()),
            std::string::npos)
      << second.log();
  EXPECT_TRUE(exists(region));
  EXPECT_TRUE(d_->serving());
  ASSERT_TRUE(p.call(p.pid(), emul::LwpSelfArgs{}, &r).ok());
}

// Request metadata has an explicit bound (8 KiB in all, GRPC_ARG_MAX_METADATA_SIZE): a call
// over it fails with RESOURCE_EXHAUSTED, and the daemon goes on serving every other
// connection. (gRPC 1.51 ends the offending connection with it, and so any Session on that
// connection: README, "Unread streams, wire errors and the runtime directory".)
TEST_F(Faults, OversizedMetadataIsRefusedAndOtherConnectionsGoOn) {
  Proc p(d_->channel());  // its own connection
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());

  auto stub = v1::Inspect::NewStub(d_->channel());
  for (size_t size : {9 * 1024, 64 * 1024}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-padding", std::string(size, 'a'));
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::StatsReply rep;
    grpc::Status st = stub->Stats(&ctx, {}, &rep);
    // A header block much larger than the bound may still be on its way when the daemon
    // drops the connection: the client then sees the reset (UNAVAILABLE) instead.
    if (size > 16 * 1024 && st.error_code() == StatusCode::UNAVAILABLE) continue;
    EXPECT_EQ(st.error_code(), StatusCode::RESOURCE_EXHAUSTED) << size << st.error_message();
  }
  EXPECT_TRUE(d_->serving());
  ASSERT_TRUE(p.call(p.pid(), emul::LwpSelfArgs{}, &r).ok());
  EXPECT_TRUE(listed(p.pid()));
  // Under the bound is fine.
  grpc::ClientContext ok_ctx;
  ok_ctx.AddMetadata("x-padding", std::string(4 * 1024, 'a'));
  v1::StatsReply rep;
  EXPECT_TRUE(stub->Stats(&ok_ctx, {}, &rep).ok());
}

}  // namespace
}  // namespace lwpd::test
