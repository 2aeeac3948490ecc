#include "server/region_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "emul/rt_burst.h"
#include "server/kernel_entry.h"
#include "server/services.h"
#include "server/wire.h"

namespace lwpd::server {

namespace {

// A word of the region that the client may write at any time: read once, relaxed.
template <class T>
T read_once(const T& x) {
  return std::atomic_ref<T>(const_cast<T&>(x)).load(std::memory_order_relaxed);
}

}  // namespace

// ---- one slot's answers: a ReturnTarget of the process's GrpcPort --------------------------

// Every method runs under the port lock, on whatever thread the kernel returns on: it only
// writes the slot and wakes its waiter.
class SlotTarget final : public ReturnTarget {
 public:
  // `host_pid`: the client's thread group as the kernel named it (0: unknown, no kicks here).
  SlotTarget(region::Slot* sl, pid_t host_pid, std::atomic<uint64_t>* kicks = nullptr)
      : sl_(sl), host_pid_(host_pid), kicks_(kicks) {}

  // region_abi.h, "Kicks": tgkill() restricts the signal to the client's own threads, whatever
  // `tid` says; a signal number outside the real-time range is refused.
  bool Kick(uint64_t gen) override {
    if (host_pid_ <= 0) return false;
    const int32_t tid = read_once(sl_->tid);
    const int32_t sig = read_once(sl_->kick_signo);
    if (tid <= 0 || sig < SIGRTMIN || sig > SIGRTMAX) return false;
    sl_->kick_gen.store(gen, std::memory_order_seq_cst);
    if (::syscall(SYS_tgkill, host_pid_, tid, sig) != 0) return false;
    if (kicks_ != nullptr) kicks_->fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  void Deliver(const v1::SyscallReturn& r) override {
    const size_t n = r.ByteSizeLong();
    if (n > region::kRepInline ||
        !r.SerializeToArray(sl_->rep, static_cast<int>(region::kRepInline))) {
      terminate(region::kTermBroken);  // cannot happen with this proto; never write past rep
      return;
    }
    sl_->rep_len = static_cast<uint32_t>(n);
    sl_->rep_gen = r.gen();
    sl_->ret_count.fetch_add(1, std::memory_order_release);
    wake();
  }
  void Exited() override { terminate(region::kTermLwpGone); }
  void ProcExited(const v1::ExitStatus& st) override {
    sl_->exit_signaled = st.signaled() ? 1 : 0;
    sl_->exit_code = st.code();
    terminate(region::kTermProcExited);
  }
  void Fail(const grpc::Status&) override { terminate(region::kTermBroken); }

  void terminate(region::Term t) {
    sl_->term.store(t, std::memory_order_release);
    wake();
  }

 private:
  // The system call only for a client that says it sleeps (region_abi.h: a client that
  // lies about it loses its own wake-up).
  void wake() {
    sl_->wake.fetch_add(1, std::memory_order_seq_cst);
    if (sl_->waiting.load(std::memory_order_seq_cst) != 0) region::futex_wake(&sl_->wake);
  }

  region::Slot* const sl_;
  const pid_t host_pid_;
  std::atomic<uint64_t>* const kicks_;  // Daemon::kicks_direct
};

// ---- RegionServer -----------------------------------------------------------------------------

std::unique_ptr<RegionServer> RegionServer::create(Daemon& d, Session& s, uint32_t nslots,
                                                   int* err) {
  if (nslots == 0 || nslots > region::kMaxSlots) nslots = region::kMaxSlots;
  const size_t size = region::region_size(nslots);
  const int fd = ::memfd_create("lwpd-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    *err = errno;
    return nullptr;
  }
  // Sealed at its size: a client that could shrink it would make the daemon's stores fault.
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    *err = errno;
    ::close(fd);
    return nullptr;
  }
  void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    *err = errno;
    ::close(fd);
    return nullptr;
  }
  auto* h = static_cast<region::Header*>(m);
  h->magic = region::kMagic;
  h->version = region::kVersion;
  h->nslots = nslots;
  h->slot_size = region::kSlotSize;
  h->slots_offset = region::slot_offset(0);
  h->overflow_offset = region::overflow_offset(nslots, 0);
  h->overflow_stride = region::kOverflowStride;
  return std::unique_ptr<RegionServer>(
      new RegionServer(d, s, fd, static_cast<char*>(m), size, nslots));
}

RegionServer::RegionServer(Daemon& d, Session& s, int fd, char* base, size_t size, uint32_t nslots)
    : d_(d), s_(s), fd_(fd), base_(base), size_(size), nslots_(nslots), slots_(nslots) {
  thread_ = std::thread([this] { run(); });
}

RegionServer::~RegionServer() {
  stop();
  ::munmap(base_, size_);
  ::close(fd_);
}

