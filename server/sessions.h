// The session table: one Session per emulated process, found by its random
// 128-bit token (request metadata "lwpd-token"). The table owns the sessions;
// reactors hold a shared_ptr to the session they serve so it outlives them.
//
// A session ends in one place, reap(): after the process exited (GrpcPort's
// on_exit hook, run under the kernel's process lock, only schedules it), the
// Janitor thread releases the PID in the kernel and drops the entry, which
// frees the process, its port and its lwpctl region, and only then lets the
// session stream end (GrpcPort::released), so a client that sees its stream's
// final status never finds its process still listed.
//
// A session whose client does not read its streams is cut off (cut_off()): its
// process is killed as when its stream breaks, logged at warn and counted.
//
// Lock order: Sessions::mu_ is taken without any kernel or port lock held;
// Janitor::mu_ is a leaf.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "emul/kernel.h"
#include "server/grpc_port.h"
#include "server/listener.h"

namespace lwpd::server {

// A worker thread for the few things that must not run where they are
// decided: kernel calls requested from inside the kernel's port callbacks.
class Janitor {
 public:
  Janitor();
  ~Janitor();  // stops (see stop())
  // Run `fn` on the janitor thread. Ignored after stop().
  void post(std::function<void()> fn) EXCLUDES(mu_);
  // Finish the queued work and join the thread.
  void stop() EXCLUDES(mu_);

 private:
  void run() EXCLUDES(mu_);
  Mutex mu_{LockRank::kJanitor};
  CondVar cv_;
  std::deque<std::function<void()>> q_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The credentials of a session, from the kernel (see session_identity in services.h).
struct SessionIdentity {
  uint32_t uid = kNobodyUid;  // the emulated process's uid
  std::optional<Peer> peer;   // the connection's peer, if the listener knows it
};

class RegionServer;

struct Session {
  Session();
  ~Session();  // out of line: RegionServer is complete only in sessions.cc
  std::string token;
  netbsd::pid_t pid = 0;
  uint32_t uid = kNobodyUid;  // set before the session is published, then constant
  // The client's host process, from the connection's kernel credentials (never from what
  // the client claims): its pid in the daemon's pid namespace (0 when it is outside it, or
  // over TCP) and a pidfd when the kernel gave one (Linux >= 6.5, Unix peers).
  pid_t host_pid = 0;
  std::shared_ptr<const OwnedFd> host_pidfd;
  // The peer of the connection that attached: a Unix peer's uid (a region's hello must come
  // from the same uid and host pid). False over TCP, or without a listener.
  bool unix_peer = false;
  uint32_t peer_uid = kNobodyUid;
  emul::ProcRef proc;
  std::shared_ptr<GrpcPort> port;
  std::atomic<bool> abandoned{false};  // proc_abandon() done (once)

  // SIGKILL the client's host process through its pidfd (a pid could name another process
  // by now; a pidfd cannot). Returns 0 or an errno: ESRCH (no pidfd held, or the process is
  // gone), EINVAL (the process is outside the daemon's pid namespace, e.g. a host client of
  // a containerised daemon), EPERM (the daemon may not signal it).
  int kill_host() const;

  // The fast path's shared-memory region (region_server.h), once the client asked for it.
  // open_region: `make` runs at most once per session, under region_mu (it must not block);
  // EEXIST when the session has had one, ESRCH once close_region() ran.
  template <class Make>
  int open_region(Make&& make) EXCLUDES(region_mu) {
    MutexLock g(region_mu);
    if (region_closed) return ESRCH;
    if (region != nullptr) return EEXIST;
    return make(&region);
  }
  // Stop the region's server (joins its thread); no region afterwards. Idempotent.
  void close_region() EXCLUDES(region_mu);
  bool has_region() const EXCLUDES(region_mu);

 private:
  mutable Mutex region_mu{LockRank::kLeaf};
  std::unique_ptr<RegionServer> region GUARDED_BY(region_mu);
  bool region_closed GUARDED_BY(region_mu) = false;
};

class Sessions {
 public:
  explicit Sessions(emul::Kernel& k);
  ~Sessions();

  // Create a process and its session with `who`'s credentials. Errors: EAGAIN (no PID),
  // ENOMEM.
  emul::KResult<std::shared_ptr<Session>> create(const std::string& comm,
                                                 const SessionIdentity& who);
  // The same with only a uid (no peer): in-process servers in tests.
  emul::KResult<std::shared_ptr<Session>> create(const std::string& comm, uint32_t uid) {
    return create(comm, SessionIdentity{.uid = uid, .peer = std::nullopt});
  }
  std::shared_ptr<Session> find(std::string_view token) const EXCLUDES(mu_);
  // The user side is gone: the process dies as if killed (once).
  void abandon(Session& s);
  // A stream of `s` went over its queue bound (`what` names it): abandon the
  // process from the janitor thread, log at warn, count. Safe under kernel and
  // port locks (only posts).
  void cut_off(const std::shared_ptr<Session>& s, const char* what);
  // The same, now, from a thread that holds no lock (a region's serving thread); `why`
  // is logged.
  void cut_off_now(Session& s, const std::string& why);
  // Sessions cut off since start.
  uint64_t cut_offs() const { return cut_offs_.load(std::memory_order_relaxed); }
  // End every session's transports with `st` and stop the janitor; used at
  // daemon shutdown before the gRPC server is shut down.
  void shutdown(const grpc::Status& st) EXCLUDES(mu_);
  size_t size() const EXCLUDES(mu_);
  // The processes whose client took a shared-memory region (their transport is "shm").
  std::unordered_set<netbsd::pid_t> pids_with_region() const EXCLUDES(mu_);

 private:
  void reap(const std::string& token) EXCLUDES(mu_);

  emul::Kernel& k_;
  Janitor janitor_;
  mutable Mutex mu_{LockRank::kSessions};
  std::unordered_map<std::string, std::shared_ptr<Session>> by_token_ GUARDED_BY(mu_);
  std::atomic<uint64_t> cut_offs_{0};  // relaxed counter, read by Stats
};

// 32 hex digits from /dev/urandom.
std::string random_token();

}  // namespace lwpd::server
