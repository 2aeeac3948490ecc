// The daemon's side of the co-located fast path: one shared-memory region per process that
// asked for one (layout and protocol: common/region_abi.h), and the thread that serves it.
//
// A RegionServer replaces the process's LWP channels, not its session: kicks, signals and
// exits still travel on the Session stream, which stays the process's lifeline. Each slot
// the client starts becomes a ReturnTarget bound to its LWP in the process's GrpcPort, so
// the routing of returns, refusals and exits is the gRPC channel's, word for word; only the
// bytes travel differently.
//
// Serving. One thread per region waits on the header's doorbell (a futex) and serves every
// slot whose pending bit is set, in slot order: it copies the request out, checks it against
// the slot's binding (kept here, never in the region), and enters the kernel exactly as an
// LWP channel does (kernel_entry.h). Returns are written by whichever thread the kernel
// returns on (SlotTarget, under the port lock): serialize, publish, FUTEX_WAKE; never a block.
//
// Untrusted memory. The client can write anything anywhere in its region at any time. The
// daemon reads only the request words and bytes of a slot whose bit it took, each once, into
// its own memory; lengths are clamped; a request that makes no sense for the slot's binding
// breaks that slot (kTermBroken) and nothing else. The memfd is sealed against shrinking, so
// a client cannot make the daemon's stores fault. A client that rings the bell without
// posting anything costs the serving thread a scan of its pending words and nothing more; one
// that does so without end is cut off like a client that never reads its stream.
//
// Priority. With `lwpd --rt-priority N` (default 1) the serving thread runs SCHED_FIFO at N,
// rationed (emul/rt_burst.h), as the vCPU workers do: an entry is served as soon as its
// doorbell rings even when the host CPU it wakes on is held by a thread spinning in user
// code, and a client that keeps the thread busy is served at normal priority.
//
// Lifetime: created by the hello (serve_region_hello, on the listener's thread), owned by the
// Session; stop() (at the session's reap, or at shutdown) unbinds every slot from the port and
// joins the thread. The region's memory stays mapped until the RegionServer is destroyed, so a
// return the kernel delivers during stop() still lands in mapped memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "common/region_abi.h"
#include "server/listener.h"
#include "server/sessions.h"

namespace lwpd::server {

struct Daemon;
class SlotTarget;

class RegionServer {
 public:
  // A region of `nslots` slots for `s`, with its serving thread started; null with *err set
  // to the errno of memfd_create, ftruncate, fcntl or mmap.
  static std::unique_ptr<RegionServer> create(Daemon& d, Session& s, uint32_t nslots, int* err);
  ~RegionServer();  // stop(), then unmap and close
  RegionServer(const RegionServer&) = delete;
  RegionServer& operator=(const RegionServer&) = delete;

  int fd() const { return fd_; }
  size_t size() const { return size_; }
  uint32_t nslots() const { return nslots_; }

  // Unbind every slot from the port and join the serving thread. Idempotent.
  void stop();

 private:
  RegionServer(Daemon& d, Session& s, int fd, char* base, size_t size, uint32_t nslots);

  // What the daemon knows of a slot: only here, never in the region.
  struct SlotState {
    lwpid_t lid = 0;      // bound LWP, 0 = unbound
    uint32_t served = 0;  // req_seq of the last request taken
    std::unique_ptr<SlotTarget> target;
  };
  // A request as copied out of its slot.
  struct Request {
    uint32_t op = 0;
    lwpid_t lid = 0;
    uint32_t len = 0;
    uint64_t trap_gen = 0;
  };

  void run();
  bool drain();            // serve every pending slot; false if none was
  bool serve(uint32_t i);  // false if the slot had no new request
  void start(uint32_t i, const Request& rq);
  void call(uint32_t i, const Request& rq);
  void unbind(uint32_t i);
  void refuse(uint32_t i, const char* why);

  region::Header* header() const { return reinterpret_cast<region::Header*>(base_); }
  region::Slot* slot(uint32_t i) const {
    return reinterpret_cast<region::Slot*>(base_ + region::slot_offset(i));
  }

  Daemon& d_;
  Session& s_;
  const int fd_;
  char* const base_;
  const size_t size_;
  const uint32_t nslots_;
  std::vector<SlotState> slots_;  // the serving thread's, and stop()'s after the join
  region::Spinner spinner_;       // the serving thread's
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// The hello on an accepted Unix connection whose first bytes are region::kPreface (the
// listener's thread): check the peer against the named session, create the session's region
// on first use, answer with the memfd or an errno, close `fd`. Never blocks.
void serve_region_hello(Daemon& d, int fd, const Peer& peer);

}  // namespace lwpd::server
