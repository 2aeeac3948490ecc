// The shared-memory transport (transport.h): kernel entries through a region the daemon
// shares with this process (common/region_abi.h), the Session stream of the gRPC transport
// for everything else.
//
//   attach   the gRPC transport's Attach, then a hello on a second connection to the same
//            Unix socket: the session token out, the region's memfd (SCM_RIGHTS) back.
//   events   the gRPC transport's, unchanged: kicks, signals and exits still come on the
//            Session stream, which stays the process's lifeline (a daemon that dies ends it).
//   channel  one slot per LWP, taken from a free list at open_channel(): post a request and
//            futex-wait on the slot's `wake` word for the answer. No helper thread: the
//            LWP's own thread wakes the daemon and is woken by it. The kick handler's trap
//            is the same three steps with atomics and futex calls only (async-signal-safe).
// Where no region can be had (a TCP endpoint, a daemon started with --no-shm or too old),
// channels are the gRPC transport's, unless LWPD_TRANSPORT=shm asked for this one by name.
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/region_abi.h"
#include "sanitizer.h"
#include "transport.h"
#include "wire_codec.h"

namespace lwpd::client {
namespace {

namespace rg = ::lwpd::region;

ChannelEnd end_of(uint32_t term, const rg::Slot& sl) {
  ChannelEnd e;
  switch (term) {
    case rg::kTermLwpGone:
      e.kind = ChannelEnd::Kind::kLwpGone;
      break;
    case rg::kTermProcExited:
      e.kind = ChannelEnd::Kind::kProcExited;
      e.status = ExitStatus{sl.exit_signaled != 0, sl.exit_code};
      break;
    default:
      e.kind = ChannelEnd::Kind::kBroken;
      e.what = "lwpd refused this LWP's request on the shared-memory region";
      break;
  }
  return e;
}

// The path of a unix: endpoint ("unix:/p", "unix:///p"); "" for any other.
std::string unix_path(const std::string& ep) {
  if (ep.rfind("unix://", 0) == 0) return ep.substr(7);
  if (ep.rfind("unix:", 0) == 0) return ep.substr(5);
  return "";
}

class ShmTransport;

// ---- one LWP's slot ------------------------------------------------------------------------

class ShmChannel final : public LwpChannel {
 public:
  ShmChannel(ShmTransport& t, nb::lwpid_t lid, uint32_t index, rg::Slot* sl, rg::Header* h,
             char* overflow)
      : t_(t), lid_(lid), index_(index), sl_(sl), h_(h), overflow_(overflow) {}
  ~ShmChannel() override { close(); }

  void post_start() override {
    // A fresh binding: answers left from the slot's previous LWP are not ours.
    sl_->term.store(rg::kTermNone, std::memory_order_relaxed);
    sl_->ret_count.store(0, std::memory_order_relaxed);
    sl_->kick_gen.store(0, std::memory_order_relaxed);
    // No thread to kick yet (a previous LWP's may still be named here): until start()
    // names the LWP's own, the daemon's kicks travel on the Session stream.
    std::atomic_ref<int32_t>(sl_->tid).store(0, std::memory_order_relaxed);
    sl_->kick_signo = g_kick_signal;
    taken_ = 0;
    post(rg::kOpStart, 0, 0);
    start_posted_ = true;
  }

  ChannelEnd start(uint64_t* gen) override {
    if (!start_posted_) post_start();
    // Where the daemon sends this LWP's kicks: the thread that starts it runs it.
    std::atomic_ref<int32_t>(sl_->tid).store(static_cast<int32_t>(syscall(SYS_gettid)),
                                             std::memory_order_release);
    // Usually answered already: the creator posted the start, and the daemon dispatched the
    // new LWP while this thread was being made.
    if (uint32_t term = wait_answer(0, true)) return end_of(term, *sl_);
    LWPD_KERNEL_RETURN();  // the daemon orders what made the LWP runnable before this
    *gen = sl_->rep_gen;
    return ChannelEnd{};
  }

