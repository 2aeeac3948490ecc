// The shared-memory fast path's daemon side (server/region_server.*) in process: a real
// emulated kernel and session table, a RegionServer per session, and the test as the client,
// writing the region by hand -- the honest protocol first, then everything a hostile client
// can do to its own region: requests that make no sense, random bytes over all of it, a bell
// rung without end, and dying in the middle of a call. No gRPC involved, so these run under
// TSan as well (server_port_tests).
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/region_abi.h"
#include "emul/rt_burst.h"
#include "server/region_server.h"
#include "server/services.h"
#include "server/wire.h"

namespace lwpd::server {
namespace {

using namespace std::chrono_literals;
namespace rg = ::lwpd::region;
namespace nb = ::lwpd::netbsd;

emul::KernelConfig cfg() {
  emul::KernelConfig c;
  c.ncpus = 2;
  c.quantum = 5ms;
  c.pin_cpus = false;
  return c;
}

// The client's view of a region: the test maps the memfd as the shim does.
class RawClient {
 public:
  RawClient(int fd, size_t size) : size_(size) {
    void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT_NE(m, MAP_FAILED);
    base_ = static_cast<char*>(m);
    taken_.resize(header()->nslots);
  }
  ~RawClient() { ::munmap(base_, size_); }

  rg::Header* header() const { return reinterpret_cast<rg::Header*>(base_); }
  rg::Slot* slot(uint32_t i) const {
    return reinterpret_cast<rg::Slot*>(base_ + rg::slot_offset(i));
  }
  char* base() const { return base_; }
  size_t size() const { return size_; }

  void post(uint32_t i, uint32_t op, lwpid_t lid, const std::string& bytes = "", uint64_t gen = 0) {
    rg::Slot* sl = slot(i);
    if (op == rg::kOpStart) {
      sl->term.store(0);
      sl->ret_count.store(0);
      taken_[i] = 0;
    }
    char* dst =
        bytes.size() <= rg::kReqInline ? sl->req : base_ + rg::overflow_offset(header()->nslots, i);
    std::memcpy(dst, bytes.data(), bytes.size());
    sl->op = op;
    sl->lid = lid;
    sl->trap_gen = gen;
    sl->req_len = static_cast<uint32_t>(bytes.size());
    sl->req_seq.fetch_add(1, std::memory_order_release);
    ring(i);
  }
  void ring(uint32_t i) {
    header()->pending[i / 64].fetch_or(uint64_t{1} << (i % 64));
    header()->bell.fetch_add(1);
    rg::futex_wake(&header()->bell);
  }

  struct Answer {
    bool timed_out = false;
    uint32_t term = 0;  // 0: a return
    v1::SyscallReturn ret;
  };
  // Waits for slot `i`'s next answer (bounded: a lost answer fails the test, not hangs it).
  Answer wait(uint32_t i, std::chrono::milliseconds limit = 10s) {
    rg::Slot* sl = slot(i);
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
      sl->waiting.store(1);  // the protocol: the daemon wakes only a waiter that says so
      const uint32_t w = sl->wake.load();
      if (sl->ret_count.load(std::memory_order_acquire) != taken_[i]) {
        taken_[i]++;
        Answer a;
        EXPECT_TRUE(a.ret.ParseFromArray(sl->rep, static_cast<int>(sl->rep_len)));
        EXPECT_EQ(a.ret.gen(), sl->rep_gen);
        return a;
      }
      if (uint32_t t = sl->term.load(std::memory_order_acquire)) return Answer{.term = t};
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) return Answer{.timed_out = true};
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now);
      timespec rel{static_cast<time_t>(left.count() / 1000000000),
                   static_cast<long>(left.count() % 1000000000)};
      rg::futex_wait(&sl->wake, w, &rel);
    }
  }
  Answer call(uint32_t i, lwpid_t lid, const emul::SysArgs& a) {
    post(i, rg::kOpCall, lid, syscall_to_wire(a).SerializeAsString());
    return wait(i);
  }

 private:
  char* base_ = nullptr;
  size_t size_ = 0;
  std::vector<uint32_t> taken_;
};

