// The acceptor (see listener.h for the design).
//
// Threads: listen() runs before start(); after that only the acceptor thread touches the
// epoll set, the listening sockets, the spare fd and the deadline queue. The connection
// table is shared with peer_of() (gRPC threads) and stats() under mu_.
#include "server/listener.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <stdexcept>

#include <grpcpp/server_posix.h>
#include <spdlog/spdlog.h>

#include "common/region_abi.h"
#include "emul/lock.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; Debian 12's headers predate it
#endif

namespace lwpd::server {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The HTTP/2 client connection preface (RFC 9113 §3.4): every gRPC client sends it first.
constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kPrefaceLen = sizeof kPreface - 1;
static_assert(kPrefaceLen == 24);

// epoll tags: a pending connection's tag is its fd (< 2^31).
constexpr uint64_t kWakeTag = uint64_t{1} << 40;
constexpr uint64_t kListenTag = uint64_t{1} << 41;  // | index into socks_

// All TCP peers share one cap bucket: they have no uid.
constexpr uint64_t kTcpPrincipal = uint64_t{1} << 32;

constexpr milliseconds kBackoffMin{10};
constexpr milliseconds kBackoffMax{1000};
constexpr auto kSweepEvery = std::chrono::seconds(1);
constexpr int kAcceptBatch = 64;  // per wake-up, so a flood cannot starve the preface checks
constexpr int kShedBatch = 256;
constexpr auto kWarnEvery = std::chrono::seconds(5);

struct SockId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const SockId& o) const { return dev == o.dev && ino == o.ino; }
};

// The identity of the socket open at `fd`, nullopt if `fd` is closed or not a socket.
// The raw system call, not the C library's fstat: `fd` may have been closed by gRPC and its
// number reused by another thread meanwhile, which is exactly what the inode comparison
// detects; ThreadSanitizer's fstat interceptor would report that reuse as a race on the fd.
std::optional<SockId> sock_id(int fd) {
  struct stat st {};
  if (::syscall(SYS_fstat, fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return std::nullopt;
  return SockId{st.st_dev, st.st_ino};
}

// A warning that logs at most once per kWarnEvery, saying how many it held back.
class RateLimitedWarn {
 public:
  template <class... A>
  void operator()(fmt::format_string<A...> f, A&&... a) {
    auto now = Clock::now();
    if (now < next_) {
      held_++;
      return;
    }
    std::string msg = fmt::format(f, std::forward<A>(a)...);
    if (held_ > 0) msg += fmt::format(" ({} similar held back)", held_);
    spdlog::warn("listener: {}", msg);
    held_ = 0;
    next_ = now + kWarnEvery;
  }

 private:
  Clock::time_point next_{};
  uint64_t held_ = 0;
};

std::optional<std::string> unix_path_of(const std::string& addr) {
  if (addr.rfind("unix://", 0) == 0) return addr.substr(7);
  if (addr.rfind("unix:", 0) == 0) return addr.substr(5);
  return std::nullopt;
}

}  // namespace

OwnedFd::~OwnedFd() {
  if (fd_ >= 0) ::close(fd_);
}

struct Conn {
  SockId id;
  uint64_t principal = 0;
  uint64_t serial = 0;  // tells a pending connection's deadline from a later one's on its fd
  Peer peer;            // without pidfd (fetched by peer_of)
  bool handed = false;  // gRPC owns the fd now
};

class Listener::Impl {
 public:
  explicit Impl(ListenerConfig cfg);
  ~Impl();

  bool listen(const std::string& addr);
  void set_region_handler(std::function<void(int, const Peer&)> fn) { region_ = std::move(fn); }
  void start(grpc::Server* server);
  void stop();
  std::optional<Peer> peer_of(const grpc::ServerContextBase& ctx) const;
  ListenerStats stats() const;

 private:
  struct ListenSock {
    int fd = -1;
    bool is_unix = false;
    std::string path;  // unix socket file, unlinked at stop
  };
  struct Deadline {
    Clock::time_point at;
    int fd;
    uint64_t serial;
  };

  bool listen_unix(const std::string& path);
  bool listen_tcp(const std::string& addr);
  bool add_listen_fd(int fd, bool is_unix, std::string path);

  void run();
  int wait_timeout_ms(Clock::time_point now) const;
  void accept_some(const ListenSock& ls);
  void accept_failed(const ListenSock& ls, int err);
  void shed(const ListenSock& ls);
  void pause_accepting();
  void resume_if_due(Clock::time_point now);
  void admit(int fd, bool is_unix);
  void check_preface(int fd, uint32_t events);
  void hand_over(int fd);
  void hand_to_region(int fd);
  void close_pending(int fd);
  void expire_pending(Clock::time_point now);

  // Forget the entry at `fd`, if any.
  void drop_locked(int fd) REQUIRES(mu_);
  // Drop the handed-over entries whose fd no longer holds their socket.
  void sweep_locked() REQUIRES(mu_);

  const ListenerConfig cfg_;
  int epfd_ = -1;
  int wakefd_ = -1;
  grpc::Server* server_ = nullptr;
  std::function<void(int, const Peer&)> region_;  // set before start, then only called
  std::thread thread_;
  std::atomic<bool> stopping_{false};  // set by stop(), read by run() after each wake-up

  // Acceptor thread only (listen() before it starts).
  std::vector<ListenSock> socks_;
  int spare_ = -1;  // /dev/null, given up to accept (and close) when out of fds
  std::deque<Deadline> deadlines_;  // in accept order = deadline order
  milliseconds backoff_{0};         // 0: not backing off
  bool paused_ = false;
  Clock::time_point resume_at_{};
  Clock::time_point next_sweep_{};
  uint64_t next_serial_ = 1;
  RateLimitedWarn warn_fd_, warn_cap_, warn_err_;

  mutable Mutex mu_{LockRank::kLeaf};
  std::unordered_map<int, Conn> conns_ GUARDED_BY(mu_);               // by fd
  std::unordered_map<uint64_t, uint32_t> per_principal_ GUARDED_BY(mu_);  // live connections
  ListenerStats stats_ GUARDED_BY(mu_);                               // (live: conns_.size())
};

Listener::Impl::Impl(ListenerConfig cfg) : cfg_(cfg) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epfd_ < 0 || wakefd_ < 0) throw std::runtime_error("listener: epoll/eventfd failed");
  epoll_event ev{.events = EPOLLIN, .data = {.u64 = kWakeTag}};
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Listener::Impl::~Impl() {
  stop();
  if (spare_ >= 0) ::close(spare_);
  ::close(wakefd_);
  ::close(epfd_);
}