  ChannelEnd call(const SysRequest& rq, SysReply* out) override {
    pb::Syscall w;
    encode_request(rq, &w);
    const size_t n = w.ByteSizeLong();
    char* dst = n <= rg::kReqInline ? sl_->req : overflow_;
    if (n > rg::kOverflowStride || !w.SerializeToArray(dst, static_cast<int>(n))) {
      ChannelEnd e;
      e.kind = ChannelEnd::Kind::kBroken;
      e.what = "request too large for the shared-memory slot";
      return e;
    }
    LWPD_KERNEL_ENTRY();
    post(rg::kOpCall, 0, static_cast<uint32_t>(n));
    if (uint32_t term = wait_answer(0, !may_sleep(rq))) return end_of(term, *sl_);
    LWPD_KERNEL_RETURN();
    pb::SyscallReturn r;
    const uint32_t len = sl_->rep_len <= rg::kRepInline ? sl_->rep_len : 0;
    if (!r.ParseFromArray(sl_->rep, static_cast<int>(len))) {
      ChannelEnd e;
      e.kind = ChannelEnd::Kind::kBroken;
      e.what = "undecodable return in the shared-memory slot";
      return e;
    }
    decode_return(r, out);
    return ChannelEnd{};
  }

  ChannelEnd trap(uint64_t gen, uint64_t* new_gen) override {
    LWPD_KERNEL_ENTRY();
    post(rg::kOpTrap, gen, 0);
    if (uint32_t term = wait_answer()) return end_of(term, *sl_);
    LWPD_KERNEL_RETURN();
    *new_gen = sl_->rep_gen;
    return ChannelEnd{};
  }

  ChannelEnd exit() override {
    SysReply ignored;
    ChannelEnd e = call(LwpExitReq{}, &ignored);
    // _lwp_exit() has no return: only the LWP's end (or the process's) answers it.
    while (e.ok()) {
      uint32_t term = wait_answer();
      if (term != 0) return end_of(term, *sl_);
    }
    return e;
  }

  void exit_for_detach() override;

  // ASYNC-SIGNAL-SAFE: atomics and futex calls only.
  bool trap_from_handler(uint64_t gen, uint64_t* new_gen) override {
    post(rg::kOpTrap, gen, 0);
    if (wait_answer() != 0) return false;
    *new_gen = sl_->rep_gen;
    return true;
  }

  void close() override;

  const std::atomic<uint64_t>* kick_word() const override { return &sl_->kick_gen; }

 private:
  // ASYNC-SIGNAL-SAFE. Publish the request written so far and ring the daemon.
  void post(uint32_t op, uint64_t gen, uint32_t len) {
    sl_->op = op;
    sl_->lid = lid_;
    sl_->trap_gen = gen;
    sl_->req_len = len;
    sl_->req_seq.fetch_add(1, std::memory_order_release);
    h_->pending[index_ / 64].fetch_or(uint64_t{1} << (index_ % 64), std::memory_order_release);
    h_->bell.fetch_add(1, std::memory_order_seq_cst);
    if (h_->sleeping.load(std::memory_order_seq_cst) != 0) rg::futex_wake(&h_->bell);
  }

  // Calls that usually put their LWP to sleep in the daemon: their answer waits for another
  // LWP or the clock, so spinning for it would only keep a host CPU from the LWP that is to
  // answer it.
  static bool may_sleep(const SysRequest& rq) {
    return std::holds_alternative<LwpParkReq>(rq) || std::holds_alternative<LwpWaitReq>(rq) ||
           std::holds_alternative<WaitReq>(rq) || std::holds_alternative<LwpSuspendReq>(rq) ||
           std::holds_alternative<SchedYieldReq>(rq) || std::holds_alternative<LwpExitReq>(rq) ||
           std::holds_alternative<ProcExitReq>(rq);
  }