// A process with a region, its main LWP started on slot 0.
struct RegionProc {
  std::shared_ptr<Session> s;
  RegionServer* region = nullptr;  // owned by the session
  std::unique_ptr<RawClient> c;
};

class RegionTest : public ::testing::Test {
 protected:
  RegionTest() : k_(cfg()), sessions_(k_), d_{.kernel = k_, .sessions = sessions_} {}
  ~RegionTest() override {
    sessions_.shutdown(grpc::Status(grpc::StatusCode::UNAVAILABLE, "test over"));
  }

  RegionProc make(uint32_t nslots = 64, bool start = true) {
    RegionProc p;
    auto r = sessions_.create("region-test", 1000);
    EXPECT_TRUE(r.ok());
    p.s = r.release();
    int fd = -1;
    size_t size = 0;
    EXPECT_EQ(p.s->open_region([&](std::unique_ptr<RegionServer>* out) {
      int err = 0;
      *out = RegionServer::create(d_, *p.s, nslots, &err);
      if (*out == nullptr) return err;
      p.region = out->get();
      fd = ::fcntl((*out)->fd(), F_DUPFD_CLOEXEC, 0);  // the client's own, as the hello gives
      size = (*out)->size();
      return 0;
    }),
              0);
    p.c = std::make_unique<RawClient>(fd, size);
    ::close(fd);
    if (start) {
      p.c->post(0, rg::kOpStart, p.s->pid);
      RawClient::Answer a = p.c->wait(0);
      EXPECT_EQ(a.term, 0u);
      EXPECT_EQ(a.ret.kind(), v1::RETURN_START);
    }
    return p;
  }

  // _lwp_kill(self, 0): the null syscall.
  static emul::SysArgs null_call(lwpid_t self) { return emul::LwpKillArgs{.target = self}; }

  emul::Kernel k_;
  Sessions sessions_;
  Daemon d_;
};

TEST_F(RegionTest, HeaderDescribesTheLayout) {
  RegionProc p = make(100, false);
  const rg::Header* h = p.c->header();
  EXPECT_EQ(h->magic, rg::kMagic);
  EXPECT_EQ(h->version, rg::kVersion);
  EXPECT_EQ(h->nslots, 100u);
  EXPECT_EQ(h->slots_offset, rg::slot_offset(0));
  EXPECT_EQ(h->overflow_offset, rg::overflow_offset(100, 0));
  EXPECT_EQ(p.c->size(), rg::region_size(100));
  // Sealed: the client cannot shrink what the daemon writes to.
  const int fd = ::fcntl(p.region->fd(), F_DUPFD_CLOEXEC, 0);
  EXPECT_NE(::ftruncate(fd, 0), 0);
  EXPECT_EQ(errno, EPERM);
  ::close(fd);
}

// `lwpd --rt-priority` (region_server.h, "Priority"): the serving thread runs SCHED_FIFO, and
// serves as before.
TEST_F(RegionTest, ServingThreadRunsRealTimeWhenAsked) {
  std::string refused;
  std::thread([&] {
    emul::RtBurst b;
    if (int e = b.start(1)) refused = std::strerror(e);
  }).join();
  if (!refused.empty()) GTEST_SKIP() << "SCHED_FIFO is not allowed here: " << refused;
  d_.rt_priority = 1;
  RegionProc p = make();  // the start was served: the thread has set its policy
  const std::string name = "lwpd-rg" + std::to_string(p.s->pid);
  pid_t tid = 0;
  DIR* d = opendir("/proc/self/task");
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) {
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string comm;
    if (std::getline(f, comm) && comm == name) tid = static_cast<pid_t>(std::stoi(e->d_name));
  }
  closedir(d);
  ASSERT_NE(tid, 0) << "no thread named " << name;
  EXPECT_EQ(sched_getscheduler(tid), SCHED_FIFO);
  const lwpid_t self = p.s->pid;
  RawClient::Answer a = p.c->call(0, self, null_call(self));
  ASSERT_EQ(a.term, 0u);
  EXPECT_EQ(a.ret.error(), v1::ERRNO_OK);
}

