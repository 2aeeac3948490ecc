// The transport seam of the shim: how an attached process talks to the daemon.
//
// One Transport per attached process, one LwpChannel per LWP. The rest of the shim sees only
// these two interfaces and the plain values of kernel_call.h; each implementation keeps its
// wire format to itself:
//   grpc  transport_grpc.cc: the Session stream (events), one LwpChannel bidi stream per
//         LWP (entries and returns), a unary Trap RPC for kicked LWPs. The only file of the
//         shim's syscall path that includes gRPC or protobuf headers.
//   shm   transport_shm.cc: the gRPC transport's Session stream (events), and a
//         shared-memory region per process (common/region_abi.h) with one slot per LWP for
//         entries and returns, waited on with futexes. Falls back to gRPC channels when the
//         daemon offers no region, unless it was asked for by name.
// `LWPD_TRANSPORT=grpc|shm` picks one at lwpd_attach() (attach.cc, choose_transport); the
// default is shm where the daemon offers it.
//
// Threads. A channel is used only by its LWP's host thread (or, for a call made from a
// signal handler, by the proxy worker making it while that thread waits: never both), and
// blocks that thread until the daemon returns: the LWP's kernel entry happens in the LWP's
// own host thread, whatever the transport does behind it. trap_from_handler() is the one
// entry made from the kick handler, and is async-signal-safe. Events (kicks, signals,
// exits) arrive on threads the transport starts itself, which run with every signal
// blocked.
//
// For ThreadSanitizer, each implementation marks its kernel entries and returns with
// LWPD_KERNEL_ENTRY()/LWPD_KERNEL_RETURN() (tsan.h) where the request leaves and the return
// arrives, as transport_grpc.cc does.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kernel_call.h"

namespace lwpd::client {

// Something the daemon tells the shim outside any call's return.
struct Event {
  enum class Kind : uint8_t {
    kKick,        // LWP `lid` must enter the kernel if it still runs user code from `gen`
    kSignal,      // deliver NetBSD signal `nb_signo` to LWP `lid`
    kLwpExited,   // LWP `lid` is gone for good
    kProcExited,  // the emulated process ended with `status`
    kLost,        // the daemon is gone, or broke the protocol (`what`)
  };
  Kind kind = Kind::kKick;
  nb::lwpid_t lid = 0;
  uint64_t gen = 0;
  int nb_signo = 0;
  ExitStatus status;
  std::string what;
};

// Called on a transport's event thread, one event at a time, in the daemon's order. It may
// not return for kProcExited and kLost (the process ends).
using EventSink = std::function<void(const Event&)>;

// Why a channel operation did not produce a return.
struct ChannelEnd {
  enum class Kind : uint8_t {
    kNone,        // it did: the operation succeeded
    kLwpGone,     // the LWP no longer exists (the success of exit())
    kProcExited,  // the process ended (`status`)
    kBroken,      // the channel or the daemon failed (`what`, for the message)
  };
  Kind kind = Kind::kNone;
  ExitStatus status;
  const char* what = nullptr;

  bool ok() const { return kind == Kind::kNone; }
};

// The shim's kick signal (host number; shim_internal.h, "Kicks"), set before any channel
// is opened: a transport that sends kicks itself tells the daemon which signal it is.
extern int g_kick_signal;

class LwpChannel {
 public:
  virtual ~LwpChannel() = default;

  // The creator's half of start(), made before the new LWP's thread exists: announce the
  // LWP to the daemon, so that its first dispatch can be waiting when the thread begins and
  // the thread's start() is then only a look at the answer (docs/PERFORMANCE.md, M3). A
  // channel that cannot do this ignores it. At most once, before start().
  virtual void post_start() {}
  // Opens the channel (unless post_start() did) and waits for the LWP's first dispatch
  // (RETURN_START): the gen it starts user code with. On the LWP's own thread.
  virtual ChannelEnd start(uint64_t* gen) = 0;
  // One syscall: sends `rq`, blocks until the daemon returns to user mode.
  virtual ChannelEnd call(const SysRequest& rq, SysReply* out) = 0;
  // Enters the kernel for a kick latched for `gen` (outside a handler); the new gen.
  virtual ChannelEnd trap(uint64_t gen, uint64_t* new_gen) = 0;
  // _lwp_exit(): returns kLwpGone once the daemon reports the LWP gone.
  virtual ChannelEnd exit() = 0;
  // lwpd_detach(): ends the process with status 0 and waits until the daemon acknowledged
  // it (or the channel closed). From here on the transport reports no loss (kLost).
  virtual void exit_for_detach() = 0;
  // From the kick handler: enters the kernel for a kick at `gen` and blocks until the LWP
  // may run user code again (true, *new_gen set) or is gone (false). ASYNC-SIGNAL-SAFE: no
  // allocation, no locks; every signal is blocked.
  virtual bool trap_from_handler(uint64_t gen, uint64_t* new_gen) = 0;
  // A kick latch the daemon writes itself before it signals the LWP's thread (the shm
  // transport: common/region_abi.h, "Kicks"); null where kicks come only as events.
  // Valid until close(); read async-signal-safely.
  virtual const std::atomic<uint64_t>* kick_word() const { return nullptr; }
  // Releases the channel; no call afterwards.
  virtual void close() = 0;
};

struct AttachInfo {
  std::string comm;    // shown by inspection
  pid_t host_pid = 0;  // informational
};

struct AttachReply {
  nb::pid_t pid = 0;        // emulated pid == LID of the first LWP
  std::string lwpctl_path;  // empty: an older daemon did not say
  int ncpus = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual const char* name() const = 0;  // "grpc", "shm" (what the LWP channels use)
  // The session's credential, after attach(): what a side channel to the daemon presents.
  virtual const std::string& session_token() const = 0;
  // The handshake that makes this host process an emulated one. 0, or an errno for
  // lwpd_attach(): ECONNREFUSED (no daemon there), EAGAIN (a process limit), EPROTO (the
  // daemon broke the protocol), or a system error of the transport's own set-up.
  virtual int attach(const AttachInfo& info, AttachReply* out) = 0;
  // Starts delivering events to `sink`. Called once after attach(), with every signal
  // blocked (threads it starts inherit that).
  virtual void start(EventSink sink) = 0;
  // The signals (NetBSD bits) whose handlers have SA_RESTART, for the daemon's restarts.
  virtual void send_sigrestart(uint64_t nb_mask) = 0;
  // A channel for LWP `lid` (opened by its start()).
  virtual std::unique_ptr<LwpChannel> open_channel(nb::lwpid_t lid) = 0;
  // Where the process's lwpctl file is when AttachReply did not say (older daemons); ""
  // when the daemon does not know either.
  virtual std::string find_lwpctl_path(nb::pid_t pid) = 0;
  // lwpd_detach(), after exit_for_detach(): ends the session, stops and joins the
  // transport's threads. No event is delivered afterwards.
  virtual void stop() = 0;
};

enum class TransportKind : uint8_t { kGrpc, kShm };

// The gRPC transport to `endpoint` (a gRPC target: unix:PATH, HOST:PORT).
std::unique_ptr<Transport> make_grpc_transport(const std::string& endpoint);
// The shared-memory transport over `endpoint`'s session. `required`: attach() fails (with
// EPROTONOSUPPORT, or the daemon's errno) where no region can be had, instead of falling
// back to gRPC channels.
std::unique_ptr<Transport> make_shm_transport(const std::string& endpoint, bool required);

}  // namespace lwpd::client
