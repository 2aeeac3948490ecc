// GrpcPort: the emul::UserPort of one process served over gRPC.
//
// The kernel calls the UserPort methods with the process lock held, so they
// only route and enqueue: they never block and never call into the Kernel.
// Work that needs the kernel (releasing an exited process) is handed to the
// `on_exit` hook, which defers it to another thread.
//
// Routing of returns. Each LWP has a Route:
//   target   the transport that made the pending kernel entry and waits for
//            its return: the LWP's channel or a unary Call/Trap/Start reactor;
//   channel  the LWP's open LwpChannel, if any;
//   buffered returns nobody was waiting for (RETURN_START of an LWP whose
//            channel is not open yet, the result of a cancelled Call).
// A return goes to `target`, else to `channel`, else into `buffered`; opening
// a channel or calling Start hands the buffered return over. Kicks, signals,
// LWP exits and the process exit travel on the Session stream.
//
// Exit notices of a region-served process. Over a shared-memory region the LWP's own
// thread learns of its end from its slot, and the shim needs LwpExited only to drop what it
// queued for an LID it did not know yet: a kick or a signal that came on the Session stream.
// So once set_region_served() is called, LwpExited is sent only for LIDs that a Session event
// named; a gRPC event per LWP would double the daemon's and the client's work for an LWP
// that lives briefly (docs/PERFORMANCE.md). Other clients keep one notice per LWP.
//
// Routes exist for the LWPs the user side may name: the main LWP (added at
// attach), LWPs returned by a successful _lwp_create, and any LWP the kernel
// returns to; a route is dropped when its LWP exits. So an LID without a
// route is not (or no longer) an LWP of this process: NOT_FOUND.
//
// Lifetime: transports register raw pointers here and unregister themselves
// before they are destroyed (in OnDone at the latest); whoever removes a
// unary target from its route under mu_ is the one that finishes it, so a
// target is finished exactly once.
//
// Lock order: kernel Proc::mu -> GrpcPort::mu_ -> a stream's write lock.
#pragma once

#include <deque>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include <grpcpp/grpcpp.h>

#include "emul/lock.h"
#include "emul/user_port.h"
#include "lwpd/v1/kernel.grpc.pb.h"
#include "server/stream.h"

namespace lwpd::server {

namespace v1 = ::lwpd::v1;
namespace emul = ::lwpd::emul;
using netbsd::lwpid_t;

// Something waiting for an LWP's return: a unary reactor or an LWP channel.
// Every method is called with GrpcPort::mu_ held and must only enqueue or
// finish.
class ReturnTarget {
 public:
  virtual ~ReturnTarget() = default;
  // The pending entry returns to user mode. A unary target finishes with it.
  virtual void Deliver(const v1::SyscallReturn& r) = 0;
  // The LWP is gone (its pending entry never returns). Ends the target.
  virtual void Exited() = 0;
  // The process is gone. Ends the target.
  virtual void ProcExited(const v1::ExitStatus& st) = 0;
  // The daemon is shutting down (or the route is torn down). Ends the target.
  virtual void Fail(const grpc::Status& st) = 0;
  // Kick the LWP (running user code in generation `gen`) through this transport itself;
  // false if it cannot, and the kick goes on the Session stream.
  virtual bool Kick(uint64_t /*gen*/) { return false; }
};

using SessionStream = EventSink<v1::SessionEvent>;

class GrpcPort : public emul::UserPort {
 public:
  enum class Check {
    kOk,           // registered (or delivered at once, for kDelivered)
    kDelivered,    // Start/Open: a buffered return was handed over immediately
    kNoSuchLwp,    // no route: not an LWP of this process (NOT_FOUND)
    kBusy,         // the LWP has a pending kernel entry (FAILED_PRECONDITION)
    kUncollected,  // begin_entry: a return nobody collected waits (take it with Start)
    kRunning,      // start_wait: the LWP already runs user code, nothing to wait for
    kClosed,       // the process exited or the daemon is shutting down
  };

  explicit GrpcPort(std::function<void()> on_exit) : on_exit_(std::move(on_exit)) {}

  // ---- the Session stream ----
  // Bind the session stream: `attached` is written first, then any event
  // produced before the stream was bound. False if the port is closed.
  bool attach_session(SessionStream* s, v1::SessionEvent attached) EXCLUDES(mu_);
  void detach_session(SessionStream* s) EXCLUDES(mu_);
  // The session stream is gone for good: drop events instead of queueing.
  void orphan() EXCLUDES(mu_);
  // The exited process has been released from the kernel's table (Sessions::reap): the
  // session stream may now end. Its final status is sent only after this, so a client
  // that sees the stream end no longer finds the process listed.
  void released() EXCLUDES(mu_);
  // The session stream is to end with `st` rather than OK (a protocol error): still only
  // after released(), and after the events queued until then (proc_exited included).
  void fail_session(grpc::Status st) EXCLUDES(mu_);

