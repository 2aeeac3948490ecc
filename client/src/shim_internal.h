// liblwpclient's private header: NetBSD's _lwp_* calls on Linux, served by the lwpd daemon.
//
// ---------------------------------------------------------------------------
// Files (client/src/)
//
//   shim_internal.h   this design comment; the LWP and process records; the
//                     functions the files below share.
//   transport.h       the seam to the daemon: Transport (per process),
//                     LwpChannel (per LWP), Event; kernel_call.h holds the
//                     plain request/return values that cross it.
//   transport_grpc.cc the gRPC transport: all of the shim's gRPC (Session
//                     stream, LWP channels, Trap RPCs).
//   transport_shm.cc  the shared-memory transport: the gRPC Session stream for
//                     events, a region slot per LWP for entries and returns
//                     (common/region_abi.h), futex waits, no helper thread.
//   wire_codec.cc     kernel_call.h's values <-> lwpd.v1 messages, for both.
//   signal_safe.cc    ASYNC-SIGNAL-SAFE: the kick handler, deferral of kicks
//                     and user signals in the C runtime, the signal
//                     trampoline, the handler's side of proxied calls.
//   sigmask.cc        ASYNC-SIGNAL-SAFE: the signal-mask interposers.
//   runtime_code.cc   where the C runtime's code is (found at attach).
//   events.cc         the event side: kicks, signals, exits; how the host
//                     process dies with its emulated one.
//   kernel_entry.cc   the user side of a call: kernel mode, the return to
//                     user mode, ERESTART, the proxy thread.
//   lwp_start.cc      created LWPs: _lwp_makecontext, the host thread, its
//                     home stack, _lwp_create's request.
//   attach.cc         lwpd_attach/lwpd_detach, the choice of transport,
//                     per-thread set-up, the lwpctl mapping.
//   lwp_calls.cc      the _lwp_* and _sched_* wrappers.
//   ptrace.cc         lwpd_ptrace/lwpd_waitpid: structure translation.
//   sigaction.cc      sigaction()/signal() interposition.
//   netbsd_map.cc     host <-> NetBSD numbers (errno, signals, clocks), from
//                     the shared table common/netbsd_abi.h.
//   sanitizer.h       TSan fibers and kernel-order annotations.
//   futex.h           futex wait/wake on an atomic word.
//
// ---------------------------------------------------------------------------
// Threads of an attached process
//
//   LWP threads   one host thread per LWP. The first LWP is the thread that
//                 called lwpd_attach(); the others are pthreads started by
//                 _lwp_create(). Each owns one LwpChannel (its syscalls:
//                 request -> return), used only by that thread (or by a proxy
//                 worker while the thread waits, below).
//   event thread  the transport's: delivers kicks, signals, LWP exits and the
//                 process's exit to events.cc (both transports: the "control"
//                 thread, reading the Session stream).
//   dispatcher    sends Trap RPCs (asynchronous unary, callback API) for LWPs
//                 interrupted by a kick; the kick handler hands it the LWP's
//                 channel through a pipe (write(2) is async-signal-safe). The
//                 shm transport's kick handler posts its trap to the region
//                 itself and needs it only for LWPs on gRPC channels.
//   proxy         makes calls from signal handlers on worker threads (below).
//   Helper threads block every signal.
//
// An LWP thread is in one of three modes (Lwp::ustate, packed with the
// user-run generation `gen` of the return that put it in user mode):
//
//   KERNEL   it has (or is about to have) a pending kernel entry; every signal
//            is blocked, so no user handler runs and no kick is taken while
//            the thread uses its channel.
//   USER     it runs user code (the daemon has its LWP LSONPROC on a vCPU).
//   TRAPPED  it was kicked in user mode and waits inside the kick handler for
//            the trap to return (RETURN_RESUME), i.e. for a vCPU again.
//
//      KERNEL --return(gen)--> USER --syscall--> KERNEL
//                               USER --kick(gen)--> TRAPPED --resume(gen')--> USER
//
// Kicks. The daemon's kick (an Event) and the return it refers to (on the
// LWP's channel) travel separately, so a kick may arrive first. The event thread
// latches the highest kick gen per LWP (Lwp::kick_gen); an LWP thread that
// gets a return with gen g publishes USER|g and then checks the latch: if it
// is g it traps at once on its own channel. The event thread, after
// latching, sends the kick signal if it sees USER|g. Both sides use seq_cst,
// so at least one of them acts (both acting is harmless: the handler ignores
// a kick whose gen is no longer current).
//
// The kick signal is SIGRTMIN+3 (g_kick_signal), installed with SA_ONSTACK (a
// per-thread alternate stack: LWP stacks may be small) and a mask that blocks
// every signal. The handler is async-signal-safe (signal_safe.cc): atomics and
// LwpChannel::trap_from_handler(), which blocks until the LWP may run again
// (gRPC: write(2) to the dispatcher's pipe, futex wait until the Trap RPC
// returns). NetBSD signal 36
// (SIGRTMIN+3 there too) therefore cannot be delivered to an LWP: it is dropped.
//
// Kicks inside the C runtime. A thread interrupted inside libc, ld.so,
// libgcc_s or a sanitizer runtime may hold one of their internal locks (a malloc arena, the loader
// lock). Trapping it there would make the transport's own threads, which need
// the same locks, wait for a thread that waits for a vCPU -- and the vCPUs may
// be held by LWPs whose return or trap needs those threads: a deadlock
// that stalled the whole daemon with 10,000 LWPs (docs/PERFORMANCE.md, M5).
// So the handler does not trap a thread interrupted in those libraries unless
// it is blocked in a system call there (it holds none of their locks then:
// glibc never sleeps in the kernel with an arena or loader lock held); it
// arms a per-thread timer (kRekickUs) that sends the kick signal again, and
// traps on the first kick that finds the thread outside them.
//
// Created LWPs. _lwp_makecontext() is getcontext() + makecontext() onto the
// caller's stack with a trampoline; start, arg and the private pointer travel
// as 32-bit halves in the six argument registers, so _lwp_create() can read
// pc (= start) and the TLS base back from any copy of the context. The new
// pthread opens its channel, waits for RETURN_START and then swapcontext()s
// onto a private copy of the user's context. Afterwards every call the LWP
// makes is executed on the pthread's own stack ("home"): the user side stores
// the request and swapcontext()s home; home talks to the daemon and swaps
// back. Both switches happen with every signal blocked (the user side blocks
// before and restores its mask after; glibc's swapcontext is not atomic). That
// keeps the transport (gRPC) off small user stacks and lets _lwp_exit() leave the user's
// stack before the daemon reports the LWP gone (libpthread may free that
// stack as soon as lc_curcpu reads LWPCTL_CPU_EXITED). The first LWP has
// no home: it calls on its own stack and blocks signals with pthread_sigmask;
// when it _lwp_exit()s, its host thread parks for good (pthread_exit() would
// unwind the caller's C++ frames). When a start function returns, the
// trampoline calls _lwp_exit().
// _lwp_setprivate()/_lwp_getprivate() keep the value in the daemon only; the
// host's %fs is never touched (glibc owns it).
//
// Signals. Signal events are delivered with tgkill() to the LWP's thread
// (NetBSD -> host numbering). A thread in KERNEL or TRAPPED mode has them
// blocked, so they stay pending until it returns to user mode, as in NetBSD
// (delivery at the return to user). Signals for an LWP whose thread does not
// exist yet are kept in Lwp::pend_sigs and raised by the thread itself. The
// daemon learns which signals have SA_RESTART handlers (Transport::
// send_sigrestart) at attach and at every _lwp_create. Because a signal that cuts
// a sleep short reaches the shim as an event while the EINTR or
// ERESTART return comes on the channel, such a return waits (bounded: 1 s for
// ERESTART, 20 ms for EINTR, which _lwp_wakeup also produces) until the
// event thread has handed the signal over, so the handler runs before the
// caller sees EINTR. ERRNO_ERESTART is then reissued transparently, after the
// handler ran in user mode.
//
// Calls from signal handlers. NetBSD's _lwp_* calls are system calls, safe in
// any signal handler. Here a call may allocate (gRPC does); a handler that
// interrupted its thread inside malloc and made the call on that thread would
// deadlock on the arena lock the interrupted code holds. So a call made from a
// handler runs on another thread: the caller fills a request on its own stack,
// queues it for the process's proxy thread and futex-waits (every signal
// blocked) -- atomics, futex and sigprocmask only, all async-signal-safe. The
// proxy starts a short-lived worker thread per request (a handler's call may
// sleep, e.g. park, and must not hold up another LWP's), which makes the call
// on the LWP's own channel: the channel is idle, since the LWP's thread ran
// user code when the signal came. "From a handler" is recognised by the kick
// signal being blocked: the shim interposes sigaction() and signal() to add it
// to every handler's sa_mask (which also keeps kicks out of handlers, like
// kicks in the C runtime, above), and user code never runs with it blocked
// otherwise -- a program that blocks it itself gets the (slower) proxy path.
// The proxy alone would still leave one hazard: the interrupted code keeps its
// malloc arena locked while the handler waits, and the transport's threads may
// share that arena. So the handlers themselves are installed behind a
// trampoline that treats a signal landing in the C runtime as a kick there is
// treated: it is kept (with its siginfo) and re-raised with rt_tgsigqueueinfo
// from the kick handler once the per-thread timer finds the thread out of the
// runtime. A handler therefore never runs inside libc (unless the thread is
// blocked in a system call there), as no LWP is ever preempted there.
//
// Exits and failures.
//   * proc_exited (event or channel) -> _exit(status), or death by the
//     host's version of the signal when the process was killed.
//   * The last live LWP's _lwp_exit() is turned into the process's exit with
//     status 0 by the daemon; the shim just follows proc_exited.
//   * The events or a channel break without proc_exited (daemon gone):
//     the emulated process no longer exists, so the host process kills itself
//     with SIGKILL after a message on stderr (an LWP may not run without the
//     kernel's consent, and returning EIO would let it).
//   * Calls before lwpd_attach() or from a host thread that is not an LWP:
//     -1/EPERM.
//   * lwpd_detach(): ProcExit(0) on the caller's channel, then the transport
//     is stopped and the helper threads joined; the process is a plain host
//     process again (and may attach again).
//
// Locks: Process::mu (LWP table, orphan kicks/signals, live count) and
// Process::ctl_mu (the lwpctl mapping) are leaves; Process::sigrestart_mu is
// held across Transport::send_sigrestart(), so it comes before the transport's
// own locks (gRPC: Session writes), which are leaves. An LWP thread takes them
// only in KERNEL mode, so a kick can never trap a thread that holds one.
// ---------------------------------------------------------------------------