// ---- binding -------------------------------------------------------------------------

bool Listener::Impl::listen(const std::string& addr) {
  if (auto p = unix_path_of(addr)) return listen_unix(*p);
  return listen_tcp(addr);
}

bool Listener::Impl::listen_unix(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path) {
    spdlog::error("listener: bad unix socket path '{}'", path);
    return false;
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    spdlog::error("listener: cannot bind {}: {}", path, std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return false;
  }
  return add_listen_fd(fd, true, path);
}

// host:port, [v6]:port, or :port (every address).
bool Listener::Impl::listen_tcp(const std::string& addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) {
    spdlog::error("listener: '{}' is neither unix:/path nor host:port", addr);
    return false;
  }
  std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int e = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res)) {
    spdlog::error("listener: cannot resolve {}: {}", addr, ::gai_strerror(e));
    return false;
  }
  bool any = false;
  for (addrinfo* ai = res; ai != nullptr && !any; ai = ai->ai_next) {
    // The first address that binds: one socket per --listen, as port 0 needs.
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      spdlog::error("listener: cannot bind {}: {}", addr, std::strerror(errno));
      ::close(fd);
      continue;
    }
    any = add_listen_fd(fd, false, "");
  }
  ::freeaddrinfo(res);
  return any;
}

bool Listener::Impl::add_listen_fd(int fd, bool is_unix, std::string path) {
  if (::listen(fd, SOMAXCONN) != 0) {
    spdlog::error("listener: listen: {}", std::strerror(errno));
    ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
    return false;
  }
  epoll_event ev{.events = EPOLLIN, .data = {.u64 = kListenTag | socks_.size()}};
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  socks_.push_back(ListenSock{fd, is_unix, std::move(path)});
  return true;
}

