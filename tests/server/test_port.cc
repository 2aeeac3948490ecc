// GrpcPort and the session table against a real emulated kernel, without
// gRPC: fake transports stand in for the reactors. Without gRPC in the way
// (Debian's is not instrumented; the e2e suites run under TSan with the
// suppressions of tests/tsan.supp), these are where the daemon's own locking —
// vCPU threads calling the port under the process lock while transport
// threads register, cancel and enter — is checked for races most directly.
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "server/grpc_port.h"
#include "server/sessions.h"

namespace lwpd::server {
namespace {

using namespace std::chrono_literals;
namespace nb = ::lwpd::netbsd;

emul::KernelConfig cfg() {
  emul::KernelConfig c;
  c.ncpus = 2;
  c.quantum = 5ms;
  c.pin_cpus = false;
  return c;
}

// A transport waiting for returns: a unary call (ends on its first return)
// or a channel (keeps going).
class FakeTarget : public ReturnTarget {
 public:
  explicit FakeTarget(bool channel = false) : channel_(channel) {}
  void Deliver(const v1::SyscallReturn& r) override {
    std::lock_guard g(mu_);
    rets_.push_back(r);
    if (!channel_) ends_++;
    cv_.notify_all();
  }
  void Exited() override { end(); }
  void ProcExited(const v1::ExitStatus&) override { end(); }
  void Fail(const grpc::Status&) override { end(); }

  // Wait for the next return; nullopt if the target ended without one.
  std::optional<v1::SyscallReturn> next(std::chrono::milliseconds limit = 10s) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, limit, [&] { return !rets_.empty() || gone_; });
    if (rets_.empty()) return std::nullopt;
    auto r = rets_.front();
    rets_.pop_front();
    return r;
  }
  int ends() {
    std::lock_guard g(mu_);
    return ends_;
  }
  bool gone() {
    std::lock_guard g(mu_);
    return gone_;
  }

 private:
  void end() {
    std::lock_guard g(mu_);
    gone_ = true;
    ends_++;
    cv_.notify_all();
  }
  const bool channel_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::SyscallReturn> rets_;
  bool gone_ = false;
  int ends_ = 0;
};

class FakeSession : public SessionStream {
 public:
  bool Send(v1::SessionEvent ev) override {
    std::lock_guard g(mu_);
    if (finished_) return false;
    if (ev.has_proc_exited()) exited_++;
    if (ev.has_kick()) kicks_++;
    if (ev.has_lwp_exited()) exit_notices_.push_back(ev.lwp_exited().lid());
    events_++;
    return true;
  }
  void FinishAfterWrites(grpc::Status) override { finish(); }
  void FinishNow(grpc::Status) override { finish(); }
  int exited() {
    std::lock_guard g(mu_);
    return exited_;
  }
  int finishes() {
    std::lock_guard g(mu_);
    return finishes_;
  }
  std::vector<lwpid_t> exit_notices() {
    std::lock_guard g(mu_);
    return exit_notices_;
  }

 private:
  void finish() {
    std::lock_guard g(mu_);
    finished_ = true;
    finishes_++;
  }
  std::mutex mu_;
  bool finished_ = false;
  int exited_ = 0, kicks_ = 0, events_ = 0, finishes_ = 0;
  std::vector<lwpid_t> exit_notices_;
};

