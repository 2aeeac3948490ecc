// End-to-end tests: a real lwpd child process driven through the generated
// C++ stubs, the way any client (the shim, Python) talks to it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include "daemon.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using grpc::StatusCode;
namespace nb = ::lwpd::netbsd;

// Time bounds stretched in sanitizer builds: a TSan daemon runs several times slower (its
// shutdown alone measured 2.7 s here), which says nothing about promptness.
#if defined(__SANITIZE_THREAD__)
constexpr int kSlow = 5;
#elif defined(__SANITIZE_ADDRESS__)
constexpr int kSlow = 2;
#else
constexpr int kSlow = 1;
#endif

class E2E : public ::testing::Test {
 protected:
  void SetUp() override {
    d_ = std::make_unique<DaemonProcess>(2);
    ASSERT_TRUE(d_->ready()) << "lwpd did not come up; log:\n" << d_->log();
    ch_ = d_->channel();
    inspect_ = v1::Inspect::NewStub(ch_);
  }
  void TearDown() override {
    if (HasFailure() && d_) std::cerr << "---- lwpd log ----\n" << d_->log();
  }

  std::vector<int32_t> pids() {
    grpc::ClientContext ctx;
    v1::ListProcsReply r;
    EXPECT_TRUE(inspect_->ListProcs(&ctx, {}, &r).ok());
    std::vector<int32_t> out;
    for (auto& p : r.procs()) out.push_back(p.pid());
    return out;
  }
  bool has_pid(int32_t pid) {
    auto v = pids();
    return std::find(v.begin(), v.end(), pid) != v.end();
  }
  std::optional<v1::ProcInfo> lwps(int32_t pid) {
    grpc::ClientContext ctx;
    v1::ListLwpsRequest req;
    req.set_pid(pid);
    v1::ListLwpsReply r;
    if (!inspect_->ListLwps(&ctx, req, &r).ok()) return std::nullopt;
    return r.proc();
  }

  std::unique_ptr<DaemonProcess> d_;
  std::shared_ptr<grpc::Channel> ch_;
  std::unique_ptr<v1::Inspect::Stub> inspect_;
};

emul::LwpCreateArgs new_lwp() {
  emul::LwpCreateArgs a;
  a.uc_flags = nb::UC_CPU;
  a.pc = 0x400000;
  return a;
}