#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "futex.h"
#include "kernel_call.h"
#include "lwpd/lwp.h"
#include "sigmask.h"
#include "transport.h"

namespace lwpd::client {

constexpr size_t kLwpctlSize = 65536;
constexpr size_t kLwpThreadStack = 512 * 1024;
constexpr long kRekickUs = 100;  // retry interval of a deferred kick

// ---- modes (top comment) ----------------------------------------------------------------

enum Mode : uint64_t { kKernel = 0, kUser = 1, kTrapped = 2 };
constexpr uint64_t pack(uint64_t gen, Mode m) { return (gen << 2) | m; }
constexpr Mode mode_of(uint64_t s) { return static_cast<Mode>(s & 3); }
constexpr uint64_t gen_of(uint64_t s) { return s >> 2; }

// ---- thread ids (async-signal-safe) -----------------------------------------------------

inline pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// SIGRTMIN+3, set once by the first lwpd_attach() (attach.cc).
extern int g_kick_signal;

// ---- the C runtime's code, where a kick is deferred (runtime_code.cc) -------------------

struct CodeRange {
  uintptr_t lo = 0, hi = 0;
};
// Written once by find_runtime_code() before the kick handler is installed, then only read
// (by the handler): no synchronisation needed beyond sigaction's.
extern CodeRange g_runtime_code[16];
extern int g_nruntime_code;
// ThreadSanitizer's runtime is loaded. It runs asynchronous signals' handlers itself, at
// its own safe points (when the thread next enters its runtime: an interceptor's exit, an
// atomic operation, a blocking call), never inside a libc call it intercepts: user signals
// need no deferral of ours there (and a spinner on atomics, nearly always inside libtsan
// when the signal comes, would never get one). Kicks keep theirs, except in TSan's atomic
// operations (below): without it the stall of
// ClientSched.KickInsideMallocDoesNotStallTheDaemon comes back under TSan.
extern bool g_tsan_runtime;
// The code of ThreadSanitizer's atomic operations (its exported __tsan_atomic* functions,
// which instrumented code calls for every atomic access), sorted. A kick that lands in one
// is not deferred: the operation holds no lock of the C runtime, and TSan runs the handler
// at the start of the thread's next atomic operation or at its next interceptor's exit.
// Without this, an LWP spinning on an atomic (nearly always inside one of them) could not
// be preempted, stopped or suspended under TSan.
extern CodeRange g_tsan_atomics[96];
extern int g_ntsan_atomics;

void find_runtime_code();

// ---- one LWP ---------------------------------------------------------------------------

struct Lwp {
  nb::lwpid_t lid = 0;
  std::atomic<pid_t> tid{0};                       // host thread id, 0 until the thread runs
  std::atomic<uint64_t> ustate{pack(0, kKernel)};  // mode|gen, see the top comment
  std::atomic<uint64_t> kick_gen{0};               // highest kick gen latched by events
  // The channel's own kick latch (LwpChannel::kick_word), set by the LWP's thread once its
  // channel is open, cleared before it closes. See kicked().
  std::atomic<const std::atomic<uint64_t>*> kick_word{nullptr};
  std::atomic<uint64_t> pend_sigs{0};  // host signals (bit sig-1) awaiting a thread
  std::atomic<uint32_t> sig_seq{0};    // futex word: signals handed to the thread