  // ASYNC-SIGNAL-SAFE. 0 when a return came (taken), else the slot's Term. `bound_ms` > 0
  // gives up after that long without an answer (kTermBroken). `spin`: try a bounded spin
  // first (region_abi.h, Spinner).
  uint32_t wait_answer(long bound_ms = 0, bool spin = false) {
    timespec t0{};
    if (bound_ms > 0) clock_gettime(CLOCK_MONOTONIC, &t0);
    auto answered = [this] {
      return sl_->ret_count.load(std::memory_order_acquire) != taken_ ||
             sl_->term.load(std::memory_order_acquire) != 0;
    };
    if (spin) spinner_.spin(answered);
    for (;;) {
      sl_->waiting.store(1, std::memory_order_seq_cst);
      const uint32_t w = sl_->wake.load(std::memory_order_seq_cst);
      if (sl_->ret_count.load(std::memory_order_acquire) != taken_) {
        sl_->waiting.store(0, std::memory_order_relaxed);
        taken_++;
        return 0;
      }
      if (uint32_t term = sl_->term.load(std::memory_order_acquire)) {
        sl_->waiting.store(0, std::memory_order_relaxed);
        return term;
      }
      if (bound_ms <= 0) {
        rg::futex_wait(&sl_->wake, w);
        continue;
      }
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      const long waited = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
      if (waited >= bound_ms) return rg::kTermBroken;
      const long left = bound_ms - waited;
      timespec rel{left / 1000, (left % 1000) * 1000000L};
      rg::futex_wait(&sl_->wake, w, &rel);
    }
  }

  ShmTransport& t_;
  const nb::lwpid_t lid_;
  const uint32_t index_;
  rg::Slot* const sl_;
  rg::Header* const h_;
  char* const overflow_;
  uint32_t taken_ = 0;   // returns taken since start(); the channel's thread's (transport.h)
  rg::Spinner spinner_;  // the channel's thread's, like taken_
  bool start_posted_ = false;
  bool closed_ = false;
};

// ---- the process ---------------------------------------------------------------------------

class ShmTransport final : public Transport {
 public:
  ShmTransport(const std::string& endpoint, bool required)
      : endpoint_(endpoint), required_(required), session_(make_grpc_transport(endpoint)) {}
  ~ShmTransport() override {
    if (base_ != nullptr) munmap(base_, size_);
  }

  const char* name() const override { return base_ != nullptr ? "shm" : "grpc"; }
  const std::string& session_token() const override { return session_->session_token(); }

  int attach(const AttachInfo& info, AttachReply* out) override {
    if (int e = session_->attach(info, out)) return e;
    const char* why = nullptr;
    const int e = open_region(&why);
    if (e != 0 && required_) {
      fprintf(stderr, "liblwpclient: LWPD_TRANSPORT=shm: no shared-memory region: %s\n", why);
      session_->stop();  // the session ends: the daemon drops the process
      return e;
    }
    return 0;
  }
  void start(EventSink sink) override { session_->start(std::move(sink)); }
  void send_sigrestart(uint64_t nb_mask) override { session_->send_sigrestart(nb_mask); }
  std::unique_ptr<LwpChannel> open_channel(nb::lwpid_t lid) override;
  std::string find_lwpctl_path(nb::pid_t pid) override { return session_->find_lwpctl_path(pid); }
  void stop() override { session_->stop(); }

  void release_slot(uint32_t i) {
    std::lock_guard g(mu_);
    free_.push_back(i);
  }

 private:
  int open_region(const char** why);
  int hello(int* memfd, rg::HelloReply* rep, const char** why);