TEST_F(E2E, AttachStartSelfCreateChannelExitWait) {
  Proc p(ch_);
  ASSERT_TRUE(p.ok());
  EXPECT_GT(p.pid(), 0);
  EXPECT_EQ(p.token().size(), 32u);
  EXPECT_EQ(p.attached().ncpus(), 2);
  EXPECT_EQ(p.attached().lwpctl_path(), d_->runtime_dir() + "/lwpctl." + std::to_string(p.pid()));

  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  EXPECT_EQ(r.kind(), v1::RETURN_START);
  EXPECT_GT(r.gen(), 0u);

  ASSERT_TRUE(p.call(p.pid(), emul::LwpSelfArgs{}, &r).ok());
  EXPECT_EQ(r.kind(), v1::RETURN_SYSCALL);
  EXPECT_EQ(r.error(), v1::ERRNO_OK);
  EXPECT_EQ(r.retval(), p.pid());

  ASSERT_TRUE(p.call(p.pid(), new_lwp(), &r).ok());
  ASSERT_EQ(r.error(), v1::ERRNO_OK);
  const int32_t lid = static_cast<int32_t>(r.retval());
  EXPECT_NE(lid, p.pid());

  // The new LWP's thread: its own channel, RETURN_START, then _lwp_exit.
  grpc::Status chan_status;
  bool got_start = false, got_exited = false;
  std::thread t([&] {
    auto ctx = call_ctx(p.token());
    auto s = p.stub().LwpChannel(ctx.get());
    v1::LwpRequest req;
    req.mutable_open()->set_lid(lid);
    if (!s->Write(req)) return;
    v1::LwpEvent ev;
    if (!s->Read(&ev)) return;
    got_start = ev.has_ret() && ev.ret().kind() == v1::RETURN_START;
    req.Clear();
    *req.mutable_syscall() = sys(emul::LwpExitArgs{});
    if (!s->Write(req)) return;
    while (s->Read(&ev))
      if (ev.has_exited()) got_exited = ev.exited();
    s->WritesDone();
    chan_status = s->Finish();
  });

  ASSERT_TRUE(p.call(p.pid(), emul::LwpWaitArgs{.wait_for = lid}, &r).ok());
  EXPECT_EQ(r.error(), v1::ERRNO_OK);
  EXPECT_EQ(r.retval(), lid);
  t.join();
  EXPECT_TRUE(got_start);
  EXPECT_TRUE(got_exited);
  EXPECT_TRUE(chan_status.ok()) << chan_status.error_message();

  // exit(2): the Call ends ABORTED, the session reports the status and ends OK.
  grpc::Status st = p.call(p.pid(), emul::ProcExitArgs{.status = 7}, &r);
  EXPECT_EQ(st.error_code(), StatusCode::ABORTED);
  grpc::Status fin;
  auto ex = p.await_exit(&fin);
  ASSERT_TRUE(ex.has_value());
  EXPECT_FALSE(ex->signaled());
  EXPECT_EQ(ex->code(), 7);
  EXPECT_TRUE(fin.ok()) << fin.error_message();

  // The process is released: gone from the table, its token dead.
  auto end = std::chrono::steady_clock::now() + 1s;
  while (has_pid(p.pid()) && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(has_pid(p.pid()));
  EXPECT_EQ(p.call(p.pid(), emul::LwpSelfArgs{}, &r).error_code(), StatusCode::UNAUTHENTICATED);
}

TEST_F(E2E, MissingOrForgedTokenIsUnauthenticated) {
  auto stub = v1::Kernel::NewStub(ch_);
  v1::LwpCall c;
  c.set_lid(1);
  *c.mutable_syscall() = sys(emul::LwpSelfArgs{});
  v1::SyscallReturn r;
  {
    auto ctx = call_ctx("");
    EXPECT_EQ(stub->Call(ctx.get(), c, &r).error_code(), StatusCode::UNAUTHENTICATED);
  }
  {
    auto ctx = call_ctx(std::string(32, 'a'));
    EXPECT_EQ(stub->Call(ctx.get(), c, &r).error_code(), StatusCode::UNAUTHENTICATED);
  }
  {
    auto ctx = call_ctx("forged");
    v1::LwpRef ref;
    ref.set_lid(1);
    EXPECT_EQ(stub->Start(ctx.get(), ref, &r).error_code(), StatusCode::UNAUTHENTICATED);
  }
  {
    auto ctx = call_ctx("forged");
    auto s = stub->LwpChannel(ctx.get());
    v1::LwpRequest req;
    req.mutable_open()->set_lid(1);
    s->Write(req);
    s->WritesDone();
    v1::LwpEvent ev;
    while (s->Read(&ev)) {
    }
    EXPECT_EQ(s->Finish().error_code(), StatusCode::UNAUTHENTICATED);
  }

  // A real token only reaches its own process.
  Proc a(ch_, "a"), b(ch_, "b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(b.start(b.pid(), &r).ok());
  {
    auto ctx = call_ctx(a.token());
    v1::LwpCall cb;
    cb.set_lid(b.pid());
    *cb.mutable_syscall() = sys(emul::LwpSelfArgs{});
    EXPECT_EQ(a.stub().Call(ctx.get(), cb, &r).error_code(), StatusCode::NOT_FOUND);
  }
  // The daemon still serves.
  ASSERT_TRUE(b.call(b.pid(), emul::LwpSelfArgs{}, &r).ok());
  EXPECT_EQ(r.retval(), b.pid());
  EXPECT_TRUE(d_->serving());
}

TEST_F(E2E, MalformedRequestsAreInvalidArgument) {
  auto stub = v1::Kernel::NewStub(ch_);
  // Session whose first message is not Attach; and an empty one.
  for (int variant = 0; variant < 2; variant++) {
    grpc::ClientContext ctx;
    auto s = stub->Session(&ctx);
    v1::SessionRequest req;
    if (variant == 0) req.set_sigrestart(1);
    s->Write(req);
    s->WritesDone();
    v1::SessionEvent ev;
    while (s->Read(&ev)) {
    }
    EXPECT_EQ(s->Finish().error_code(), StatusCode::INVALID_ARGUMENT) << variant;
  }

  Proc p(ch_);
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  // Call without a syscall.
  {
    auto ctx = call_ctx(p.token());
    v1::LwpCall c;
    c.set_lid(p.pid());
    EXPECT_EQ(p.stub().Call(ctx.get(), c, &r).error_code(), StatusCode::INVALID_ARGUMENT);
  }
  // Channel misuse: syscall before open, empty request, open of a foreign LID.
  auto channel_status = [&](const std::vector<v1::LwpRequest>& reqs) {
    auto ctx = call_ctx(p.token());
    auto s = p.stub().LwpChannel(ctx.get());
    for (auto& q : reqs) s->Write(q);
    s->WritesDone();
    v1::LwpEvent ev;
    while (s->Read(&ev)) {
    }
    return s->Finish().error_code();
  };
  v1::LwpRequest sysreq, empty, open_bad, open_main;
  *sysreq.mutable_syscall() = sys(emul::LwpSelfArgs{});
  open_bad.mutable_open()->set_lid(p.pid() + 1000);
  open_main.mutable_open()->set_lid(p.pid());
  EXPECT_EQ(channel_status({sysreq}), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(channel_status({empty}), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(channel_status({open_bad}), StatusCode::NOT_FOUND);
  EXPECT_EQ(channel_status({open_main, open_main}), StatusCode::INVALID_ARGUMENT);
  v1::LwpRequest empty_sys;
  empty_sys.mutable_syscall();
  EXPECT_EQ(channel_status({open_main, empty_sys}), StatusCode::INVALID_ARGUMENT);

  // Start of an LWP already in user mode; Call/Start for an unknown LID.
  EXPECT_EQ(p.start(p.pid(), &r).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(p.start(p.pid() + 1000, &r).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(p.call(p.pid() + 1000, emul::LwpSelfArgs{}, &r).error_code(), StatusCode::NOT_FOUND);

  // And the process and daemon are fine.
  ASSERT_TRUE(p.call(p.pid(), emul::LwpSelfArgs{}, &r).ok());
  EXPECT_EQ(r.retval(), p.pid());
  Proc q(ch_);
  EXPECT_TRUE(q.ok());
}

// The client part runs in a separate process (this binary re-executed with
// --child-client, see main.cc) so it can be SIGKILLed like a real program.
pid_t spawn_child_client(const std::string& address, int nlwps, int* out_fd) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    std::string n = std::to_string(nlwps);
    char self[4096];
    ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) ::_exit(126);
    self[len] = 0;
    const char* argv[] = {self, "--child-client", address.c_str(), n.c_str(), nullptr};
    ::execv(self, const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[1]);
  *out_fd = fds[0];
  return pid;
}

TEST_F(E2E, KilledClientIsReapedAndDaemonServes) {
  constexpr int kExtra = 3;  // LWPs besides the main one, all parked
  int fd = -1;
  pid_t child = spawn_child_client(d_->address(), kExtra, &fd);
  ASSERT_GT(child, 0);
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  ::close(fd);
  ASSERT_FALSE(line.empty()) << "child client failed";
  const int32_t pid = std::stoi(line);

  // Every LWP parked (asleep on "parked").
  bool parked = false;
  auto end = std::chrono::steady_clock::now() + 10s;
  while (!parked && std::chrono::steady_clock::now() < end) {
    auto pi = lwps(pid);
    ASSERT_TRUE(pi.has_value());
    int n = 0;
    for (auto& l : pi->lwps()) n += l.state() == v1::LSSLEEP && l.wchan() == "parked";
    parked = n == kExtra + 1;
    if (!parked) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(parked);

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  auto t0 = std::chrono::steady_clock::now();
  while (has_pid(pid) && std::chrono::steady_clock::now() - t0 < 1s)
    std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(has_pid(pid)) << "process of the killed client still listed after 1 s";
  grpc::ClientContext ctx;
  v1::ListLwpsRequest req;
  req.set_pid(pid);
  v1::ListLwpsReply rep;
  EXPECT_EQ(inspect_->ListLwps(&ctx, req, &rep).error_code(), StatusCode::NOT_FOUND);

  Proc p(ch_);
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  ASSERT_TRUE(p.call(p.pid(), emul::LwpSelfArgs{}, &r).ok());
  EXPECT_EQ(r.retval(), p.pid());
}

TEST_F(E2E, CancelledSessionKillsProcess) {
  auto p = std::make_unique<Proc>(ch_);
  ASSERT_TRUE(p->ok());
  const int32_t pid = p->pid();
  v1::SyscallReturn r;
  ASSERT_TRUE(p->start(pid, &r).ok());
  ASSERT_TRUE(has_pid(pid));
  p.reset();  // cancels the session stream
  // The bound is 1 s; ThreadSanitizer's 5-15x slowdown (with parallel tests) gets 5 s.
#if defined(__SANITIZE_THREAD__)
  const auto bound = 5s;
#else
  const auto bound = 1s;
#endif
  auto t0 = std::chrono::steady_clock::now();
  while (has_pid(pid) && std::chrono::steady_clock::now() - t0 < bound)
    std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(has_pid(pid));
}

TEST_F(E2E, InspectCpusAndStats) {
  {
    grpc::ClientContext ctx;
    v1::ListCpusReply r;
    ASSERT_TRUE(inspect_->ListCpus(&ctx, {}, &r).ok());
    ASSERT_EQ(r.cpus_size(), 2);
    EXPECT_EQ(r.cpus(1).index(), 1);
  }
  Proc p(ch_);
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  ASSERT_TRUE(p.call(p.pid(), emul::LwpSelfArgs{}, &r).ok());
  {
    grpc::ClientContext ctx;
    v1::StatsReply s;
    ASSERT_TRUE(inspect_->Stats(&ctx, {}, &s).ok());
    EXPECT_EQ(s.ncpus(), 2);
    EXPECT_EQ(s.nprocs(), 1);
    EXPECT_EQ(s.nlwps(), 1);
    EXPECT_GE(s.syscalls(), 1u);
    EXPECT_GT(s.rss_bytes(), 0);
    EXPECT_FALSE(s.version().empty());
  }
  auto pi = lwps(p.pid());
  ASSERT_TRUE(pi.has_value());
  ASSERT_EQ(pi->lwps_size(), 1);
  EXPECT_EQ(pi->lwps(0).lid(), p.pid());
  EXPECT_EQ(pi->lwps(0).state(), v1::LSONPROC);
  EXPECT_EQ(pi->comm(), "e2e");
  EXPECT_FALSE(lwps(p.pid() + 1000).has_value());
}

TEST_F(E2E, SigtermExitsZeroPromptlyAndEndsSessions) {
  Proc p(ch_);
  ASSERT_TRUE(p.ok());
  v1::SyscallReturn r;
  ASSERT_TRUE(p.start(p.pid(), &r).ok());
  // A Call that would block forever (park without timeout).
  grpc::Status parked;
  std::thread t([&] { parked = p.call(p.pid(), emul::LwpParkArgs{}, &r, 30s); });
  auto end = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto pi = lwps(p.pid());
    if (pi && pi->lwps_size() == 1 && pi->lwps(0).wchan() == "parked") break;
    ASSERT_LT(std::chrono::steady_clock::now(), end);
    std::this_thread::sleep_for(5ms);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto st = d_->terminate(5s * kSlow);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(st.has_value()) << "lwpd did not exit within " << 5 * kSlow << " s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st)) << *st;
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  EXPECT_LT(took, 2s * kSlow);
  t.join();
  EXPECT_EQ(parked.error_code(), StatusCode::UNAVAILABLE) << parked.error_message();
  grpc::Status fin;
  p.await_exit(&fin);
  EXPECT_EQ(fin.error_code(), StatusCode::UNAVAILABLE) << fin.error_message();
}

}  // namespace
}  // namespace lwpd::test