void RegionServer::stop() {
  if (stopping_.exchange(true)) return;
  header()->bell.fetch_add(1, std::memory_order_seq_cst);
  region::futex_wake(&header()->bell);  // whatever the client wrote in `sleeping`
  if (thread_.joinable()) thread_.join();
  for (uint32_t i = 0; i < nslots_; i++) unbind(i);
}

void RegionServer::run() {
  // "lwpd-rg<pid>": what top, ps -L and the tests see (16 bytes with the NUL at most).
  pthread_setname_np(pthread_self(), fmt::format("lwpd-rg{}", s_.pid).substr(0, 15).c_str());
  emul::RtBurst policy;  // region_server.h, "Priority"
  if (int e = policy.start(d_.rt_priority)) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      spdlog::info(
          "--rt-priority {}: region threads cannot run SCHED_FIFO ({}); running at "
          "normal priority",
          d_.rt_priority, std::strerror(e));
  }
  uint32_t idle = 0;
  while (!stopping_.load(std::memory_order_acquire)) {
    // Before the drain: the work that follows a wake-up is charged as work, not as rest.
    policy.busy();
    const uint32_t bell = header()->bell.load(std::memory_order_acquire);
    if (drain()) {
      idle = 0;
      continue;
    }
    if (stopping_.load(std::memory_order_acquire)) break;
    // Every honest wake-up posts something first; at most a few find it taken already.
    if (++idle == d_.region_max_idle_wakeups) {
      d_.sessions.cut_off_now(
          s_, fmt::format("region doorbell rung {} times in a row with nothing posted", idle));
    }
    auto rung = [&] { return header()->bell.load(std::memory_order_acquire) != bell; };
    if (spinner_.spin(rung)) continue;
    policy.rest();
    header()->sleeping.store(1, std::memory_order_seq_cst);
    if (header()->bell.load(std::memory_order_seq_cst) == bell)
      region::futex_wait(&header()->bell, bell);
    header()->sleeping.store(0, std::memory_order_relaxed);
  }
}

bool RegionServer::drain() {
  bool any = false;
  const uint32_t words = (nslots_ + 63) / 64;
  for (uint32_t w = 0; w < words; w++) {
    uint64_t bits = header()->pending[w].exchange(0, std::memory_order_acq_rel);
    while (bits != 0) {
      const uint32_t i = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
      bits &= bits - 1;
      if (i < nslots_ && !stopping_.load(std::memory_order_relaxed)) any |= serve(i);
    }
  }
  return any;
}

bool RegionServer::serve(uint32_t i) {
  region::Slot* sl = slot(i);
  SlotState& st = slots_[i];
  const uint32_t seq = sl->req_seq.load(std::memory_order_acquire);
  if (seq == st.served) return false;  // a bit without a new request
  st.served = seq;
  Request rq{.op = read_once(sl->op),
             .lid = read_once(sl->lid),
             .len = read_once(sl->req_len),
             .trap_gen = read_once(sl->trap_gen)};
  switch (rq.op) {
    case region::kOpStart:
      start(i, rq);
      break;
    case region::kOpCall:
      call(i, rq);
      break;
    case region::kOpTrap: {
      if (st.lid == 0 || rq.lid != st.lid) {
        refuse(i, "trap on a slot not started");
        break;
      }
      const lwpid_t lid = st.lid;
      grpc::Status r = enter_kernel(d_, *s_.port, lid, st.target.get(), 0,
                                    [&] { return d_.kernel.trap(s_.proc, lid); });
      if (!r.ok()) refuse(i, "trap refused");
      break;
    }
    case region::kOpClose:
      unbind(i);
      break;
    default:
      refuse(i, "unknown operation");
      break;
  }
  return true;
}

// Bind slot `i` to LWP rq.lid (unbinding what it held) and let its first return come.
void RegionServer::start(uint32_t i, const Request& rq) {
  unbind(i);
  SlotState& st = slots_[i];
  st.target = std::make_unique<SlotTarget>(slot(i), s_.host_pid, &d_.kicks_direct);
  GrpcPort::Check c = s_.port->open_channel(rq.lid, st.target.get());
  if (c != GrpcPort::Check::kOk && c != GrpcPort::Check::kDelivered) {
    spdlog::debug("session pid {}: region slot {}: start of LWP {} refused: {}", s_.pid, i, rq.lid,
                  check_status(d_, c).error_message());
    st.target->terminate(region::kTermBroken);
    st.target.reset();
    return;
  }
  st.lid = rq.lid;
}