  // User signals that landed in the C runtime, re-raised by the kick handler once the
  // thread is out of it (top comment). This thread's, in handlers, every signal blocked.
  struct DeferredSig {
    int sig;
    siginfo_t info;
  };
  static constexpr int kMaxDeferred = 8;
  DeferredSig deferred[kMaxDeferred];
  int ndeferred = 0;
  // The thread is in unblock(): a signal landing in libc there holds no lock (__atomic).
  bool at_unblock = false;

  // Owned by the LWP's thread (a created LWP's channel is opened by its creator, before the
  // thread exists: after_return).
  std::unique_ptr<LwpChannel> ch;
  void* altstack = nullptr;
  timer_t rekick{};  // re-sends the kick signal to this thread (deferred kicks)
  bool has_rekick = false;

  // Created LWPs only: the pthread's own context and the user's. Switches in
  // both directions happen with every signal blocked (glibc's swapcontext sets
  // the mask before it loads the registers: a handler in between would run on
  // the wrong stack); the user side restores its own mask afterwards.
  bool has_home = false;
  ucontext_t home{};
  ucontext_t user{};             // the initial context, from _lwp_create
  ucontext_t* user_ptr = &user;  // where home swaps back to
  sigset_t start_mask{};         // the initial context's mask (trampoline sets it)
  bool start_mask_pending = false;
  const SysRequest* req = nullptr;  // set by the user side before swapping home
  std::shared_ptr<Lwp> creating;    // _lwp_create in progress: started by after_return
  bool exit_req = false;            // _lwp_exit() requested
  SysReply resp;                    // written by home before swapping back
  void* home_fiber = nullptr;       // TSan fibers of the two stacks (null without TSan)
  void* user_fiber = nullptr;
};

// Was the LWP kicked in generation `gen`, by an event (the latch) or by the daemon through
// its channel (the channel's word)? Async-signal-safe.
inline bool kicked(const Lwp& l, uint64_t gen) {
  if (l.kick_gen.load() == gen) return true;
  const std::atomic<uint64_t>* w = l.kick_word.load();
  return w != nullptr && w->load() == gen;
}

// The LWP the calling thread is. Initial-exec TLS: read by the kick handler.
extern __thread Lwp* t_self __attribute__((tls_model("initial-exec")));
// Set on a proxy worker while it makes a call for an LWP whose thread is in a
// signal handler: the call goes straight to the channel, never to the home stack.
extern thread_local bool t_proxy;

// A call made from a signal handler, run for the LWP by a proxy worker thread
// (top comment). Lives on the caller's stack until `done` is set.
struct ProxyReq {
  Lwp* lwp = nullptr;
  void (*run)(Lwp&, void*) = nullptr;  // runs the call on the worker
  void* ctx = nullptr;
  ProxyReq* next = nullptr;       // the proxy's queue
  std::atomic<uint32_t> done{0};  // futex word: 1 once the call returned
};

// ---- the attached process --------------------------------------------------------------

struct Process {
  std::unique_ptr<Transport> transport;
  nb::pid_t pid = 0;
  int ncpus = 0;
  std::string lwpctl_path;
  std::string endpoint;