TEST_F(RegionTest, CallsReturnThroughTheSlot) {
  RegionProc p = make();
  const lwpid_t self = p.s->pid;
  for (int i = 0; i < 200; i++) {
    RawClient::Answer a = p.c->call(0, self, null_call(self));
    ASSERT_EQ(a.term, 0u);
    EXPECT_EQ(a.ret.kind(), v1::RETURN_SYSCALL);
    EXPECT_EQ(a.ret.error(), v1::ERRNO_OK);
  }
  // A NetBSD error comes back as one, not as a broken slot.
  RawClient::Answer a = p.c->call(0, self, emul::LwpKillArgs{.target = self, .signo = 64});
  ASSERT_EQ(a.term, 0u);
  EXPECT_EQ(a.ret.error(), v1::ERRNO_EINVAL);
  EXPECT_EQ(k_.check_invariants(), "");
}

TEST_F(RegionTest, ACreatedLwpRunsOnItsOwnSlotAndExits) {
  RegionProc p = make();
  const lwpid_t self = p.s->pid;
  RawClient::Answer a = p.c->call(0, self, emul::LwpCreateArgs{});
  ASSERT_EQ(a.term, 0u);
  ASSERT_EQ(a.ret.error(), v1::ERRNO_OK);
  const lwpid_t lid = static_cast<lwpid_t>(a.ret.retval());
  p.c->post(5, rg::kOpStart, lid);
  a = p.c->wait(5);
  ASSERT_EQ(a.term, 0u);
  EXPECT_EQ(a.ret.kind(), v1::RETURN_START);
  a = p.c->call(5, lid, null_call(lid));
  EXPECT_EQ(a.ret.error(), v1::ERRNO_OK);
  // _lwp_exit: the slot's answer is the LWP's end; the main LWP collects it with _lwp_wait.
  p.c->post(5, rg::kOpCall, lid, syscall_to_wire(emul::LwpExitArgs{}).SerializeAsString());
  EXPECT_EQ(p.c->wait(5).term, rg::kTermLwpGone);
  a = p.c->call(0, self, emul::LwpWaitArgs{.wait_for = lid});
  EXPECT_EQ(a.ret.error(), v1::ERRNO_OK);
  EXPECT_EQ(k_.check_invariants(), "");
}

TEST_F(RegionTest, NonsenseBreaksOnlyItsSlot) {
  RegionProc p = make();
  const lwpid_t self = p.s->pid;
  RawClient& c = *p.c;
  // A call on a slot never started; a start for an LWP of nobody's; an unknown op; bytes
  // that are no Syscall; a length past the overflow area; a call naming another LID.
  c.post(1, rg::kOpCall, self, syscall_to_wire(null_call(self)).SerializeAsString());
  EXPECT_EQ(c.wait(1).term, rg::kTermBroken);
  c.post(2, rg::kOpStart, 29999);
  EXPECT_EQ(c.wait(2).term, rg::kTermBroken);
  c.post(3, 77, self);
  EXPECT_EQ(c.wait(3).term, rg::kTermBroken);
  // The main LWP's slot keeps working through all of that.
  EXPECT_EQ(c.call(0, self, null_call(self)).ret.error(), v1::ERRNO_OK);
  c.post(0, rg::kOpCall, self, std::string("\xff\xff\xff\xff garbage", 13));
  EXPECT_EQ(c.wait(0).term, rg::kTermBroken);
  EXPECT_EQ(k_.check_invariants(), "");
  // A second process is unaffected by the first's nonsense.
  RegionProc q = make();
  EXPECT_EQ(q.c->call(0, q.s->pid, null_call(q.s->pid)).ret.error(), v1::ERRNO_OK);
  q.c->post(0, rg::kOpCall, q.s->pid, std::string(rg::kOverflowStride + 1, 'x'));
  EXPECT_EQ(q.c->wait(0).term, rg::kTermBroken);
  EXPECT_EQ(k_.check_invariants(), "");
}