  // ---- LWP transports ----
  void add_lwp(lwpid_t lid) EXCLUDES(mu_);
  // A transport enters the kernel for `lid` (syscall `sysno`, 0 for a trap)
  // and waits for the return. kOk: call the Kernel next, and on refusal
  // abort_entry().
  Check begin_entry(lwpid_t lid, ReturnTarget* t, int sysno) EXCLUDES(mu_);
  // The Kernel refused the entry: true if `t` was still registered (the
  // caller then finishes it), false if something already ended it.
  bool abort_entry(lwpid_t lid, ReturnTarget* t) EXCLUDES(mu_);
  // Start: wait for the LWP's first return (or take a buffered one).
  Check start_wait(lwpid_t lid, ReturnTarget* t) EXCLUDES(mu_);
  // A unary target was cancelled: true if it was still registered.
  bool cancel_entry(lwpid_t lid, ReturnTarget* t) EXCLUDES(mu_);
  // Bind / unbind an LwpChannel.
  Check open_channel(lwpid_t lid, ReturnTarget* ch) EXCLUDES(mu_);
  void close_channel(lwpid_t lid, ReturnTarget* ch) EXCLUDES(mu_);

  // The process's LWPs are served over a shared-memory region (top comment, "Exit notices").
  void set_region_served() EXCLUDES(mu_);

  // End every transport with `st` and refuse new ones (daemon shutdown).
  void shutdown(const grpc::Status& st) EXCLUDES(mu_);
  bool exited() const EXCLUDES(mu_);

  // ---- emul::UserPort (called under the process lock) ----
  void lwp_return(lwpid_t lid, const emul::SysReturn& ret, uint64_t gen) override EXCLUDES(mu_);
  void lwp_kick(lwpid_t lid, uint64_t gen) override EXCLUDES(mu_);
  void lwp_signal(lwpid_t lid, const emul::SigInfo& info) override EXCLUDES(mu_);
  void lwp_exited(lwpid_t lid) override EXCLUDES(mu_);
  void proc_exited(const emul::ExitStatus& status) override EXCLUDES(mu_);
  void proc_unresponsive(lwpid_t lid) override;
  // What proc_unresponsive does besides logging (e.g. end the client's host process). Set
  // once, before the process can run; runs under the kernel's process lock: no blocking.
  void set_on_unresponsive(std::function<void()> fn) { on_unresponsive_ = std::move(fn); }

 private:
  struct Route {
    ReturnTarget* target = nullptr;   // waits for the pending entry's return
    ReturnTarget* channel = nullptr;  // the open LwpChannel
    std::deque<v1::SyscallReturn> buffered;
    bool user = false;      // a return was handed to the user side since the last entry
    int pending_sysno = 0;  // syscall of the pending entry (0: start or trap)
  };
  void session_event_locked(v1::SessionEvent ev) REQUIRES(mu_);
  void deliver_locked(Route& r, v1::SyscallReturn ret) REQUIRES(mu_);

  const std::function<void()> on_exit_;
  std::function<void()> on_unresponsive_;  // set before the process runs, then only read

  mutable Mutex mu_{LockRank::kPort};
  std::unordered_map<lwpid_t, Route> routes_ GUARDED_BY(mu_);
  SessionStream* session_ GUARDED_BY(mu_) = nullptr;
  std::deque<v1::SessionEvent> early_events_ GUARDED_BY(mu_);  // before the stream is bound
  bool orphaned_ GUARDED_BY(mu_) = false;                      // the stream is gone
  bool exited_ GUARDED_BY(mu_) = false;                        // proc_exited seen
  bool released_ GUARDED_BY(mu_) = false;                      // released() seen
  grpc::Status final_status_ GUARDED_BY(mu_);                  // the session stream's end (OK)
  bool closed_ GUARDED_BY(mu_) = false;                        // shutdown
  bool region_served_ GUARDED_BY(mu_) = false;                 // set_region_served()
  // LIDs a kick or signal event named (until their exit), whatever the transport.
  std::unordered_set<lwpid_t> session_named_ GUARDED_BY(mu_);
};

}  // namespace lwpd::server
