#include "server/sessions.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "server/region_server.h"

namespace lwpd::server {

// ---- Janitor -----------------------------------------------------------------------

Janitor::Janitor() : thread_([this] { run(); }) {}

Janitor::~Janitor() { stop(); }

void Janitor::post(std::function<void()> fn) {
  MutexLock g(mu_);
  if (stopping_) return;
  q_.push_back(std::move(fn));
  cv_.notify_one();
}

void Janitor::stop() {
  {
    MutexLock g(mu_);
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void Janitor::run() {
  UniqueLock lk(mu_);
  for (;;) {
    while (!stopping_ && q_.empty()) cv_.wait(lk);
    if (q_.empty()) return;  // stopping, and everything queued is done
    auto fn = std::move(q_.front());
    q_.pop_front();
    lk.unlock();
    fn();
    lk.lock();
  }
}

// ---- tokens --------------------------------------------------------------------------

std::string random_token() {
  unsigned char b[16];
  size_t got = 0;
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    while (got < sizeof b) {
      ssize_t n = ::read(fd, b + got, sizeof b - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  while (got < sizeof b) {  // no /dev/urandom (chroot): the same pool via getrandom(2)
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n <= 0) throw std::runtime_error("no randomness for session tokens");
    got += static_cast<size_t>(n);
  }
  char hex[33];
  for (size_t i = 0; i < sizeof b; i++) std::snprintf(hex + 2 * i, 3, "%02x", b[i]);
  return std::string(hex, 32);
}

// ---- Session --------------------------------------------------------------------------

Session::Session() = default;
Session::~Session() = default;  // a region still open stops with it (RegionServer's dtor)

void Session::close_region() {
  std::unique_ptr<RegionServer> r;
  {
    MutexLock g(region_mu);
    region_closed = true;
    r = std::move(region);
  }
  // Outside region_mu: stop() joins the serving thread, which never takes it.
  if (r != nullptr) r->stop();
}

bool Session::has_region() const {
  MutexLock g(region_mu);
  return region != nullptr;
}

int Session::kill_host() const {
  if (host_pidfd == nullptr) return ESRCH;
  if (::syscall(SYS_pidfd_send_signal, host_pidfd->get(), SIGKILL, nullptr, 0) != 0) return errno;
  return 0;
}

// ---- Sessions ------------------------------------------------------------------------

Sessions::Sessions(emul::Kernel& k) : k_(k) {}

Sessions::~Sessions() { janitor_.stop(); }

emul::KResult<std::shared_ptr<Session>> Sessions::create(const std::string& comm,
                                                         const SessionIdentity& who) {
  auto s = std::make_shared<Session>();
  s->token = random_token();
  s->uid = who.uid;
  if (who.peer && who.peer->is_unix) {
    s->host_pid = who.peer->pid;
    s->host_pidfd = who.peer->pidfd;
    s->unix_peer = true;
    s->peer_uid = who.peer->uid;
  }
  const uint32_t uid = who.uid;
  // The hook runs under the kernel's process lock: only schedule the reap.
  s->port = std::make_shared<GrpcPort>(
      [this, token = s->token] { janitor_.post([this, token] { reap(token); }); });
  // An LWP that does not answer a kick: the client is not to be trusted any more, so its
  // host process goes too, through the pidfd the kernel gave for the peer (never a pid the
  // client claimed). Runs under the kernel's process lock: pidfd_send_signal does not block.
  s->port->set_on_unresponsive([w = std::weak_ptr<Session>(s)] {
    auto s = w.lock();
    if (s == nullptr) return;
    const int e = s->kill_host();
    if (e == 0) {
      spdlog::warn("session pid {}: unresponsive; killed its host process {}", s->pid,
                   s->host_pid);
    } else {
      spdlog::warn("session pid {}: unresponsive; its host process not killed ({})", s->pid,
                   e == ESRCH ? "no pidfd for the peer" : std::strerror(e));
    }
  });
  auto r = k_.proc_create(emul::ProcSpec{.uid = uid, .comm = comm, .port = s->port});
  if (!r.ok()) return r.error();
  s->proc = r.release();
  s->pid = k_.proc_pid(s->proc);
  s->port->add_lwp(s->pid);
  MutexLock g(mu_);
  by_token_.emplace(s->token, s);
  return s;
}

std::shared_ptr<Session> Sessions::find(std::string_view token) const {
  MutexLock g(mu_);
  auto it = by_token_.find(std::string(token));
  return it == by_token_.end() ? nullptr : it->second;
}

void Sessions::abandon(Session& s) {
  if (s.abandoned.exchange(true)) return;
  s.port->orphan();
  k_.proc_abandon(s.proc);
}

void Sessions::cut_off(const std::shared_ptr<Session>& s, const char* what) {
  janitor_.post([this, s, what] {
    cut_off_now(*s, fmt::format("{} queue over its bound (client not reading)", what));
  });
}

void Sessions::cut_off_now(Session& s, const std::string& why) {
  if (s.abandoned.load()) return;  // already going (its stream broke, or cut off twice)
  cut_offs_.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("session pid {}: {}, killing", s.pid, why);
  abandon(s);
}

void Sessions::reap(const std::string& token) {
  std::shared_ptr<Session> s;
  {
    MutexLock g(mu_);
    auto it = by_token_.find(token);
    if (it == by_token_.end()) return;
    s = std::move(it->second);
    by_token_.erase(it);
  }
  (void)k_.proc_release(s->proc);
  s->close_region();  // after the process's exit reached every slot
  s->port->released();
}

void Sessions::shutdown(const grpc::Status& st) {
  std::vector<std::shared_ptr<Session>> all;
  {
    MutexLock g(mu_);
    for (auto& [t, s] : by_token_) all.push_back(s);
  }
  for (auto& s : all) s->port->shutdown(st);
  for (auto& s : all) s->close_region();
  janitor_.stop();
}

std::unordered_set<netbsd::pid_t> Sessions::pids_with_region() const {
  std::unordered_set<netbsd::pid_t> out;
  MutexLock g(mu_);
  for (const auto& [t, s] : by_token_)
    if (s->has_region()) out.insert(s->pid);
  return out;
}

size_t Sessions::size() const {
  MutexLock g(mu_);
  return by_token_.size();
}

}  // namespace lwpd::server