TEST_F(RegionTest, LargeRequestsUseTheOverflowArea) {
  RegionProc p = make();
  const lwpid_t self = p.s->pid;
  emul::LwpUnparkAllArgs ua;
  ua.ntargets = nb::LWP_UNPARK_MAX;
  ua.targets.assign(nb::LWP_UNPARK_MAX, self);  // not parked: each leaves an unpark pending
  RawClient::Answer a = p.c->call(0, self, ua);
  ASSERT_EQ(a.term, 0u);
  EXPECT_EQ(a.ret.error(), v1::ERRNO_OK);
}

// Random bytes over a live region (header, slots, overflow), rung at random, while a second
// process works beside it: the daemon writes only answers, reads only copies,
// and nothing of it reaches the other process or the kernel's invariants.
TEST_F(RegionTest, ScribbledRegionHurtsOnlyItsProcess) {
  RegionProc victim = make();
  RegionProc other = make();
  std::atomic<bool> done{false};
  std::thread scribbler([&] {
    std::mt19937_64 rng(12345);
    RawClient& c = *victim.c;
    const size_t words = c.size() / 8;
    auto* w = reinterpret_cast<uint64_t*>(c.base());
    for (int round = 0; round < 2000; round++) {
      for (int j = 0; j < 64; j++) {
        // Header and slots most of the time (where the daemon looks), overflow sometimes.
        const size_t hot = rg::slot_offset(8) / 8;
        const size_t at = rng() % 4 != 0 ? rng() % hot : rng() % words;
        std::atomic_ref<uint64_t>(w[at]).store(rng(), std::memory_order_relaxed);
      }
      c.ring(static_cast<uint32_t>(rng() % 8));
    }
    done.store(true);
  });
  const lwpid_t o = other.s->pid;
  int calls = 0;
  while (!done.load() || calls < 100) {
    RawClient::Answer a = other.c->call(0, o, null_call(o));
    ASSERT_FALSE(a.timed_out);
    ASSERT_EQ(a.term, 0u);
    ASSERT_EQ(a.ret.error(), v1::ERRNO_OK);
    calls++;
  }
  scribbler.join();
  EXPECT_EQ(k_.check_invariants(), "");
  // The victim's end: its session breaks (the daemon abandons it); everything it held goes.
  sessions_.abandon(*victim.s);
  EXPECT_EQ(k_.check_invariants(), "");
  EXPECT_EQ(other.c->call(0, o, null_call(o)).ret.error(), v1::ERRNO_OK);
}

// A client that dies in the middle of calls: its LWPs parked in the kernel, one mid-entry.
TEST_F(RegionTest, ClientDiesMidCall) {
  RegionProc p = make();
  const lwpid_t self = p.s->pid;
  RawClient::Answer a = p.c->call(0, self, emul::LwpCreateArgs{});
  const lwpid_t lid = static_cast<lwpid_t>(a.ret.retval());
  p.c->post(1, rg::kOpStart, lid);
  ASSERT_EQ(p.c->wait(1).term, 0u);
  // Both park with no timeout; the answers never come while they sleep.
  p.c->post(0, rg::kOpCall, self, syscall_to_wire(emul::LwpParkArgs{}).SerializeAsString());
  p.c->post(1, rg::kOpCall, lid, syscall_to_wire(emul::LwpParkArgs{}).SerializeAsString());
  EXPECT_TRUE(p.c->wait(0, 50ms).timed_out);
  sessions_.abandon(*p.s);  // the client died: its session broke
  // Each slot hears of its LWP's end (as an LWP channel does; the Session stream carries the
  // process's exit).
  EXPECT_EQ(p.c->wait(0).term, rg::kTermLwpGone);
  EXPECT_EQ(p.c->wait(1).term, rg::kTermLwpGone);
  EXPECT_EQ(k_.check_invariants(), "");
}