// ---- the acceptor thread ---------------------------------------------------------------

void Listener::Impl::start(grpc::Server* server) {
  server_ = server;
  thread_ = std::thread([this] { run(); });
}

void Listener::Impl::run() {
  epoll_event evs[64];
  while (!stopping_.load(std::memory_order_acquire)) {  // matched by stop()'s store
    int n = ::epoll_wait(epfd_, evs, 64, wait_timeout_ms(Clock::now()));
    if (n < 0 && errno != EINTR) {
      spdlog::error("listener: epoll_wait: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; i++) {
      const uint64_t tag = evs[i].data.u64;
      if (tag == kWakeTag) continue;
      if (tag & kListenTag) {
        accept_some(socks_[tag & ~kListenTag]);
      } else {
        check_preface(static_cast<int>(tag), evs[i].events);
      }
    }
    const auto now = Clock::now();
    expire_pending(now);
    resume_if_due(now);
    if (now >= next_sweep_) {
      MutexLock g(mu_);
      sweep_locked();
      next_sweep_ = now + kSweepEvery;
    }
    if (spare_ < 0) spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
}

int Listener::Impl::wait_timeout_ms(Clock::time_point now) const {
  Clock::time_point next = next_sweep_;
  if (!deadlines_.empty()) next = std::min(next, deadlines_.front().at);
  if (paused_) next = std::min(next, resume_at_);
  if (spare_ < 0) next = std::min(next, now + kBackoffMin);  // retry taking the spare back
  if (next <= now) return 0;
  return static_cast<int>(std::chrono::ceil<milliseconds>(next - now).count());
}

void Listener::Impl::accept_some(const ListenSock& ls) {
  if (paused_) return;  // an event from before the pause
  for (int i = 0; i < kAcceptBatch; i++) {
    int fd = ::accept4(ls.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      backoff_ = milliseconds{0};
      admit(fd, ls.is_unix);
      continue;
    }
    switch (errno) {
      case EAGAIN:
        return;
      case EINTR:
      case ECONNABORTED:  // the client gave up while queued
      case EPROTO:
      case EPERM:  // a firewall refused this one
        continue;
      default:
        accept_failed(ls, errno);
        return;
    }
  }
}

// Out of fds (or memory): shed the backlog and back off; never stop accepting for good.
void Listener::Impl::accept_failed(const ListenSock& ls, int err) {
  {
    MutexLock g(mu_);
    stats_.accept_errors++;
  }
  const bool out_of_fds = err == EMFILE || err == ENFILE;
  if (out_of_fds) shed(ls);
  pause_accepting();
  warn_fd_("accept4: {}; backing off {} ms{}", std::strerror(err), backoff_.count(),
           out_of_fds ? ", queued connections closed" : "");
}

// With the spare fd given up, accept what waits in the backlog and close it at once: its
// clients learn now that they must retry instead of waiting behind a full table.
void Listener::Impl::shed(const ListenSock& ls) {
  if (spare_ >= 0) ::close(spare_);
  spare_ = -1;
  uint64_t shed = 0;
  for (int i = 0; i < kShedBatch; i++) {
    int fd = ::accept4(ls.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) break;
    ::close(fd);
    shed++;
  }
  spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // -1: retried by run()
  MutexLock g(mu_);
  stats_.refused_fd_limit += shed;
}

void Listener::Impl::pause_accepting() {
  backoff_ = backoff_.count() == 0 ? kBackoffMin : std::min(backoff_ * 2, kBackoffMax);
  resume_at_ = Clock::now() + backoff_;
  paused_ = true;
  for (size_t i = 0; i < socks_.size(); i++) {
    epoll_event ev{.events = 0, .data = {.u64 = kListenTag | i}};
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, socks_[i].fd, &ev);
  }
}

void Listener::Impl::resume_if_due(Clock::time_point now) {
  if (!paused_ || now < resume_at_) return;
  paused_ = false;
  for (size_t i = 0; i < socks_.size(); i++) {
    epoll_event ev{.events = EPOLLIN, .data = {.u64 = kListenTag | i}};
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, socks_[i].fd, &ev);
  }
}