  std::mutex sigrestart_mu;                // before the transport's locks: the mask below
  uint64_t sigrestart = ~uint64_t{0};      // last mask sent
  uint64_t sigrestart_gen = ~uint64_t{0};  // g_sigaction_gen it was computed at

  std::mutex mu;  // leaf: the fields below
  std::unordered_map<nb::lwpid_t, std::shared_ptr<Lwp>> lwps;
  std::unordered_map<nb::lwpid_t, uint64_t> orphan_kicks;  // kicks for LWPs not yet known
  std::unordered_map<nb::lwpid_t, uint64_t> orphan_sigs;   // host signal bits, same
  int nlive = 0;                                           // LWPs that have not called _lwp_exit

  std::mutex ctl_mu;  // lwpctl mapping
  std::atomic<char*> lwpctl_base{nullptr};

  std::atomic<ProxyReq*> proxy_q{nullptr};  // calls from signal handlers (a stack)
  std::atomic<uint32_t> proxy_seq{0};       // futex word: ++ per request queued
  std::thread proxy;
  std::atomic<bool> detaching{false};
  // Futex word: created LWPs' host threads that may still touch this record (lwpd_detach
  // waits for them: an exited LWP's thread finishes its epilogue after the daemon, and so
  // its waiter, saw the LWP gone).
  std::atomic<uint32_t> lwp_threads{0};
};

extern std::atomic<Process*> g_proc;
extern std::mutex g_attach_mu;  // serialises lwpd_attach / lwpd_detach

inline Process* proc() { return g_proc.load(std::memory_order_acquire); }

// ---- dying (events.cc) -----------------------------------------------------------------

// The emulated process is gone: end the host process the same way.
[[noreturn]] void proc_exit_now(const ExitStatus& st);
// The daemon is gone (or broke the protocol): the emulated process no longer
// exists, and an LWP may not run user code without the kernel's consent.
[[noreturn]] void die_lost(const char* what);
// Never returns: the LWP is gone and the process is ending (events end it).
[[noreturn]] void park_forever();
// What a channel operation that produced no return means for the calling thread.
[[noreturn]] void follow(const ChannelEnd& e);

// ---- events (events.cc) ------------------------------------------------------------------

// The process's EventSink (transport.h).
void on_event(Process& p, const Event& ev);
// Raises the LWP's pending host signals on its thread (once it exists).
void deliver_pending(Lwp& l);

// ---- async-signal-safe (signal_safe.cc) --------------------------------------------------

void kick_handler(int, siginfo_t*, void* uctx);
// Every program handler runs through here (sigaction.cc installs it).
void user_signal_tramp(int sig, siginfo_t* info, void* uctx);
// The program's handler for each signal whose disposition is user_signal_tramp; a handler,
// never SIG_DFL/SIG_IGN, while the trampoline is installed. __atomic builtins only.
extern void* g_user_handler[_NSIG];
extern bool g_user_siginfo[_NSIG];  // it was installed with SA_SIGINFO
// The shim's way back to user code's signal mask: the signals it lets in are delivered
// inside this pthread_sigmask(), at once.
void unblock(Lwp& l, const sigset_t& mask);
// True when the calling thread runs a signal handler: only there does user code run with
// the kick signal blocked.
bool in_signal_handler();
// The handler's side of a proxied call: queue `q` and wait for it with every signal blocked
// (a nested handler runs after it, not during), then restore the caller's mask.
void proxy_wait(Process& p, Lwp& l, ProxyReq& q);

// ---- the user side of a call (kernel_entry.cc) -----------------------------------------

// One syscall on the LWP's channel, from kernel mode; see the top comment for the wait for
// an interrupting signal.
SysReply kernel_call(Lwp& l, const SysRequest& rq);
// The thread returns to user mode with `gen` (signals still blocked).
void leave_kernel(Lwp& l, uint64_t gen);
// A syscall for the calling LWP, back in user mode when it returns; ERESTART and EREISSUE
// are reissued.
SysReply sys(Lwp& l, const SysRequest& rq);
// The proxy thread (top comment, "Calls from signal handlers").
void proxy_main(Process* p);

inline int fail(int e) {
  errno = e;
  return -1;
}
// 0, or -1 with errno set to the host's value of the NetBSD error.
int result(const SysReply& r);

// Makes `body` a call from a signal handler: run on a proxy worker (proxy_main).
template <class R, class F>
R proxy_call(Process& p, Lwp& l, F& body) {
  struct Ctx {
    F* body;
    R ret;
    int err;
  } c{&body, R{}, 0};
  ProxyReq q;
  q.lwp = &l;
  q.ctx = &c;
  q.run = [](Lwp& lwp, void* v) {
    auto* cx = static_cast<Ctx*>(v);
    cx->ret = (*cx->body)(lwp);
    cx->err = errno;
  };
  proxy_wait(p, l, q);
  errno = c.err;
  return c.ret;
}

// Every _lwp_* entry: `body(l)` for the calling LWP, on this thread or, for a
// signal handler's call, on a proxy worker. Not an LWP: EPERM and `fail_value`.
template <class R, class F>
R lwp_call(R fail_value, F body) {
  Process* p = proc();
  Lwp* l = t_self;
  if (p == nullptr || l == nullptr) {
    errno = EPERM;
    return fail_value;
  }
  if (!in_signal_handler()) return body(*l);
  return proxy_call<R>(*p, *l, body);
}

// ---- created LWPs (lwp_start.cc) ---------------------------------------------------------

// Kernel-mode work once a call has returned, before the LWP may be held up in
// leave_kernel(): a successful _lwp_create starts the new LWP's host thread.
void after_return(Lwp& l, const SysReply& r);
// A private copy of the user's context, ready for swapcontext().
void copy_context(const ucontext_t& src, Lwp* l);
// _lwp_create's request for the context `uc`.
LwpCreateReq create_request(const ucontext_t& uc, unsigned long flags, bool lid_fault);

// ---- per-thread set-up, registration, lwpctl (attach.cc) ---------------------------------

void setup_altstack(Lwp& l);
void drop_altstack(Lwp& l);
// The calling thread's deferred-kick timer (a kick signal aimed at this thread).
void setup_rekick(Lwp& l);
void drop_rekick(Lwp& l);
// Publish a new LWP record, taking kicks and signals that arrived before it.
void lwp_register(Process& p, const std::shared_ptr<Lwp>& l);
void lwp_unregister(Process& p, nb::lwpid_t lid);
// Tell the daemon which signals have SA_RESTART handlers (if that changed).
void send_sigrestart(Process& p);
// Bumped by every disposition set through sigaction()/signal() (sigaction.cc): the
// SA_RESTART mask is rescanned only when it moved. __atomic builtins (signal-safe file).
extern uint64_t g_sigaction_gen;
// The process's lwpctl region, mapped on first use; null when it cannot be.
char* lwpctl_map(Process& p);

}  // namespace lwpd::client