// One LWP's system call through the port, the way a reactor makes it.
std::optional<v1::SyscallReturn> sys(emul::Kernel& k, Session& s, lwpid_t lid, FakeTarget& t,
                                     emul::SysArgs a) {
  if (s.port->begin_entry(lid, &t, emul::syscall_number(a)) != GrpcPort::Check::kOk)
    return std::nullopt;
  if (k.syscall(s.proc, lid, std::move(a)) != emul::EntryStatus::kOk) {
    s.port->abort_entry(lid, &t);
    return std::nullopt;
  }
  return t.next();
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::shared_ptr<Session> attach(Sessions& ss, FakeSession& fs) {
  auto r = ss.create("port-test", 0);
  EXPECT_TRUE(r.ok());
  auto s = r.release();
  v1::SessionEvent att;
  att.mutable_attached()->set_pid(s->pid);
  EXPECT_TRUE(s->port->attach_session(&fs, att));
  return s;
}

// grpc_port.h, "Exit notices of a region-served process": a gRPC client hears of every LWP's
// exit; once the process is served over a region, only of LWPs a kick or a signal event
// named (the shim's only use of the notice: dropping what it queued for an unknown LID).
TEST(Port, RegionServedProcessGetsExitNoticesOnlyForLidsASessionEventNamed) {
  GrpcPort port([] {});
  FakeSession fs;
  v1::SessionEvent att;
  att.mutable_attached()->set_pid(100);
  ASSERT_TRUE(port.attach_session(&fs, att));
  emul::SigInfo usr1;
  usr1.signo = nb::NB_SIGUSR1;

  port.lwp_signal(101, usr1);
  port.lwp_exited(101);  // named, gRPC
  port.lwp_exited(102);  // not named, gRPC: still a notice
  port.set_region_served();
  port.lwp_exited(103);  // not named, region-served: none
  port.lwp_signal(104, usr1);
  port.lwp_exited(104);   // named by a signal
  port.lwp_kick(105, 7);  // no channel to kick through: a Session event names it
  port.lwp_exited(105);
  port.lwp_exited(104);        // a second exit of a LID (reused later): not named since
  port.lwp_signal(106, usr1);  // named before the process exits: nothing left behind
  port.proc_exited(emul::ExitStatus{});
  port.lwp_exited(106);
  EXPECT_EQ(fs.exit_notices(), (std::vector<lwpid_t>{101, 102, 104, 105}));
}

TEST(Port, ConcurrentEntriesOnUnaryAndChannelTransports) {
  emul::Kernel k(cfg());
  Sessions ss(k);
  FakeSession fs;
  auto s = attach(ss, fs);
  const lwpid_t pid = s->pid;
  FakeTarget main_t;
  ASSERT_NE(s->port->start_wait(pid, &main_t), GrpcPort::Check::kNoSuchLwp);
  auto r0 = main_t.next();
  ASSERT_TRUE(r0 && r0->kind() == v1::RETURN_START);

  constexpr int kLwps = 6, kRounds = 40;
  std::vector<lwpid_t> lids;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kLwps; i++) {
    emul::LwpCreateArgs c;
    c.uc_flags = nb::UC_CPU;
    FakeTarget t;
    auto r = sys(k, *s, pid, t, c);
    ASSERT_TRUE(r && r->error() == v1::ERRNO_OK);
    lwpid_t lid = static_cast<lwpid_t>(r->retval());
    lids.push_back(lid);
    // Even LWPs use a channel (which takes the buffered RETURN_START), odd
    // ones unary entries (Start first).
    threads.emplace_back([&, lid, chan = i % 2 == 0] {
      FakeTarget ch(true);
      if (chan) {
        if (s->port->open_channel(lid, &ch) != GrpcPort::Check::kOk) return void(failures++);
        if (!ch.next()) return void(failures++);
      } else {
        FakeTarget st;
        if (s->port->start_wait(lid, &st) == GrpcPort::Check::kNoSuchLwp) return void(failures++);
        if (!st.next()) return void(failures++);
      }
      for (int n = 0; n < kRounds; n++) {
        FakeTarget u;
        FakeTarget& t = chan ? ch : u;
        auto r = sys(k, *s, lid, t, emul::SchedYieldArgs{});
        if (!r || r->error() != v1::ERRNO_OK) return void(failures++);
      }
      FakeTarget u;
      FakeTarget& t = chan ? ch : u;
      if (s->port->begin_entry(lid, &t, 310) != GrpcPort::Check::kOk) return void(failures++);
      if (k.syscall(s->proc, lid, emul::LwpExitArgs{}) != emul::EntryStatus::kOk)
        return void(failures++);
      if (!eventually([&] { return t.gone(); })) failures++;
      if (chan) s->port->close_channel(lid, &ch);
    });
  }
  for (lwpid_t lid : lids) {
    FakeTarget t;
    auto r = sys(k, *s, pid, t, emul::LwpWaitArgs{.wait_for = lid});
    EXPECT_TRUE(r && r->error() == v1::ERRNO_OK && r->retval() == lid);
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  FakeTarget t;
  ASSERT_EQ(s->port->begin_entry(pid, &t, 1), GrpcPort::Check::kOk);
  ASSERT_EQ(k.syscall(s->proc, pid, emul::ProcExitArgs{.status = 3}), emul::EntryStatus::kOk);
  EXPECT_TRUE(eventually([&] { return t.gone(); }));
  EXPECT_EQ(t.ends(), 1);
  EXPECT_TRUE(eventually([&] { return fs.exited() == 1; }));
  // Reaped by the janitor: token dead, PID released.
  EXPECT_TRUE(eventually([&] { return ss.find(s->token) == nullptr; }));
  // The janitor drops the token first, then releases the PID: wait for both.
  EXPECT_TRUE(eventually([&] { return k.snapshot_procs().empty(); }));
  EXPECT_EQ(k.check_invariants(), "");
  s->port->detach_session(&fs);
}

TEST(Port, AbandonEndsEveryWaiterOnce) {
  emul::Kernel k(cfg());
  Sessions ss(k);
  FakeSession fs;
  auto s = attach(ss, fs);
  const lwpid_t pid = s->pid;
  FakeTarget st;
  s->port->start_wait(pid, &st);
  ASSERT_TRUE(st.next());
  std::vector<std::unique_ptr<FakeTarget>> parked;
  for (int i = 0; i < 4; i++) {
    emul::LwpCreateArgs c;
    c.uc_flags = nb::UC_CPU;
    FakeTarget t;
    auto r = sys(k, *s, pid, t, c);
    ASSERT_TRUE(r && r->error() == v1::ERRNO_OK);
    lwpid_t lid = static_cast<lwpid_t>(r->retval());
    auto start = std::make_unique<FakeTarget>();
    s->port->start_wait(lid, start.get());
    ASSERT_TRUE(start->next());
    auto p = std::make_unique<FakeTarget>();
    ASSERT_EQ(s->port->begin_entry(lid, p.get(), 478), GrpcPort::Check::kOk);
    ASSERT_EQ(k.syscall(s->proc, lid, emul::LwpParkArgs{}), emul::EntryStatus::kOk);
    parked.push_back(std::move(p));
  }
  // The main LWP is left running "user code" (it never traps: a dead client).
  ss.abandon(*s);
  ss.abandon(*s);  // idempotent
  for (auto& p : parked) {
    EXPECT_TRUE(eventually([&] { return p->gone(); }));
    EXPECT_EQ(p->ends(), 1);
  }
  EXPECT_TRUE(eventually([&] { return fs.exited() == 1; }));
  // The stream's final status comes from the janitor once the process is released, after
  // the exit event: wait for it, then check that nothing finished it twice.
  EXPECT_TRUE(eventually([&] { return fs.finishes() >= 1; }));
  EXPECT_TRUE(eventually([&] { return ss.find(s->token) == nullptr; }));
  // The janitor drops the token first, then releases the PID: wait for both.
  EXPECT_TRUE(eventually([&] { return k.snapshot_procs().empty(); }));
  EXPECT_EQ(fs.finishes(), 1);
  s->port->detach_session(&fs);
}

// A unary call cancelled while its return is being produced: the target ends
// exactly once (by the return or by the cancel), and a return nobody took is
// buffered for the next Start.
TEST(Port, CancelRacesWithReturn) {
  emul::Kernel k(cfg());
  Sessions ss(k);
  FakeSession fs;
  auto s = attach(ss, fs);
  const lwpid_t pid = s->pid;
  FakeTarget st;
  s->port->start_wait(pid, &st);
  ASSERT_TRUE(st.next());
  int cancelled = 0;
  for (int i = 0; i < 200; i++) {
    FakeTarget t;
    emul::LwpParkArgs a;
    a.ts = emul::Timespec{0, 200000};  // 0.2 ms, relative
    ASSERT_EQ(s->port->begin_entry(pid, &t, 478), GrpcPort::Check::kOk);
    ASSERT_EQ(k.syscall(s->proc, pid, a), emul::EntryStatus::kOk);
    std::this_thread::sleep_for(std::chrono::microseconds(i % 7 * 50));
    if (s->port->cancel_entry(pid, &t)) {
      cancelled++;
      EXPECT_EQ(t.ends(), 0);
      // The return arrives later and is kept for Start.
      FakeTarget again;
      ASSERT_NE(s->port->start_wait(pid, &again), GrpcPort::Check::kNoSuchLwp);
      auto r = again.next();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(r->error(), v1::ERRNO_ETIMEDOUT);
    } else {
      auto r = t.next();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(t.ends(), 1);
    }
  }
  ss.abandon(*s);
  EXPECT_TRUE(eventually([&] { return ss.find(s->token) == nullptr; }));
  s->port->detach_session(&fs);
  RecordProperty("cancelled", cancelled);
}

// Session::kill_host signals only through a pidfd, and a pidfd of a process that is gone
// (reaped: its pid may be reused) signals nobody.
TEST(Port, KillHostNeedsAPidfdOfALiveProcess) {
  Session s;
  EXPECT_EQ(s.kill_host(), ESRCH);  // no pidfd held (a TCP peer, an old kernel)
  pid_t child = -1;
  char arg0[] = "sleep", arg1[] = "300";
  char* argv[] = {arg0, arg1, nullptr};
  ASSERT_EQ(::posix_spawnp(&child, "sleep", nullptr, nullptr, argv, environ), 0);
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(pfd, 0);
  s.host_pidfd = std::make_shared<const OwnedFd>(pfd);
  EXPECT_EQ(s.kill_host(), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  EXPECT_EQ(s.kill_host(), ESRCH);
}

}  // namespace
}  // namespace lwpd::server