  const std::string endpoint_;
  const bool required_;
  std::unique_ptr<Transport> session_;
  char* base_ = nullptr;  // the mapped region; null: gRPC channels
  size_t size_ = 0;
  uint32_t nslots_ = 0;
  std::mutex mu_;               // leaf: the free list
  std::vector<uint32_t> free_;  // free slots, lowest last
};

void ShmChannel::exit_for_detach() {
  SysReply ignored;
  // Bounded: during a detach nothing else notices a daemon that went away (the session's
  // loss is not reported any more), and the transport stops right after anyway.
  constexpr long kDetachBoundMs = 5000;
  pb::Syscall w;
  encode_request(ProcExitReq{0}, &w);
  const size_t n = w.ByteSizeLong();
  if (!w.SerializeToArray(sl_->req, static_cast<int>(rg::kReqInline))) return;
  post(rg::kOpCall, 0, static_cast<uint32_t>(n));
  while (wait_answer(kDetachBoundMs) == 0) {
  }
}

void ShmChannel::close() {
  if (closed_) return;
  closed_ = true;
  post(rg::kOpClose, 0, 0);
  t_.release_slot(index_);
}

std::unique_ptr<LwpChannel> ShmTransport::open_channel(nb::lwpid_t lid) {
  if (base_ == nullptr) return session_->open_channel(lid);
  uint32_t i;
  {
    std::lock_guard g(mu_);
    if (free_.empty()) return session_->open_channel(lid);  // more LWPs than maxlwp: cannot be
    i = free_.back();
    free_.pop_back();
  }
  auto* h = reinterpret_cast<rg::Header*>(base_);
  auto* sl = reinterpret_cast<rg::Slot*>(base_ + rg::slot_offset(i));
  return std::make_unique<ShmChannel>(*this, lid, i, sl, h,
                                      base_ + rg::overflow_offset(nslots_, i));
}

// 0, or the errno of the step that failed (`why` says which).
int ShmTransport::open_region(const char** why) {
  int memfd = -1;
  rg::HelloReply rep;
  if (int e = hello(&memfd, &rep, why)) return e;
  if (rep.nslots == 0 || rep.nslots > rg::kMaxSlots || rep.size != rg::region_size(rep.nslots)) {
    ::close(memfd);
    *why = "the daemon described a region this library cannot use";
    return EPROTO;
  }
  void* m = mmap(nullptr, rep.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  ::close(memfd);
  if (m == MAP_FAILED) {
    *why = "cannot map it";
    return errno;
  }
  auto* h = static_cast<rg::Header*>(m);
  if (h->magic != rg::kMagic || h->version != rg::kVersion || h->nslots != rep.nslots) {
    munmap(m, rep.size);
    *why = "its header is not this library's version";
    return EPROTO;
  }
  base_ = static_cast<char*>(m);
  size_ = rep.size;
  nslots_ = rep.nslots;
  free_.reserve(nslots_);
  for (uint32_t i = nslots_; i-- > 0;) free_.push_back(i);
  return 0;
}

int ShmTransport::hello(int* memfd, rg::HelloReply* rep, const char** why) {
  const std::string path = unix_path(endpoint_);
  const std::string& token = session_->session_token();
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    *why = "the endpoint is not a Unix socket";
    return EPROTONOSUPPORT;
  }
  if (token.size() != rg::kTokenLen) {
    *why = "the session has no token of the expected form";
    return EPROTO;
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = "socket";
    return errno;
  }
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path.data(), path.size());
  char hello[rg::kHelloLen];
  memcpy(hello, rg::kPreface, rg::kPrefaceLen);
  memcpy(hello + rg::kPrefaceLen, token.data(), rg::kTokenLen);
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{.iov_base = rep, .iov_len = sizeof *rep};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  int e = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    e = errno, *why = "cannot connect to the daemon's socket";
  } else if (send(fd, hello, sizeof hello, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof hello)) {
    e = errno != 0 ? errno : EPROTO, *why = "cannot send the hello";
  } else if (ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC); n != sizeof *rep) {
    e = n < 0 ? errno : EPROTONOSUPPORT, *why = "the daemon does not offer regions";
  }
  ::close(fd);
  if (e != 0) return e;
  if (rep->error != 0) {
    *why = strerror(rep->error);
    return rep->error;
  }
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
      c->cmsg_len != CMSG_LEN(sizeof(int))) {
    *why = "the daemon's answer carried no region";
    return EPROTO;
  }
  memcpy(memfd, CMSG_DATA(c), sizeof(int));
  return 0;
}

}  // namespace

std::unique_ptr<Transport> make_shm_transport(const std::string& endpoint, bool required) {
  return std::make_unique<ShmTransport>(endpoint, required);
}

}  // namespace lwpd::client