TEST_F(RegionTest, DoorbellWithoutRequestsIsCutOff) {
  d_.region_max_idle_wakeups = 200;
  RegionProc p = make();
  RawClient& c = *p.c;
  // Ring until the daemon gives up on the process (its LWP's end reaches slot 0).
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (c.slot(0)->term.load() == 0 && std::chrono::steady_clock::now() < until) {
    c.header()->bell.fetch_add(1);
    rg::futex_wake(&c.header()->bell);
  }
  EXPECT_EQ(c.slot(0)->term.load(), rg::kTermLwpGone);  // its process was killed
  EXPECT_EQ(sessions_.cut_offs(), 1u);
}

// ---- the hello -----------------------------------------------------------------------------

class HelloTest : public RegionTest {
 protected:
  struct Reply {
    rg::HelloReply rep;
    int memfd = -1;
  };
  // Send `hello` on a socketpair as `peer`, and read the daemon's answer.
  Reply say(const std::string& hello, const Peer& peer) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    EXPECT_EQ(::send(sv[1], hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
    serve_region_hello(d_, sv[0], peer);  // closes sv[0]
    Reply r;
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{.iov_base = &r.rep, .iov_len = sizeof r.rep};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    EXPECT_EQ(::recvmsg(sv[1], &msg, MSG_CMSG_CLOEXEC), static_cast<ssize_t>(sizeof r.rep));
    if (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr && c->cmsg_type == SCM_RIGHTS)
      std::memcpy(&r.memfd, CMSG_DATA(c), sizeof(int));
    ::close(sv[1]);
    return r;
  }
  static std::string hello_for(const std::string& token) {
    return std::string(rg::kPreface, rg::kPrefaceLen) + token;
  }
  std::shared_ptr<Session> attach(uint32_t uid, pid_t host_pid) {
    Peer peer{.is_unix = true, .uid = uid, .gid = uid, .pid = host_pid};
    auto r = sessions_.create("hello", SessionIdentity{.uid = uid, .peer = peer});
    EXPECT_TRUE(r.ok());
    return r.release();
  }
};

TEST_F(HelloTest, TheAttachedProcessGetsItsRegionOnce) {
  auto s = attach(1000, 4242);
  const Peer same{.is_unix = true, .uid = 1000, .gid = 1000, .pid = 4242};
  Reply r = say(hello_for(s->token), same);
  ASSERT_EQ(r.rep.error, 0);
  ASSERT_GE(r.memfd, 0);
  EXPECT_EQ(r.rep.size, rg::region_size(r.rep.nslots));
  EXPECT_TRUE(s->has_region());
  auto pids = sessions_.pids_with_region();
  EXPECT_EQ(pids.count(s->pid), 1u);
  ::close(r.memfd);
  // One region per session: a second hello is refused.
  Reply again = say(hello_for(s->token), same);
  EXPECT_EQ(again.rep.error, EEXIST);
  EXPECT_LT(again.memfd, 0);
}

TEST_F(HelloTest, OthersAreRefused) {
  auto s = attach(1000, 4242);
  // Another uid, another process of the same uid, a TCP peer, an unknown token, a short hello.
  EXPECT_EQ(say(hello_for(s->token), Peer{.is_unix = true, .uid = 1001, .pid = 4242}).rep.error,
            EACCES);
  EXPECT_EQ(say(hello_for(s->token), Peer{.is_unix = true, .uid = 1000, .pid = 4243}).rep.error,
            EACCES);
  EXPECT_EQ(say(hello_for(s->token), Peer{.is_unix = false}).rep.error, EACCES);
  EXPECT_EQ(say(hello_for(std::string(32, '0')), Peer{.is_unix = true, .uid = 1000, .pid = 4242})
                .rep.error,
            ENOENT);
  EXPECT_EQ(say(hello_for(s->token).substr(0, 40), Peer{.is_unix = true, .uid = 1000, .pid = 4242})
                .rep.error,
            EPROTO);
  EXPECT_FALSE(s->has_region());
  // A daemon that does not offer regions says so.
  d_.offer_regions = false;
  EXPECT_EQ(say(hello_for(s->token), Peer{.is_unix = true, .uid = 1000, .pid = 4242}).rep.error,
            EPROTONOSUPPORT);
}

}  // namespace
}  // namespace lwpd::server
