// The daemon's own acceptor. gRPC 1.51's listener stops accepting for good after one
// EMFILE and never times out a connection that sends half a preface, so the daemon binds
// and accepts itself and hands each connection to gRPC (AddInsecureChannelFromFd); the
// grpc::Server has no listening port of its own.
//
// One acceptor thread, one epoll set:
//   listening sockets  accept4 until EAGAIN. On EMFILE/ENFILE (and ENOBUFS/ENOMEM) the
//                      spare fd is given up to accept and close what waits in the backlog
//                      (those clients see their connection closed at once instead of
//                      hanging), then accepting pauses for a bounded exponential backoff
//                      (10 ms .. 1 s) and resumes: the listener never stops for good.
//   pending conns      accepted, not yet handed over: each must send the 24-byte HTTP/2
//                      client preface within the handshake timeout (checked with
//                      MSG_PEEK, nothing consumed; the fd is edge-triggered so a peer
//                      that stops half-way does not spin the loop), else it is closed.
//                      A Unix peer may instead send a region hello (common/region_abi.h:
//                      its own 24-byte preface and a session token): the connection then
//                      goes to the region handler, which answers and closes it.
//   wake eventfd       stop().
//
// Peer identity: at accept, SO_PEERCRED of a Unix peer (uid, gid, pid; the pid is 0 when
// the peer is outside our pid namespace); TCP peers have none. gRPC names an fd channel's
// peer "fd:N" and closes N without telling us, so each connection is remembered as
// (fd, socket dev+inode) and an entry counts only while fstat(N) still shows that inode.
// Live connections (pending + handed over) are capped per principal: a Unix uid, or one
// shared bucket for all TCP peers; uid 0 is exempt (root can kill the daemon anyway, and
// the fd-limit recovery above covers its floods).
//
// Lock order: mu_ is a leaf (no gRPC call, no kernel call under it).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <grpcpp/grpcpp.h>

namespace lwpd::server {

// NetBSD's nobody: the uid of sessions whose peer has no kernel credentials (TCP).
constexpr uint32_t kNobodyUid = 32767;

// An owned file descriptor (closed when the last reference goes).
class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd();
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }

 private:
  const int fd_;
};

// Who is at the other end of a connection, as the kernel says.
struct Peer {
  bool is_unix = false;  // false: TCP, no credentials (uid/gid/pid meaningless)
  uint32_t uid = kNobodyUid;
  uint32_t gid = kNobodyUid;
  pid_t pid = 0;  // 0: outside the daemon's pid namespace (or TCP)
  // A pidfd of the peer process (SO_PEERPIDFD, Linux >= 6.5), null when the kernel gives
  // none. Unlike `pid` it cannot come to name another process after the peer exits.
  std::shared_ptr<const OwnedFd> pidfd;
};

struct ListenerConfig {
  std::chrono::milliseconds handshake_timeout{5000};  // preface deadline after accept
  int max_conns_per_uid = 256;                        // live connections per principal
};

struct ListenerStats {
  uint64_t accepted = 0;           // connections accepted (before any check)
  uint64_t closed_half_open = 0;   // closed: no full preface within the handshake timeout
  uint64_t closed_bad_preface = 0; // closed: the first bytes were not an HTTP/2 preface
  uint64_t region_hellos = 0;      // region hellos handed to the region handler
  uint64_t refused_over_cap = 0;   // closed at once: their principal was at its cap
  uint64_t refused_fd_limit = 0;   // accepted on the spare fd and closed (out of fds)
  uint64_t accept_errors = 0;      // accept4 failures other than EAGAIN/EINTR
  uint32_t live = 0;               // connections open now, pending or handed over
};

class Listener {
 public:
  explicit Listener(ListenerConfig cfg);
  ~Listener();  // stop()

  // Bind and listen on `addr` (unix:///abs/path or unix:/abs/path, else host:port). The
  // socket file is created with the process umask. False (logged) on failure.
  bool listen(const std::string& addr);
  // Region hellos go to `fn` (on the acceptor thread: it must not block; it owns and
  // closes the fd). Without one they count as bad prefaces. Set before start().
  void set_region_handler(std::function<void(int fd, const Peer& peer)> fn);
  // Start the acceptor: connections that complete the preface go to `server`, which must
  // be started and outlive stop().
  void start(grpc::Server* server);
  // Stop accepting: close the listening sockets (unlinking socket files) and the pending
  // connections, and join the thread. Call before server->Shutdown(). Idempotent.
  void stop();

  // The peer of a call's connection, with a pidfd when the kernel has one. nullopt when
  // the call did not come through this listener or its connection is gone.
  std::optional<Peer> peer_of(const grpc::ServerContextBase& ctx) const;
  ListenerStats stats() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lwpd::server