void RegionServer::call(uint32_t i, const Request& rq) {
  SlotState& st = slots_[i];
  if (st.lid == 0 || rq.lid != st.lid) return refuse(i, "call on a slot not started");
  if (rq.len > region::kOverflowStride) return refuse(i, "request too long");
  // Copied out before it is parsed: the client may be rewriting the bytes meanwhile.
  char buf[region::kOverflowStride];
  const char* src =
      rq.len <= region::kReqInline ? slot(i)->req : base_ + region::overflow_offset(nslots_, i);
  std::memcpy(buf, src, rq.len);
  v1::Syscall w;
  if (!w.ParseFromArray(buf, static_cast<int>(rq.len))) return refuse(i, "undecodable request");
  auto args = syscall_from_wire(w);
  if (!args) return refuse(i, "request carries no syscall");
  const lwpid_t lid = st.lid;
  grpc::Status r = enter_kernel(d_, *s_.port, lid, st.target.get(), emul::syscall_number(*args),
                                [&] { return d_.kernel.syscall(s_.proc, lid, std::move(*args)); });
  if (!r.ok()) refuse(i, "syscall refused");
}

void RegionServer::unbind(uint32_t i) {
  SlotState& st = slots_[i];
  if (st.target == nullptr) return;
  if (st.lid != 0) s_.port->close_channel(st.lid, st.target.get());
  st.lid = 0;
  st.target.reset();
}

// The slot's request made no sense: the slot ends (the LWP's channel breaks, as a gRPC
// channel ends on a protocol error); the rest of the process is untouched.
void RegionServer::refuse(uint32_t i, const char* why) {
  spdlog::debug("session pid {}: region slot {}: {}", s_.pid, i, why);
  SlotState& st = slots_[i];
  if (st.target != nullptr) {
    st.target->terminate(region::kTermBroken);
    unbind(i);
  } else {
    SlotTarget(slot(i), 0).terminate(region::kTermBroken);
  }
}

// ---- the hello -----------------------------------------------------------------------------

namespace {

void answer_hello(int fd, const region::HelloReply& rep, int memfd) {
  iovec iov{.iov_base = const_cast<region::HelloReply*>(&rep), .iov_len = sizeof rep};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (memfd >= 0) {
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &memfd, sizeof(int));
  }
  // A fresh socket's buffer holds a few dozen bytes: this does not block (MSG_DONTWAIT
  // makes sure), and a peer that went away only costs the message.
  (void)::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

// The errno for a hello from `peer` naming session `s` (null: unknown token), 0 to serve it.
int check_hello(const Session* s, const Peer& peer) {
  if (s == nullptr) return ENOENT;
  // The same process that attached: its uid, and its host pid as the kernel reports both
  // (0 for both when the daemon sees neither: a client in another pid namespace).
  if (!s->unix_peer || !peer.is_unix || peer.uid != s->peer_uid || peer.pid != s->host_pid)
    return EACCES;
  return 0;
}

}  // namespace

void serve_region_hello(Daemon& d, int fd, const Peer& peer) {
  char hello[region::kHelloLen];
  region::HelloReply rep;
  const ssize_t n = ::recv(fd, hello, sizeof hello, MSG_DONTWAIT);
  std::shared_ptr<Session> s;
  if (n == static_cast<ssize_t>(sizeof hello))
    s = d.sessions.find(std::string_view(hello + region::kPrefaceLen, region::kTokenLen));
  rep.error = n != static_cast<ssize_t>(sizeof hello) ? EPROTO : check_hello(s.get(), peer);
  if (rep.error == 0 && !d.offer_regions) rep.error = EPROTONOSUPPORT;
  if (rep.error == 0 && d.shutting_down.load(std::memory_order_relaxed)) rep.error = ESHUTDOWN;
  int memfd = -1;  // our own duplicate: the region may close (its session reaped) meanwhile
  if (rep.error == 0) {
    rep.error = s->open_region([&](std::unique_ptr<RegionServer>* out) {
      int err = 0;
      *out = RegionServer::create(d, *s, static_cast<uint32_t>(d.kernel.maxlwp()), &err);
      if (*out == nullptr) return err;
      memfd = ::fcntl((*out)->fd(), F_DUPFD_CLOEXEC, 0);
      if (memfd < 0) return errno;
      rep.nslots = (*out)->nslots();
      rep.size = (*out)->size();
      return 0;
    });
  }
  if (rep.error == 0) {
    s->port->set_region_served();  // before the client can use the region
    spdlog::info("session pid {}: shared-memory region of {} slots handed over", s->pid,
                 rep.nslots);
  } else {
    spdlog::info("region hello from uid {} pid {} refused: {}", peer.uid, peer.pid,
                 std::strerror(rep.error));
  }
  answer_hello(fd, rep, rep.error == 0 ? memfd : -1);
  if (memfd >= 0) ::close(memfd);
  ::close(fd);
}

}  // namespace lwpd::server