// A new connection: credentials, the per-principal cap, then wait for its preface.
void Listener::Impl::admit(int fd, bool is_unix) {
  Conn c;
  c.peer.is_unix = is_unix;
  auto id = sock_id(fd);
  ucred uc{};
  socklen_t len = sizeof uc;
  if (!id || (is_unix && ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0)) {
    MutexLock g(mu_);
    stats_.accept_errors++;
    ::close(fd);
    return;
  }
  c.id = *id;
  if (is_unix) {
    c.peer.uid = uc.uid;
    c.peer.gid = uc.gid;
    c.peer.pid = uc.pid;
  }
  c.principal = is_unix ? uint64_t{uc.uid} : kTcpPrincipal;
  c.serial = next_serial_++;
  const bool capped = !(is_unix && uc.uid == 0);
  {
    MutexLock g(mu_);
    stats_.accepted++;
    drop_locked(fd);  // gRPC closed the connection that had this number
    uint32_t& n = per_principal_[c.principal];
    if (capped && n >= static_cast<uint32_t>(cfg_.max_conns_per_uid)) {
      sweep_locked();  // some of them may be gone already
      if (per_principal_[c.principal] >= static_cast<uint32_t>(cfg_.max_conns_per_uid)) {
        stats_.refused_over_cap++;
        ::close(fd);
        warn_cap_("{} at its cap of {} connections: refused",
                  is_unix ? fmt::format("uid {}", uc.uid) : std::string("TCP"),
                  cfg_.max_conns_per_uid);
        return;
      }
    }
    per_principal_[c.principal]++;
    conns_.emplace(fd, c);
  }
  epoll_event ev{.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data = {.u64 = uint64_t(fd)}};
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close_pending(fd);
    return;
  }
  deadlines_.push_back(Deadline{Clock::now() + cfg_.handshake_timeout, fd, c.serial});
}

// Hand the connection over once its whole preface is there (to gRPC, or a region hello to
// the region handler); close it if the bytes are neither or the peer hung up first. Peeks
// only: gRPC reads the preface itself.
void Listener::Impl::check_preface(int fd, uint32_t events) {
  bool is_unix = false;
  {
    MutexLock g(mu_);
    auto it = conns_.find(fd);
    if (it == conns_.end() || it->second.handed) return;  // an event from before a close
    is_unix = it->second.peer.is_unix;
  }
  char buf[region::kHelloLen];
  static_assert(region::kHelloLen >= kPrefaceLen && region::kPrefaceLen == kPrefaceLen);
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  const size_t got = n > 0 ? static_cast<size_t>(n) : 0;
  const size_t head = std::min(got, kPrefaceLen);
  const bool http2 = got > 0 && std::memcmp(buf, kPreface, head) == 0;
  const bool hello = got > 0 && is_unix && region_ &&
                     std::memcmp(buf, region::kPreface, head) == 0;
  if (http2 && got >= kPrefaceLen) {
    hand_over(fd);
    return;
  }
  if (hello && got == region::kHelloLen) {
    hand_to_region(fd);
    return;
  }
  const bool prefix = http2 || hello;
  if (prefix && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;  // more to come
  if (got > 0 && !prefix) {
    MutexLock g(mu_);
    stats_.closed_bad_preface++;
  }
  close_pending(fd);
}

void Listener::Impl::hand_over(int fd) {
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  {
    MutexLock g(mu_);
    conns_.at(fd).handed = true;
  }
  grpc::AddInsecureChannelFromFd(server_, fd);  // gRPC owns (and will close) fd now
}

// The region handler answers and closes the connection; it no longer counts as live.
void Listener::Impl::hand_to_region(int fd) {
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  Peer peer;
  {
    MutexLock g(mu_);
    peer = conns_.at(fd).peer;
    stats_.region_hellos++;
    drop_locked(fd);
  }
  region_(fd, peer);
}

void Listener::Impl::close_pending(int fd) {
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  {
    MutexLock g(mu_);
    drop_locked(fd);
  }
  ::close(fd);
}

void Listener::Impl::expire_pending(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.front().at <= now) {
    const Deadline d = deadlines_.front();
    deadlines_.pop_front();
    {
      MutexLock g(mu_);
      auto it = conns_.find(d.fd);
      if (it == conns_.end() || it->second.handed || it->second.serial != d.serial) continue;
      stats_.closed_half_open++;
    }
    close_pending(d.fd);
  }
}

void Listener::Impl::drop_locked(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  auto pp = per_principal_.find(it->second.principal);
  if (pp != per_principal_.end() && --pp->second == 0) per_principal_.erase(pp);
  conns_.erase(it);
}

void Listener::Impl::sweep_locked() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    const int fd = it->first;
    ++it;  // drop_locked erases the current entry
    const Conn& c = conns_.at(fd);
    if (c.handed && sock_id(fd) != std::optional<SockId>(c.id)) drop_locked(fd);
  }
}

// ---- stopping and queries ------------------------------------------------------------

void Listener::Impl::stop() {
  if (thread_.joinable()) {
    stopping_.store(true, std::memory_order_release);
    uint64_t one = 1;
    if (::write(wakefd_, &one, sizeof one) < 0) {
    }
    thread_.join();
  }
  for (auto& ls : socks_) {
    ::close(ls.fd);
    if (!ls.path.empty()) ::unlink(ls.path.c_str());
  }
  socks_.clear();
  MutexLock g(mu_);
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second.handed) {
      ++it;
      continue;
    }
    ::close(it->first);
    it = conns_.erase(it);
  }
}

// gRPC closes a connection's fd only when its transport is destroyed, after the calls on
// it; so while a call runs, "fd:N" names its own socket. Were that ever not so, a call whose
// connection died could resolve to a later connection on the same number; such a call can
// no longer deliver its reply, so what it creates is abandoned unseen.
std::optional<Peer> Listener::Impl::peer_of(const grpc::ServerContextBase& ctx) const {
  const std::string p = ctx.peer();
  if (p.rfind("fd:", 0) != 0) return std::nullopt;
  char* end = nullptr;
  const long fd = std::strtol(p.c_str() + 3, &end, 10);
  if (end == p.c_str() + 3 || *end != '\0' || fd < 0 || fd > INT32_MAX) return std::nullopt;
  MutexLock g(mu_);
  auto it = conns_.find(static_cast<int>(fd));
  if (it == conns_.end() || !it->second.handed) return std::nullopt;
  const SockId want = it->second.id;
  // gRPC may have closed the fd, and its number may name another socket by now.
  if (sock_id(static_cast<int>(fd)) != std::optional<SockId>(want)) return std::nullopt;
  Peer out = it->second.peer;
  if (!out.is_unix) return out;
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 &&
      pidfd >= 0) {
    ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
    auto owned = std::make_shared<const OwnedFd>(pidfd);
    // Closed and reused between the two checks: that pidfd may be someone else's.
    if (sock_id(static_cast<int>(fd)) != std::optional<SockId>(want)) return std::nullopt;
    out.pidfd = std::move(owned);
  }
  return out;
}

ListenerStats Listener::Impl::stats() const {
  MutexLock g(mu_);
  ListenerStats s = stats_;
  // Exact, unlike conns_.size(): entries gRPC closed stay until the next sweep.
  for (const auto& [fd, c] : conns_)
    if (!c.handed || sock_id(fd) == std::optional<SockId>(c.id)) s.live++;
  return s;
}

// ---- Listener ---------------------------------------------------------------------------

Listener::Listener(ListenerConfig cfg) : impl_(std::make_unique<Impl>(cfg)) {}
Listener::~Listener() = default;
bool Listener::listen(const std::string& addr) { return impl_->listen(addr); }
void Listener::start(grpc::Server* server) { impl_->start(server); }
void Listener::set_region_handler(std::function<void(int fd, const Peer& peer)> fn) {
  impl_->set_region_handler(std::move(fn));
}
void Listener::stop() { impl_->stop(); }
std::optional<Peer> Listener::peer_of(const grpc::ServerContextBase& ctx) const {
  return impl_->peer_of(ctx);
}
ListenerStats Listener::stats() const { return impl_->stats(); }

}  // namespace lwpd::server
