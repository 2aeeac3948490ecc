// liblwpclient: NetBSD's _lwp_* calls on Linux, served by the lwpd daemon.
//
// ---------------------------------------------------------------------------
// Threads of an attached process
//
//   LWP threads   one host thread per LWP. The first LWP is the thread that
//                 called lwpd_attach(); the others are pthreads started by
//                 _lwp_create(). Each owns one LwpChannel stream (its
//                 syscalls: request -> return), used only by that thread.
//   control       reads the process's Session stream: kicks, signals, LWP
//                 exits and the process's exit.
//   dispatcher    sends Trap RPCs (asynchronous unary, callback API) for LWPs
//                 interrupted by a kick; the kick handler hands it the LWP
//                 through a pipe (write(2) is async-signal-safe).
//   Helper threads block every signal.
//
// An LWP thread is in one of three modes (Lwp::ustate, packed with the
// user-run generation `gen` of the return that put it in user mode):
//
//   KERNEL   it has (or is about to have) a pending kernel entry; every signal
//            is blocked, so no user handler runs and no kick is taken while
//            the thread uses its stream.
//   USER     it runs user code (the daemon has its LWP LSONPROC on a vCPU).
//   TRAPPED  it was kicked in user mode and waits inside the kick handler for
//            the Trap RPC to return (RETURN_RESUME), i.e. for a vCPU again.
//
//      KERNEL --return(gen)--> USER --syscall--> KERNEL
//                               USER --kick(gen)--> TRAPPED --resume(gen')--> USER
//
// Kicks. The daemon's kick (Session) and the return it refers to (LwpChannel)
// travel on different streams, so a kick may arrive first. The control thread
// latches the highest kick gen per LWP (Lwp::kick_gen); an LWP thread that
// gets a return with gen g publishes USER|g and then checks the latch: if it
// is g it traps at once on its own channel. The control thread, after
// latching, sends the kick signal if it sees USER|g. Both sides use seq_cst,
// so at least one of them acts (both acting is harmless: the handler ignores
// a kick whose gen is no longer current).
//
// The kick signal is SIGRTMIN+3 (kKickSignal), installed with SA_ONSTACK (a
// per-thread alternate stack: LWP stacks may be small) and a mask that blocks
// every signal. The handler is async-signal-safe: atomics, write(2) to the
// dispatcher's pipe, futex wait until the Trap returns. NetBSD signal 36
// (SIGRTMIN+3 there too) therefore cannot be delivered to an LWP: it is dropped.
//
// Kicks inside the C runtime. A thread interrupted inside libc, ld.so,
// libgcc_s or a sanitizer runtime may hold one of their internal locks (a malloc arena, the loader
// lock). Trapping it there would make the shim's own gRPC threads, which need
// the same locks, wait for a thread that waits for a vCPU -- and the vCPUs may
// be held by LWPs whose return or trap needs those gRPC threads: a deadlock
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
// keeps gRPC off small user stacks and lets _lwp_exit() leave the user's
// stack before the daemon reports the LWP gone (libpthread may free that
// stack as soon as lc_curcpu reads LWPCTL_CPU_EXITED). The first LWP has
// no home: it calls on its own stack and blocks signals with pthread_sigmask;
// when it _lwp_exit()s, its host thread parks for good (pthread_exit() would
// unwind the caller's C++ frames). When a start function returns, the
// trampoline calls _lwp_exit().
// _lwp_setprivate()/_lwp_getprivate() keep the value in the daemon only; the
// host's %fs is never touched (glibc owns it).
//
// Signals. LwpSignal events are delivered with tgkill() to the LWP's thread
// (NetBSD -> host numbering). A thread in KERNEL or TRAPPED mode has them
// blocked, so they stay pending until it returns to user mode, as in NetBSD
// (delivery at the return to user). Signals for an LWP whose thread does not
// exist yet are kept in Lwp::pend_sigs and raised by the thread itself. The
// daemon learns which signals have SA_RESTART handlers (SessionRequest
// .sigrestart) at attach and at every _lwp_create. Because a signal that cuts
// a sleep short reaches the shim on the Session stream while the EINTR or
// ERESTART return comes on the channel, such a return waits (bounded: 1 s for
// ERESTART, 20 ms for EINTR, which _lwp_wakeup also produces) until the
// control thread has handed the signal over, so the handler runs before the
// caller sees EINTR. ERRNO_ERESTART is then reissued transparently, after the
// handler ran in user mode.
//
// Calls from signal handlers. NetBSD's _lwp_* calls are system calls, safe in
// any signal handler. Here a call allocates and talks gRPC; a handler that
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
// malloc arena locked while the handler waits, and the shim's gRPC threads may
// share that arena. So the handlers themselves are installed behind a
// trampoline that treats a signal landing in the C runtime as a kick there is
// treated: it is kept (with its siginfo) and re-raised with rt_tgsigqueueinfo
// from the kick handler once the per-thread timer finds the thread out of the
// runtime. A handler therefore never runs inside libc (unless the thread is
// blocked in a system call there), as no LWP is ever preempted there.
//
// Exits and failures.
//   * proc_exited (Session or channel) -> _exit(status), or death by the
//     host's version of the signal when the process was killed.
//   * The last live LWP's _lwp_exit() is turned into the process's exit with
//     status 0 by the daemon; the shim just follows proc_exited.
//   * The session or a channel breaks without proc_exited (daemon gone):
//     the emulated process no longer exists, so the host process kills itself
//     with SIGKILL after a message on stderr (an LWP may not run without the
//     kernel's consent, and returning EIO would let it).
//   * Calls before lwpd_attach() or from a host thread that is not an LWP:
//     -1/EPERM.
//   * lwpd_detach(): ProcExit(0) on the caller's channel, then the session is
//     cancelled and the helper threads joined; the process is a plain host
//     process again (and may attach again).
//
// Locks: Process::mu (LWP table, orphan kicks/signals, live count) and
// Process::sess_wmu (Session writes) are leaves. An LWP thread takes them only
// in KERNEL mode, so a kick can never trap a thread that holds one of them.
// ---------------------------------------------------------------------------

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include <grpcpp/grpcpp.h>

#include "lwpd/lwp.h"
#include "netbsd_map.h"
#include "sigmask.h"
// glibc's <signal.h> defines a BSD macro sigmask(sig) that breaks the generated
// accessor LwpCreateArgs::sigmask(); the shim never uses the macro.
#undef sigmask
#include "lwpd/v1/kernel.grpc.pb.h"

// ThreadSanitizer keeps a shadow call stack per thread; a created LWP's thread switches
// between two stacks (home and the user's) with swapcontext(), which TSan does not follow.
// Each stack is therefore a TSan fiber, and every switch is announced (flag 0: the switch
// synchronises, as it does: both stacks run on one thread, one at a time).
#if defined(__SANITIZE_THREAD__)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
}
#define LWPD_FIBER_CURRENT() __tsan_get_current_fiber()
#define LWPD_FIBER_CREATE() __tsan_create_fiber(0)
#define LWPD_FIBER_DESTROY(f) __tsan_destroy_fiber(f)
#define LWPD_FIBER_SWITCH(f) __tsan_switch_to_fiber((f), 0)
// LWPs synchronise through the daemon (_lwp_continue, _lwp_unpark, _lwp_wait, _lwp_create...),
// i.e. through another process, where TSan cannot follow. The daemon handles one process's
// kernel entries in an order (its process lock), so each entry is a release and each return
// an acquire of one per-process object: user code ordered by the emulated kernel is ordered
// for TSan too (over-approximating it as one lock, as NetBSD's p_lock mostly is).
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
static char g_tsan_kernel_order;
#define LWPD_KERNEL_ENTRY() __tsan_release(&g_tsan_kernel_order)
#define LWPD_KERNEL_RETURN() __tsan_acquire(&g_tsan_kernel_order)
#else
#define LWPD_FIBER_CURRENT() nullptr
#define LWPD_FIBER_CREATE() nullptr
#define LWPD_FIBER_DESTROY(f) ((void)(f))
#define LWPD_FIBER_SWITCH(f) ((void)(f))
#define LWPD_KERNEL_ENTRY() ((void)0)
#define LWPD_KERNEL_RETURN() ((void)0)
#endif

// Code that runs where a sanitizer's runtime does not expect instrumented code: the
// sigaction() interposer (the runtimes install their handlers through it while they
// initialise) and the signal trampoline up to the program's handler (under TSan, that is
// TSan's own handler, which must be the first instrumented code a signal reaches). Such
// code uses __atomic builtins, never std::atomic (whose out-of-line copies are instrumented).
#define LWPD_NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined")))

namespace lwpd::client {
namespace {

namespace pb = ::lwpd::v1;

constexpr size_t kLwpctlSize = 65536;
constexpr size_t kLwpThreadStack = 512 * 1024;
constexpr int kNbNsig = 64;
constexpr const char* kTokenKey = "lwpd-token";

// ---- modes -----------------------------------------------------------------------------

enum Mode : uint64_t { kKernel = 0, kUser = 1, kTrapped = 2 };
constexpr uint64_t pack(uint64_t gen, Mode m) { return (gen << 2) | m; }
constexpr Mode mode_of(uint64_t s) { return static_cast<Mode>(s & 3); }
constexpr uint64_t gen_of(uint64_t s) { return s >> 2; }

// Trap completion word (futex): waiting, resumed, or the LWP is gone.
enum TrapState : uint32_t { kTrapWaiting = 0, kTrapResumed = 1, kTrapGone = 2 };

void futex_wait(std::atomic<uint32_t>* w, uint32_t val) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT_PRIVATE, val, nullptr, nullptr, 0);
}
// Returns false on timeout.
bool futex_wait_ms(std::atomic<uint32_t>* w, uint32_t val, long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  long r =
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT_PRIVATE, val, &ts, nullptr, 0);
  return !(r == -1 && errno == ETIMEDOUT);
}
void futex_wake(std::atomic<uint32_t>* w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr,
          nullptr, 0);
}

pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

int g_kick_signal = 0;  // SIGRTMIN+3, set once by the first lwpd_attach()

// ---- the C runtime's code, where a kick is deferred (see the top comment) ---------------

constexpr long kRekickUs = 100;  // retry interval of a deferred kick

struct CodeRange {
  uintptr_t lo = 0, hi = 0;
};
// Written once by find_runtime_code() before the kick handler is installed, then
// only read (by the handler): no synchronisation needed beyond sigaction's.
CodeRange g_runtime_code[16];
int g_nruntime_code = 0;
// ThreadSanitizer's runtime is loaded. It runs asynchronous signals' handlers itself, at
// its own safe points (when the thread next enters its runtime: an interceptor's exit, an
// atomic operation, a blocking call), never inside a libc call it intercepts: user signals
// need no deferral of ours there (and a spinner on atomics, nearly always inside libtsan
// when the signal comes, would never get one). Kicks keep theirs, except in TSan's atomic
// operations (below): without it the stall of
// ClientSched.KickInsideMallocDoesNotStallTheDaemon comes back under TSan.
bool g_tsan_runtime = false;
// The code of ThreadSanitizer's atomic operations (its exported __tsan_atomic* functions,
// which instrumented code calls for every atomic access), sorted. A kick that lands in one
// is not deferred: the operation holds no lock of the C runtime, and TSan runs the handler
// at the start of the thread's next atomic operation or at its next interceptor's exit.
// Without this, an LWP spinning on an atomic (nearly always inside one of them) could not
// be preempted, stopped or suspended under TSan.
CodeRange g_tsan_atomics[96];
int g_ntsan_atomics = 0;

bool is_runtime_lib(const char* path) {
  const char* base = strrchr(path, '/');
  base = base != nullptr ? base + 1 : path;
  // The sanitizers' runtimes replace malloc (and hold their allocator's locks) in
  // ASan/TSan builds.
  return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "ld-linux", 8) == 0 ||
         strncmp(base, "libgcc_s.so", 11) == 0 || strncmp(base, "libasan.so", 10) == 0 ||
         strncmp(base, "libtsan.so", 10) == 0;
}

// Fills g_tsan_atomics with the code of each __tsan_atomic* function: its address and the
// size its dynamic symbol gives. Left empty where libtsan lacks them: kicks are then
// deferred in all of libtsan.
void find_tsan_atomics() {
  static const char* const kOps[] = {"load",
                                     "store",
                                     "exchange",
                                     "fetch_add",
                                     "fetch_sub",
                                     "fetch_and",
                                     "fetch_or",
                                     "fetch_xor",
                                     "fetch_nand",
                                     "compare_exchange_strong",
                                     "compare_exchange_weak",
                                     "compare_exchange_val"};
  auto add = [](const char* name) {
    void* fn = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    ElfW(Sym)* sym = nullptr;
    if (fn == nullptr || g_ntsan_atomics == static_cast<int>(std::size(g_tsan_atomics)) ||
        dladdr1(fn, &info, reinterpret_cast<void**>(&sym), RTLD_DL_SYMENT) == 0 || sym == nullptr)
      return;
    const auto lo = reinterpret_cast<uintptr_t>(fn);
    g_tsan_atomics[g_ntsan_atomics++] = CodeRange{lo, lo + sym->st_size};
  };
  char name[64];
  for (int bits : {8, 16, 32, 64, 128}) {
    for (const char* op : kOps) {
      snprintf(name, sizeof name, "__tsan_atomic%d_%s", bits, op);
      add(name);
    }
  }
  add("__tsan_atomic_thread_fence");
  add("__tsan_atomic_signal_fence");
  std::sort(g_tsan_atomics, g_tsan_atomics + g_ntsan_atomics,
            [](const CodeRange& x, const CodeRange& y) { return x.lo < y.lo; });
}

void find_runtime_code() {
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) {
        if (info->dlpi_name == nullptr || !is_runtime_lib(info->dlpi_name)) return 0;
        for (int i = 0; i < info->dlpi_phnum && g_nruntime_code < 16; i++) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          g_runtime_code[g_nruntime_code++] = CodeRange{lo, lo + ph.p_memsz};
        }
        if (strstr(info->dlpi_name, "libtsan.so") != nullptr) g_tsan_runtime = true;
        return 0;
      },
      nullptr);
  if (g_tsan_runtime) find_tsan_atomics();  // dlsym: not under dl_iterate_phdr's lock
}

// Whether `pc` is inside one of TSan's atomic operations (binary search; signal-safe).
LWPD_NO_SANITIZE bool in_tsan_atomic(uintptr_t pc) {
  int lo = 0, hi = g_ntsan_atomics;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (pc < g_tsan_atomics[mid].lo) {
      hi = mid;
    } else if (pc >= g_tsan_atomics[mid].hi) {
      lo = mid + 1;
    } else {
      return true;
    }
  }
  return false;
}

// True when the interrupted thread is running C-runtime code that may hold one
// of its locks: inside the runtime's code and not blocked in a system call.
// For a user signal, the return of any system call counts as a boundary: that is
// where raise() and pthread_kill() of the thread itself deliver, and POSIX runs
// the handler before they return. Async-signal-safe.
LWPD_NO_SANITIZE bool in_runtime_critical(const void* uctx, bool user_signal) {
  const auto* uc = static_cast<const ucontext_t*>(uctx);
  const auto pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (in_tsan_atomic(pc)) return false;
  for (int i = 0; i < g_nruntime_code; i++) {
    const CodeRange& r = g_runtime_code[i];
    if (pc < r.lo + 2 || pc >= r.hi) continue;
    // `syscall` is 0f 05. A blocking call the kick interrupted either returns
    // -EINTR just after it, or (SA_RESTART, restart_syscall) is rewound onto it.
    uint16_t at, before;
    memcpy(&at, reinterpret_cast<const void*>(pc), 2);
    memcpy(&before, reinterpret_cast<const void*>(pc - 2), 2);
    const bool interrupted_call =
        at == 0x050f ||
        (before == 0x050f && (user_signal || uc->uc_mcontext.gregs[REG_RAX] == -EINTR));
    return !interrupted_call;
  }
  return false;
}

// ---- one LWP ---------------------------------------------------------------------------

struct Lwp {
  lwpid_t lid = 0;
  std::atomic<pid_t> tid{0};                       // host thread id, 0 until the thread runs
  std::atomic<uint64_t> ustate{pack(0, kKernel)};  // mode|gen, see the top comment
  std::atomic<uint64_t> kick_gen{0};               // highest kick gen latched by control
  std::atomic<uint64_t> pend_sigs{0};              // host signals (bit sig-1) awaiting a thread
  std::atomic<uint32_t> sig_seq{0};                // futex word: signals handed to the thread
  std::atomic<uint32_t> trap_state{kTrapResumed};  // futex word, see TrapState
  uint64_t trap_gen = 0;                           // written before trap_state = kTrapResumed

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

  // Owned by the LWP's thread.
  std::unique_ptr<grpc::ClientContext> ch_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<pb::LwpRequest, pb::LwpEvent>> ch;
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
  const pb::Syscall* req = nullptr;  // set by the user side before swapping home
  std::shared_ptr<Lwp> creating;     // _lwp_create in progress: started by after_return
  bool exit_req = false;             // _lwp_exit() requested
  pb::SyscallReturn resp;            // written by home before swapping back
  void* home_fiber = nullptr;        // TSan fibers of the two stacks (null without TSan)
  void* user_fiber = nullptr;
};

// The LWP the calling thread is. Initial-exec TLS: read by the kick handler.
__thread Lwp* t_self __attribute__((tls_model("initial-exec"))) = nullptr;
// Set on a proxy worker while it makes a call for an LWP whose thread is in a
// signal handler: the call goes straight to the channel, never to the home stack.
thread_local bool t_proxy = false;

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
  std::shared_ptr<grpc::Channel> chan;
  std::unique_ptr<pb::Kernel::Stub> stub;
  std::unique_ptr<pb::Inspect::Stub> inspect;
  grpc::ClientContext sess_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<pb::SessionRequest, pb::SessionEvent>> sess;
  std::string token;
  pid_t pid = 0;
  int ncpus = 0;
  std::string lwpctl_path;
  std::string endpoint;

  std::mutex sess_wmu;                 // Session writes
  uint64_t sigrestart = ~uint64_t{0};  // last mask sent (sess_wmu)

  std::mutex mu;  // leaf: the fields below
  std::unordered_map<lwpid_t, std::shared_ptr<Lwp>> lwps;
  std::unordered_map<lwpid_t, uint64_t> orphan_kicks;  // kicks for LWPs not yet known
  std::unordered_map<lwpid_t, uint64_t> orphan_sigs;   // host signal bits, same
  int nlive = 0;                                       // LWPs that have not called _lwp_exit

  std::mutex ctl_mu;  // lwpctl mapping
  std::atomic<char*> lwpctl_base{nullptr};

  int pipe_r = -1, pipe_w = -1;             // kick handler -> dispatcher
  std::atomic<ProxyReq*> proxy_q{nullptr};  // calls from signal handlers (a stack)
  std::atomic<uint32_t> proxy_seq{0};       // futex word: ++ per request queued
  std::thread control, dispatcher, proxy;
  std::atomic<bool> detaching{false};
  // Futex word: created LWPs' host threads that may still touch this record (lwpd_detach
  // waits for them: an exited LWP's thread finishes its epilogue after the daemon, and so
  // its waiter, saw the LWP gone).
  std::atomic<uint32_t> lwp_threads{0};
};

std::atomic<Process*> g_proc{nullptr};
std::mutex g_attach_mu;  // serialises lwpd_attach / lwpd_detach

Process* proc() { return g_proc.load(std::memory_order_acquire); }

void add_token(grpc::ClientContext* ctx, const Process& p) { ctx->AddMetadata(kTokenKey, p.token); }

// ---- dying -----------------------------------------------------------------------------

[[noreturn]] void die_signaled(int host_sig) {
  if (host_sig > 0 && host_sig != SIGKILL && host_sig != SIGSTOP) {
    signal(host_sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, host_sig);
    shim_sigmask(SIG_UNBLOCK, &s, nullptr);
    kill(getpid(), host_sig);
  }
  if (host_sig == SIGKILL || host_sig <= 0) kill(getpid(), SIGKILL);
  _exit(128 + host_sig);  // the signal's default action was not to terminate
}

// The emulated process is gone: end the host process the same way.
[[noreturn]] void proc_exit_now(const pb::ExitStatus& st) {
  if (!st.signaled()) _exit(st.code());
  int h = host_signo(st.code());
  die_signaled(h > 0 ? h : SIGKILL);
}

// The daemon is gone (or broke the protocol): the emulated process no longer
// exists, and an LWP may not run user code without the kernel's consent.
[[noreturn]] void die_lost(const char* what) {
  Process* p = proc();
  if (p != nullptr && p->detaching.load()) {
    // lwpd_detach() tore the session down: this thread just ends.
    for (;;) pause();
  }
  fprintf(stderr, "liblwpclient: %s; the emulated process is gone\n", what);
  kill(getpid(), SIGKILL);
  _exit(137);
}

// Never returns: the LWP is gone and the process is ending (control exits it).
[[noreturn]] void park_forever() {
  for (;;) pause();
}

// ---- the channel (owned by the LWP's thread) -------------------------------------------

void channel_open(Process& p, Lwp& l) {
  l.ch_ctx = std::make_unique<grpc::ClientContext>();
  add_token(l.ch_ctx.get(), p);
  l.ch = p.stub->LwpChannel(l.ch_ctx.get());
  pb::LwpRequest rq;
  rq.mutable_open()->set_lid(l.lid);
  if (!l.ch->Write(rq)) die_lost("cannot open an LWP channel");
}

void channel_close(Lwp& l) {
  if (!l.ch) return;
  l.ch_ctx->TryCancel();
  (void)l.ch->Finish();
  l.ch.reset();
  l.ch_ctx.reset();
}

// Read the next return on the LWP's channel. An LWP that is gone never returns.
pb::SyscallReturn channel_read(Lwp& l) {
  pb::LwpEvent ev;
  if (!l.ch->Read(&ev)) die_lost("the LWP channel broke");
  switch (ev.msg_case()) {
    case pb::LwpEvent::kRet:
      LWPD_KERNEL_RETURN();
      return std::move(*ev.mutable_ret());
    case pb::LwpEvent::kProcExited:
      proc_exit_now(ev.proc_exited());
    case pb::LwpEvent::kExited:
      park_forever();
    default:
      break;
  }
  die_lost("unexpected LWP channel event");
}

// How long a return that a signal interrupted waits for that signal to come
// in on the Session stream (see channel_call).
constexpr long kRestartSignalWaitMs = 1000;  // ERESTART: a signal is certain
constexpr long kEintrSignalWaitMs = 20;      // EINTR: or _lwp_wakeup, without one

// One syscall on the channel. A call cut short by a signal (EINTR, ERESTART)
// returns only once the control thread has handed that signal to this thread
// (bounded wait): the two streams are not ordered, and NetBSD runs the handler
// on the way back to user mode, before the caller sees EINTR or the restart.
pb::SyscallReturn channel_call(Lwp& l, const pb::Syscall& sc) {
  pb::LwpRequest rq;
  *rq.mutable_syscall() = sc;
  const uint32_t seq0 = l.sig_seq.load();
  LWPD_KERNEL_ENTRY();
  if (!l.ch->Write(rq)) die_lost("the LWP channel broke");
  pb::SyscallReturn r = channel_read(l);
  long wait_ms = r.error() == pb::ERRNO_ERESTART ? kRestartSignalWaitMs
                 : r.error() == pb::ERRNO_EINTR  ? kEintrSignalWaitMs
                                                 : 0;
  if (wait_ms > 0) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long left = wait_ms; l.sig_seq.load() == seq0 && left > 0;) {
      futex_wait_ms(&l.sig_seq, seq0, left);
      clock_gettime(CLOCK_MONOTONIC, &t1);
      left = wait_ms - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    }
  }
  return r;
}

// Enter the kernel because of a kick latched for `gen`; returns the new gen.
uint64_t channel_trap(Lwp& l, uint64_t gen) {
  pb::LwpRequest rq;
  rq.set_trap(gen);
  LWPD_KERNEL_ENTRY();
  if (!l.ch->Write(rq)) die_lost("the LWP channel broke");
  return channel_read(l).gen();
}

// _lwp_exit on the channel: waits until the daemon reports the LWP gone.
void channel_exit(Lwp& l) {
  pb::LwpRequest rq;
  rq.mutable_syscall()->mutable_lwp_exit();
  LWPD_KERNEL_ENTRY();
  if (!l.ch->Write(rq)) die_lost("the LWP channel broke");
  pb::LwpEvent ev;
  while (l.ch->Read(&ev)) {
    if (ev.has_proc_exited()) proc_exit_now(ev.proc_exited());
    if (ev.msg_case() == pb::LwpEvent::kExited) return;
  }
  die_lost("the LWP channel broke during _lwp_exit");
}

// The thread returns to user mode with `gen` (signals still blocked).
void leave_kernel(Lwp& l, uint64_t gen) {
  for (;;) {
    l.ustate.store(pack(gen, kUser));  // seq_cst: pairs with control's kick_gen then ustate
    if (l.kick_gen.load() != gen) return;
    l.ustate.store(pack(gen, kKernel));
    gen = channel_trap(l, gen);
  }
}

// ---- the kick handler and user handlers (async-signal-safe) -----------------------------

// Where a kick may trap the thread and a user handler may run: the thread is not
// inside the C runtime, or it is only there to unblock signals for the shim.
LWPD_NO_SANITIZE bool safe_point(const Lwp& l, const void* uctx, bool user_signal) {
  return (user_signal && g_tsan_runtime) || __atomic_load_n(&l.at_unblock, __ATOMIC_RELAXED) ||
         !in_runtime_critical(uctx, user_signal);
}

// The shim's way back to user code's signal mask: the signals it lets in are
// delivered inside this pthread_sigmask(), at once (safe_point).
void unblock(Lwp& l, const sigset_t& mask) {
  __atomic_store_n(&l.at_unblock, true, __ATOMIC_RELAXED);
  shim_sigmask(SIG_SETMASK, &mask, nullptr);
  __atomic_store_n(&l.at_unblock, false, __ATOMIC_RELAXED);
}

// Kick this thread again in kRekickUs.
LWPD_NO_SANITIZE void arm_rekick(Lwp& l) {
  itimerspec again{};
  again.it_value.tv_nsec = kRekickUs * 1000;
  timer_settime(l.rekick, 0, &again, nullptr);
}

// Re-raise the user signals deferred in the C runtime, with their own siginfo, once the
// thread is out of it: they are delivered when the kick handler returns.
void redeliver_deferred(Lwp& l, const void* uctx) {
  if (!safe_point(l, uctx, true)) {
    arm_rekick(l);
    return;
  }
  const pid_t pid = getpid(), tid = gettid_();
  for (int i = 0; i < l.ndeferred; i++)
    syscall(SYS_rt_tgsigqueueinfo, pid, tid, l.deferred[i].sig, &l.deferred[i].info);
  l.ndeferred = 0;
}

void kick_handler(int, siginfo_t*, void* uctx) {
  const int saved_errno = errno;
  Lwp* l = t_self;
  Process* p = proc();
  if (l != nullptr && l->ndeferred > 0) redeliver_deferred(*l, uctx);
  while (l != nullptr && p != nullptr) {
    uint64_t s = l->ustate.load();
    if (mode_of(s) != kUser || l->kick_gen.load() != gen_of(s)) break;
    if (l->has_rekick && !safe_point(*l, uctx, false)) {
      arm_rekick(*l);  // not here: let the thread leave the C runtime first (top comment)
      break;
    }
    if (!l->ustate.compare_exchange_strong(s, pack(gen_of(s), kTrapped))) break;
    l->trap_state.store(kTrapWaiting);
    Lwp* msg = l;
    while (write(p->pipe_w, &msg, sizeof msg) < 0 && errno == EINTR) {
    }
    uint32_t v;
    while ((v = l->trap_state.load(std::memory_order_acquire)) == kTrapWaiting)
      futex_wait(&l->trap_state, kTrapWaiting);
    if (v == kTrapGone) {
      for (;;) futex_wait(&l->trap_state, kTrapGone);  // the process is ending
    }
    l->ustate.store(pack(l->trap_gen, kUser));  // and re-check the latch
  }
  errno = saved_errno;
}

// The program's handler for each signal whose disposition is user_signal_tramp
// (sigaction() below); a handler, never SIG_DFL/SIG_IGN, while the trampoline is installed.
// __atomic builtins: sigaction() below is not instrumented and may not call out.
void* g_user_handler[_NSIG];
bool g_user_siginfo[_NSIG];  // it was installed with SA_SIGINFO

// Keep the signal for later (kick handler). false: no room, deliver it now.
LWPD_NO_SANITIZE bool defer_signal(Lwp& l, int sig, const siginfo_t* info) {
  // Every signal blocked, so a nested deferral cannot interleave (the raw system call:
  // under TSan, pthread_sigmask is an interceptor).
  uint64_t all = ~uint64_t{0}, old = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
  const bool ok = l.ndeferred < Lwp::kMaxDeferred;
  if (ok) {
    Lwp::DeferredSig& d = l.deferred[l.ndeferred++];
    d.sig = sig;
    // Word by word: a memcpy() call would reach the sanitizers' interceptor.
    const auto* from = reinterpret_cast<const volatile uint64_t*>(info);
    auto* to = reinterpret_cast<volatile uint64_t*>(&d.info);
    for (size_t i = 0; i < sizeof(siginfo_t) / sizeof(uint64_t); i++) to[i] = from[i];
    arm_rekick(l);
  }
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  return ok;
}

// A fault raised by the instruction the thread is executing: it must be handled now
// (returning would only execute the instruction again).
LWPD_NO_SANITIZE bool is_fault(int sig, const siginfo_t* info) {
  if (info == nullptr || info->si_code <= 0) return false;  // sent by someone
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
         sig == SIGSYS;
}

// Every program handler runs through here: one that would interrupt an LWP in the C
// runtime (holding a malloc or loader lock, say) is deferred like a kick (top comment).
LWPD_NO_SANITIZE void user_signal_tramp(int sig, siginfo_t* info, void* uctx) {
  Lwp* l = t_self;
  if (l != nullptr && l->has_rekick && !is_fault(sig, info) && !safe_point(*l, uctx, true) &&
      defer_signal(*l, sig, info))
    return;
  void* h = __atomic_load_n(&g_user_handler[sig], __ATOMIC_ACQUIRE);
  if (h == nullptr) return;  // raced with a change of disposition: it is gone
  const bool kick_view = kick_view_save();
  if (__atomic_load_n(&g_user_siginfo[sig], __ATOMIC_RELAXED)) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(h)(sig, info, uctx);
  } else {
    reinterpret_cast<void (*)(int)>(h)(sig);
  }
  kick_view_restore(kick_view);
}

// ---- helper threads --------------------------------------------------------------------

struct TrapCall {
  grpc::ClientContext ctx;
  pb::LwpRef req;
  pb::SyscallReturn resp;
};

void dispatcher_main(Process* p) {
  for (;;) {
    Lwp* l = nullptr;
    ssize_t n = read(p->pipe_r, &l, sizeof l);
    if (n == 0) return;
    if (n != static_cast<ssize_t>(sizeof l)) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    auto* t = new TrapCall;
    add_token(&t->ctx, *p);
    t->req.set_lid(l->lid);
    // The callback runs on a libgrpc thread after the Trap's return: for TSan, a kernel
    // entry and its return; the release comes once the callback object exists.
    std::function<void(grpc::Status)> done = [t, l, p](grpc::Status st) {
      LWPD_KERNEL_RETURN();
      if (st.ok()) {
        l->trap_gen = t->resp.gen();
        l->trap_state.store(kTrapResumed, std::memory_order_release);
      } else {
        if (!p->detaching.load() && st.error_code() != grpc::StatusCode::ABORTED)
          fprintf(stderr, "liblwpclient: Trap(%d) failed: %s\n", l->lid,
                  st.error_message().c_str());
        l->trap_state.store(kTrapGone, std::memory_order_release);
      }
      futex_wake(&l->trap_state);
      delete t;
    };
    LWPD_KERNEL_ENTRY();
    p->stub->async()->Trap(&t->ctx, &t->req, &t->resp, std::move(done));
  }
}

void deliver_pending(Lwp& l) {
  pid_t tid = l.tid.load();
  if (tid == 0) return;
  uint64_t bits = l.pend_sigs.exchange(0);
  for (int h = 1; bits != 0 && h <= 64; h++) {
    if (bits & (uint64_t{1} << (h - 1))) {
      bits &= ~(uint64_t{1} << (h - 1));
      syscall(SYS_tgkill, getpid(), tid, h);
    }
  }
}

void on_kick(Process& p, const pb::Kick& k) {
  std::shared_ptr<Lwp> l;
  {
    std::lock_guard g(p.mu);
    auto it = p.lwps.find(k.lid());
    if (it == p.lwps.end()) {
      uint64_t& o = p.orphan_kicks[k.lid()];
      o = std::max(o, k.gen());
      return;
    }
    l = it->second;
  }
  uint64_t cur = l->kick_gen.load();
  while (cur < k.gen() && !l->kick_gen.compare_exchange_weak(cur, k.gen())) {
  }
  uint64_t s = l->ustate.load();  // seq_cst: after the latch, see leave_kernel
  pid_t tid = l->tid.load();
  if (mode_of(s) == kUser && gen_of(s) == k.gen() && tid != 0)
    syscall(SYS_tgkill, getpid(), tid, g_kick_signal);
}

void on_signal(Process& p, const pb::LwpSignal& s) {
  int h = host_signo(s.info().signo());
  if (h <= 0 || h > 64 || h == g_kick_signal) return;  // no host equivalent: dropped
  const uint64_t bit = uint64_t{1} << (h - 1);
  std::shared_ptr<Lwp> l;
  {
    std::lock_guard g(p.mu);
    auto it = p.lwps.find(s.lid());
    if (it == p.lwps.end()) {
      p.orphan_sigs[s.lid()] |= bit;
      return;
    }
    l = it->second;
  }
  l->pend_sigs.fetch_or(bit);
  deliver_pending(*l);
  l->sig_seq.fetch_add(1);  // after the tgkill: the signal is pending on the thread
  futex_wake(&l->sig_seq);
}

void control_main(Process* p) {
  pb::SessionEvent ev;
  while (p->sess->Read(&ev)) {
    switch (ev.msg_case()) {
      case pb::SessionEvent::kKick:
        on_kick(*p, ev.kick());
        break;
      case pb::SessionEvent::kSignal:
        on_signal(*p, ev.signal());
        break;
      case pb::SessionEvent::kLwpExited: {
        std::lock_guard g(p->mu);
        p->orphan_kicks.erase(ev.lwp_exited().lid());
        p->orphan_sigs.erase(ev.lwp_exited().lid());
        break;
      }
      case pb::SessionEvent::kProcExited:
        if (!p->detaching.load()) proc_exit_now(ev.proc_exited());
        break;
      default:
        break;
    }
  }
  if (p->detaching.load()) return;
  grpc::Status st = p->sess->Finish();
  std::string what = "the session with lwpd ended (" + st.error_message() + ")";
  die_lost(what.c_str());
}

// Starts a helper thread with every signal blocked.
template <class F>
std::thread start_blocked(F f) {
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  std::thread t(std::move(f));
  shim_sigmask(SIG_SETMASK, &old, nullptr);
  return t;
}

// ---- registration ----------------------------------------------------------------------

void setup_altstack(Lwp& l) {
  size_t sz = std::max<size_t>(65536, static_cast<size_t>(sysconf(_SC_SIGSTKSZ)));
  l.altstack = malloc(sz);
  if (l.altstack == nullptr) return;
  stack_t ss{};
  ss.ss_sp = l.altstack;
  ss.ss_size = sz;
  if (sigaltstack(&ss, nullptr) != 0) {
    free(l.altstack);
    l.altstack = nullptr;
  }
}

// The calling thread's deferred-kick timer (a kick signal aimed at this thread).
void setup_rekick(Lwp& l) {
  sigevent ev{};
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = g_kick_signal;
  ev._sigev_un._tid = gettid_();
  l.has_rekick = timer_create(CLOCK_MONOTONIC, &ev, &l.rekick) == 0;
}

void drop_rekick(Lwp& l) {
  if (l.has_rekick) timer_delete(l.rekick);
  l.has_rekick = false;
}

void drop_altstack(Lwp& l) {
  if (l.altstack == nullptr) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  free(l.altstack);
  l.altstack = nullptr;
}

// Publish a new LWP record, taking kicks and signals that arrived before it.
void lwp_register(Process& p, const std::shared_ptr<Lwp>& l) {
  std::lock_guard g(p.mu);
  if (auto it = p.orphan_kicks.find(l->lid); it != p.orphan_kicks.end()) {
    l->kick_gen.store(it->second);
    p.orphan_kicks.erase(it);
  }
  if (auto it = p.orphan_sigs.find(l->lid); it != p.orphan_sigs.end()) {
    l->pend_sigs.fetch_or(it->second);
    p.orphan_sigs.erase(it);
  }
  p.lwps[l->lid] = l;
  p.nlive++;
}

void lwp_unregister(Process& p, lwpid_t lid) {
  std::lock_guard g(p.mu);
  p.lwps.erase(lid);
}

// Tell the daemon which signals have SA_RESTART handlers (if that changed).
void send_sigrestart(Process& p) {
  uint64_t mask = 0;
  for (int h = 1; h < _NSIG; h++) {
    struct sigaction sa;
    if (h == g_kick_signal || sigaction(h, nullptr, &sa) != 0) continue;
    bool handler =
        (sa.sa_flags & SA_SIGINFO) ? true : (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    if (!handler || !(sa.sa_flags & SA_RESTART)) continue;
    if (int nb = nb_signo(h)) mask |= uint64_t{1} << (nb - 1);
  }
  std::lock_guard g(p.sess_wmu);
  if (mask == p.sigrestart) return;
  p.sigrestart = mask;
  pb::SessionRequest rq;
  rq.set_sigrestart(mask);
  p.sess->Write(rq);
}

// ---- the user side of a call -----------------------------------------------------------

void after_return(Lwp& l, const pb::SyscallReturn& r);

// One kernel entry for the calling LWP, back in user mode (pending signals
// delivered) when it returns. See the top comment for why created LWPs make
// their calls on their home stack.
pb::SyscallReturn sys_once(Lwp& l, const pb::Syscall& sc) {
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  l.ustate.store(pack(gen_of(l.ustate.load()), kKernel));
  if (l.has_home && !t_proxy) {
    ucontext_t me;  // per call: a nested call from a signal handler has its own
    l.req = &sc;
    l.exit_req = false;
    l.user_ptr = &me;
    LWPD_FIBER_SWITCH(l.home_fiber);
    swapcontext(&me, &l.home);
    pb::SyscallReturn r = std::move(l.resp);
    unblock(l, old);  // pending signals are delivered here
    return r;
  }
  pb::SyscallReturn r = channel_call(l, sc);
  after_return(l, r);
  leave_kernel(l, r.gen());
  unblock(l, old);
  return r;
}

// A syscall; ERESTART is reissued after the signal's handler ran in user mode,
// EREISSUE (a tracer's wait was notified) at once.
pb::SyscallReturn sys(Lwp& l, const pb::Syscall& sc) {
  for (;;) {
    pb::SyscallReturn r = sys_once(l, sc);
    if (r.kind() == pb::RETURN_SYSCALL &&
        (r.error() == pb::ERRNO_ERESTART || r.error() == pb::ERRNO_EREISSUE))
      continue;
    return r;
  }
}

int fail(int e) {
  errno = e;
  return -1;
}

// ---- calls from signal handlers (see the top comment) -----------------------------------

// True when the calling thread runs a signal handler: only there does user code
// run with the kick signal blocked. Async-signal-safe.
bool in_signal_handler() {
  sigset_t cur;
  shim_sigmask(SIG_BLOCK, nullptr, &cur);
  return g_kick_signal != 0 && sigismember(&cur, g_kick_signal) == 1;
}

// A proxy worker: make the call, then let its caller go.
void proxy_run(ProxyReq* q) {
  std::atomic<uint32_t>* done = &q->done;
  t_proxy = true;
  q->run(*q->lwp, q->ctx);
  t_proxy = false;
  done->store(1, std::memory_order_release);
  futex_wake(done);  // *q may be gone already: the wake only names the address
}

void proxy_main(Process* p) {
  for (;;) {
    const uint32_t seq = p->proxy_seq.load();
    ProxyReq* q = p->proxy_q.exchange(nullptr, std::memory_order_acquire);
    if (q == nullptr) {
      if (p->detaching.load()) return;
      futex_wait(&p->proxy_seq, seq);
      continue;
    }
    while (q != nullptr) {
      ProxyReq* next = q->next;  // before the worker may finish it
      try {
        std::thread(proxy_run, q).detach();  // signals stay blocked: inherited
      } catch (const std::system_error&) {
        proxy_run(q);  // no thread to spare: make the call here
      }
      q = next;
    }
  }
}

// The handler's side: queue the call and wait for it with every signal blocked
// (a nested handler runs after it, not during). Async-signal-safe.
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
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  ProxyReq* head = p.proxy_q.load(std::memory_order_relaxed);
  do {
    q.next = head;
  } while (!p.proxy_q.compare_exchange_weak(head, &q, std::memory_order_release,
                                            std::memory_order_relaxed));
  p.proxy_seq.fetch_add(1);
  futex_wake(&p.proxy_seq);
  while (q.done.load(std::memory_order_acquire) == 0) futex_wait(&q.done, 0);
  unblock(l, old);
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

// 0, or -1 with errno set to the host's value of the NetBSD error.
int result(const pb::SyscallReturn& r) {
  if (r.error() == pb::ERRNO_OK) return 0;
  return fail(host_errno(r.error()));
}

// ---- created LWPs ----------------------------------------------------------------------

// makecontext() passes ints: 64-bit values travel as two 32-bit halves.
void lwp_trampoline(unsigned sh, unsigned sl, unsigned ah, unsigned al, unsigned, unsigned) {
  auto start = reinterpret_cast<void (*)(void*)>((uint64_t{sh} << 32) | sl);
  void* arg = reinterpret_cast<void*>((uint64_t{ah} << 32) | al);
  if (Lwp* l = t_self; l != nullptr && l->start_mask_pending) {
    l->start_mask_pending = false;
    unblock(*l, l->start_mask);
  }
  start(arg);
  _lwp_exit();
}

uint64_t join_halves(greg_t hi, greg_t lo) {
  return (static_cast<uint64_t>(hi) << 32) | (static_cast<uint64_t>(lo) & 0xffffffffu);
}

bool made_by_us(const ucontext_t& uc) {
  return uc.uc_mcontext.gregs[REG_RIP] == reinterpret_cast<greg_t>(&lwp_trampoline);
}

void* lwp_thread_main(void* argp) {
  auto* argl = static_cast<std::shared_ptr<Lwp>*>(argp);
  std::shared_ptr<Lwp> keep = std::move(*argl);
  delete argl;
  Lwp& l = *keep;
  Process& p = *proc();
  t_self = &l;
  setup_altstack(l);
  setup_rekick(l);
  l.tid.store(gettid_());
  deliver_pending(l);  // pend in the kernel: every signal is blocked until user mode

  channel_open(p, l);
  uint64_t gen = channel_read(l).gen();  // RETURN_START
  l.has_home = true;
  l.home_fiber = LWPD_FIBER_CURRENT();
  l.user_fiber = LWPD_FIBER_CREATE();
  for (;;) {
    leave_kernel(l, gen);
    LWPD_FIBER_SWITCH(l.user_fiber);
    swapcontext(&l.home, l.user_ptr);  // user code runs until its next call
    l.ustate.store(pack(gen_of(l.ustate.load()), kKernel));
    if (l.exit_req) break;
    l.resp = channel_call(l, *l.req);
    after_return(l, l.resp);
    gen = l.resp.gen();
  }
  // Off the user's stack for good: now the daemon may report the LWP gone.
  LWPD_FIBER_DESTROY(l.user_fiber);
  channel_exit(l);
  channel_close(l);
  drop_rekick(l);
  drop_altstack(l);
  t_self = nullptr;
  lwp_unregister(p, l.lid);
  p.lwp_threads.fetch_sub(1);  // the last touch of `p`: lwpd_detach may free it now
  futex_wake(&p.lwp_threads);
  return nullptr;
}

bool start_lwp_thread(const std::shared_ptr<Lwp>& l);

// Work the shim does in kernel mode once a call has returned, before the LWP
// may be held up in leave_kernel(): a successful _lwp_create starts the new
// LWP's host thread here. The daemon may already have dispatched the new LWP
// (RETURN_START); if its thread only started after the creator got back to
// user mode, a kick trapping the creator while the new LWP holds the vCPU
// would deadlock both.
void after_return(Lwp& l, const pb::SyscallReturn& r) {
  if (!l.creating || r.error() == pb::ERRNO_ERESTART) return;
  std::shared_ptr<Lwp> nl = std::move(l.creating);
  if (r.error() != pb::ERRNO_OK) return;
  nl->lid = static_cast<lwpid_t>(r.retval());
  lwp_register(*proc(), nl);
  if (!start_lwp_thread(nl)) die_lost("pthread_create failed for a new LWP");
}

bool start_lwp_thread(const std::shared_ptr<Lwp>& l) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, kLwpThreadStack);
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  pthread_t th;
  auto* arg = new std::shared_ptr<Lwp>(l);
  Process& p = *proc();
  p.lwp_threads.fetch_add(1);
  int rc = pthread_create(&th, &attr, lwp_thread_main, arg);
  shim_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    p.lwp_threads.fetch_sub(1);
    delete arg;
  }
  return rc == 0;
}

// A private copy of the user's context, ready for swapcontext(). For our own
// contexts the mask is applied by the trampoline, once on the user's stack.
void copy_context(const ucontext_t& src, Lwp* l) {
  ucontext_t* dst = &l->user;
  *dst = src;
  if (src.uc_mcontext.fpregs != nullptr) dst->__fpregs_mem = *src.uc_mcontext.fpregs;
  dst->uc_mcontext.fpregs = &dst->__fpregs_mem;
  dst->uc_flags = 0;
  dst->uc_link = nullptr;
  sigdelset(&dst->uc_sigmask, g_kick_signal);
  if (made_by_us(src)) {
    l->start_mask = dst->uc_sigmask;
    l->start_mask_pending = true;
    sigfillset(&dst->uc_sigmask);
  }
}

pb::Syscall create_call(const ucontext_t& uc, unsigned long flags, bool lid_fault) {
  const greg_t* r = uc.uc_mcontext.gregs;
  pb::Syscall sc;
  auto* a = sc.mutable_lwp_create();
  a->set_uc_flags(static_cast<uint32_t>(uc.uc_flags));
  if (made_by_us(uc)) {
    a->set_pc(join_halves(r[REG_RDI], r[REG_RSI]));
    a->set_tls_base(join_halves(r[REG_R8], r[REG_R9]));
    a->set_rflags(static_cast<uint64_t>(r[REG_EFL]));
  } else {
    // glibc's getcontext() does not save RFLAGS: send 0 (the kernel's default).
    a->set_pc(static_cast<uint64_t>(r[REG_RIP]));
  }
  a->set_sigmask(nb_sigset(uc.uc_sigmask));
  a->set_flags(flags);
  a->set_lid_out_fault(lid_fault);
  return sc;
}

// ---- lwpctl ----------------------------------------------------------------------------

std::string lwpctl_path(Process& p) {
  if (!p.lwpctl_path.empty()) return p.lwpctl_path;
  // Older daemons: ask the inspection service, then try the runtime directory.
  grpc::ClientContext ctx;
  pb::ListLwpsRequest rq;
  rq.set_pid(p.pid);
  pb::ListLwpsReply rep;
  if (p.inspect->ListLwps(&ctx, rq, &rep).ok() && !rep.proc().lwpctl_path().empty())
    return rep.proc().lwpctl_path();
  if (const char* d = getenv("LWPD_RUNTIME_DIR"))
    return std::string(d) + "/lwpctl." + std::to_string(p.pid);
  return "";
}

char* lwpctl_map(Process& p) {
  if (char* b = p.lwpctl_base.load(std::memory_order_acquire)) return b;
  std::lock_guard g(p.ctl_mu);
  if (char* b = p.lwpctl_base.load()) return b;
  std::string path = lwpctl_path(p);
  int fd = path.empty() ? -1 : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  void* m = mmap(nullptr, kLwpctlSize, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return nullptr;
  p.lwpctl_base.store(static_cast<char*>(m), std::memory_order_release);
  return static_cast<char*>(m);
}

// ---- attach / detach -------------------------------------------------------------------

std::string resolve_endpoint(const char* ep) {
  std::string e = ep != nullptr ? ep : "";
  if (e.empty()) {
    if (const char* env = getenv("LWPD_ENDPOINT")) e = env;
  }
  if (e.empty()) {
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    e = std::string(xdg != nullptr && *xdg ? xdg : "/tmp") + "/lwpd/lwpd.sock";
  }
  if (e[0] == '/') e = "unix:" + e;
  return e;
}

std::string host_comm() {
  char buf[64] = {0};
  int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
  }
  return buf;
}

bool install_kick_handler() {
  g_kick_signal = SIGRTMIN + 3;
  find_runtime_code();
  struct sigaction sa {};
  sa.sa_sigaction = kick_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigfillset(&sa.sa_mask);
  return sigaction(g_kick_signal, &sa, nullptr) == 0;
}

// Session handshake: Attach -> Attached. Errors as lwpd_attach().
int session_open(Process& p) {
  p.sess = p.stub->Session(&p.sess_ctx);
  pb::SessionRequest rq;
  rq.mutable_attach()->set_comm(host_comm());
  rq.mutable_attach()->set_host_pid(getpid());
  pb::SessionEvent ev;
  if (!p.sess->Write(rq) || !p.sess->Read(&ev)) {
    grpc::Status st = p.sess->Finish();
    switch (st.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        return ECONNREFUSED;
      case grpc::StatusCode::RESOURCE_EXHAUSTED:  // a process limit (README "Security and limits")
        return EAGAIN;
      default:
        return EPROTO;
    }
  }
  if (!ev.has_attached()) {
    p.sess_ctx.TryCancel();
    (void)p.sess->Finish();
    return EPROTO;
  }
  p.pid = ev.attached().pid();
  p.token = ev.attached().token();
  p.lwpctl_path = ev.attached().lwpctl_path();
  p.ncpus = ev.attached().ncpus();
  return 0;
}

void helpers_stop(Process& p) {
  p.proxy_seq.fetch_add(1);  // detaching is set: the proxy ends
  futex_wake(&p.proxy_seq);
  if (p.proxy.joinable()) p.proxy.join();
  if (p.pipe_w >= 0) close(p.pipe_w);
  p.pipe_w = -1;
  if (p.dispatcher.joinable()) p.dispatcher.join();
  if (p.control.joinable()) p.control.join();
  if (p.pipe_r >= 0) close(p.pipe_r);
  p.pipe_r = -1;
}

}  // namespace
}  // namespace lwpd::client

// =========================================================================================
// Public API
// =========================================================================================

using namespace lwpd::client;
namespace pb = ::lwpd::v1;

extern "C" {

int lwpd_attach(const char* endpoint) {
  std::lock_guard g(g_attach_mu);
  if (proc() != nullptr) return fail(EBUSY);
  if (g_kick_signal == 0 && !install_kick_handler()) return fail(EINVAL);

  auto* p = new Process;
  p->endpoint = resolve_endpoint(endpoint);
  // The daemon's metadata bound (server/main.cc, kMaxMetadataBytes), stated rather than
  // left to gRPC's default; the shim's own metadata is one short token.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, 8 * 1024);
  p->chan = grpc::CreateCustomChannel(p->endpoint, grpc::InsecureChannelCredentials(), args);
  p->stub = pb::Kernel::NewStub(p->chan);
  p->inspect = pb::Inspect::NewStub(p->chan);
  if (int e = session_open(*p)) {
    delete p;
    return fail(e);
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) die_lost("pipe2 failed");
  p->pipe_r = fds[0];
  p->pipe_w = fds[1];

  auto main_lwp = std::make_shared<Lwp>();
  main_lwp->lid = p->pid;
  lwp_register(*p, main_lwp);
  g_proc.store(p, std::memory_order_release);
  p->control = start_blocked([p] { control_main(p); });
  p->dispatcher = start_blocked([p] { dispatcher_main(p); });
  p->proxy = start_blocked([p] { proxy_main(p); });

  // Become the first LWP: wait for its first dispatch with signals blocked.
  Lwp& l = *main_lwp;
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  setup_altstack(l);
  setup_rekick(l);
  l.tid.store(gettid_());
  t_self = &l;
  channel_open(*p, l);
  uint64_t gen = channel_read(l).gen();  // RETURN_START
  send_sigrestart(*p);
  leave_kernel(l, gen);
  sigdelset(&old, g_kick_signal);
  deliver_pending(l);
  unblock(l, old);
  return 0;
}

pid_t lwpd_getpid(void) {
  Process* p = proc();
  return p != nullptr ? p->pid : -1;
}

int lwpd_detach(void) {
  std::lock_guard g(g_attach_mu);
  Process* p = proc();
  Lwp* l = t_self;
  if (p == nullptr || l == nullptr) return fail(EPERM);
  {
    std::lock_guard pg(p->mu);
    if (p->nlive != 1) return fail(EBUSY);
  }
  p->detaching.store(true);
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  l->ustate.store(pack(0, kKernel));
  if (l->ch) {
    pb::LwpRequest rq;
    rq.mutable_syscall()->mutable_proc_exit()->set_status(0);
    pb::LwpEvent ev;
    if (l->ch->Write(rq)) {
      while (l->ch->Read(&ev) && ev.msg_case() == pb::LwpEvent::kRet) {
      }
    }
  }
  p->sess_ctx.TryCancel();
  helpers_stop(*p);
  (void)p->sess->Finish();
  // The detaching thread may be a created LWP running on the user's stack: its
  // channel and record stay (leaked) so that its home context remains valid.
  if (!l->has_home) {
    channel_close(*l);
    drop_rekick(*l);
    drop_altstack(*l);
  }
  // The caller's own thread counts among lwp_threads if it is a created LWP (its epilogue
  // never runs). Read before the record goes: clearing the table may free `l`.
  const uint32_t mine = l->has_home ? 1 : 0;
  t_self = nullptr;
  g_proc.store(nullptr, std::memory_order_release);
  {
    std::lock_guard pg(p->mu);
    p->lwps.clear();
  }
  if (char* b = p->lwpctl_base.load()) munmap(b, kLwpctlSize);
  // Exited LWPs' threads finish their epilogue (bounded: a thread stuck elsewhere keeps
  // the record, leaked, rather than touching freed memory).
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (uint32_t n; (n = p->lwp_threads.load()) > mine;) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const long waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (waited_ms >= 2000) break;
    futex_wait_ms(&p->lwp_threads, n, 2000 - waited_ms);
  }
  if (p->lwp_threads.load() <= mine) delete p;
  shim_sigmask(SIG_SETMASK, &old, nullptr);
  return 0;
}

void _lwp_makecontext(ucontext_t* uc, void (*start)(void*), void* arg, void* priv, char* stack,
                      size_t stack_size) {
  getcontext(uc);
  uc->uc_stack.ss_sp = stack;
  uc->uc_stack.ss_size = stack_size;
  uc->uc_stack.ss_flags = 0;
  uc->uc_link = nullptr;
  auto hi = [](const void* v) {
    return static_cast<unsigned>(reinterpret_cast<uint64_t>(v) >> 32);
  };
  auto lo = [](const void* v) { return static_cast<unsigned>(reinterpret_cast<uint64_t>(v)); };
  const void* s = reinterpret_cast<const void*>(start);
  makecontext(uc, reinterpret_cast<void (*)()>(&lwp_trampoline), 6, hi(s), lo(s), hi(arg), lo(arg),
              hi(priv), lo(priv));
  uc->uc_mcontext.gregs[REG_EFL] = 0x202;  // IF | the must-be-one bit; getcontext leaves it unset
  uc->uc_flags = _UC_CPU | _UC_SIGMASK | _UC_STACK | _UC_TLSBASE;
}

int _lwp_create(const ucontext_t* uc, unsigned long flags, lwpid_t* new_lwp) {
  return lwp_call(int{-1}, [&](Lwp& self) -> int {
    if (uc == nullptr) return fail(EFAULT);
    auto nl = std::make_shared<Lwp>();
    copy_context(*uc, nl.get());
    send_sigrestart(*proc());
    self.creating = nl;
    pb::SyscallReturn r = sys(self, create_call(*uc, flags, new_lwp == nullptr));
    if (r.error() != pb::ERRNO_OK) return result(r);
    *new_lwp = static_cast<lwpid_t>(r.retval());
    return 0;
  });
}

void _lwp_exit(void) {
  Process* p = proc();
  Lwp* l = t_self;
  if (p == nullptr || l == nullptr) {
    // Not an LWP (e.g. the process detached under a created LWP): just end.
    pthread_exit(nullptr);
  }
  {
    std::lock_guard g(p->mu);
    p->nlive--;
  }
  sigset_t all;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, nullptr);
  l->ustate.store(pack(gen_of(l->ustate.load()), kKernel));
  if (l->has_home) {
    l->exit_req = true;
    LWPD_FIBER_SWITCH(l->home_fiber);
    setcontext(&l->home);  // never comes back
    abort();
  }
  channel_exit(*l);
  channel_close(*l);
  drop_rekick(*l);
  t_self = nullptr;
  lwp_unregister(*p, l->lid);
  // The first LWP is the host's main thread (or whichever thread attached): it
  // stays parked, signals blocked. pthread_exit() would unwind the caller's C++
  // frames, and a catch (...) on the way (gtest, any framework) aborts on that.
  park_forever();
}

lwpid_t _lwp_self(void) {
  Lwp* l = t_self;
  return l != nullptr ? l->lid : -1;
}

int _lwp_wait(lwpid_t wait_for, lwpid_t* departed) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_lwp_wait()->set_wait_for(wait_for);
    pb::SyscallReturn r = sys(l, sc);
    if (r.error() == pb::ERRNO_OK && departed != nullptr)
      *departed = static_cast<lwpid_t>(r.retval());
    return result(r);
  });
}

int _lwp_suspend(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_lwp_suspend()->set_target(target);
    return result(sys(l, sc));
  });
}

int _lwp_continue(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_lwp_continue()->set_target(target);
    return result(sys(l, sc));
  });
}

int _lwp_wakeup(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_lwp_wakeup()->set_target(target);
    return result(sys(l, sc));
  });
}

int _lwp_detach(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_lwp_detach()->set_target(target);
    return result(sys(l, sc));
  });
}

int _lwp_kill(lwpid_t target, int signo) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    int nb = 0;
    if (signo < 0 || signo >= _NSIG) {
      nb = kNbNsig;  // out of range there too: EINVAL from the kernel
    } else if (signo != 0 && (nb = nb_signo(signo)) == 0) {
      return fail(EINVAL);  // no NetBSD equivalent (SIGSTKFLT)
    }
    pb::Syscall sc;
    sc.mutable_lwp_kill()->set_target(target);
    sc.mutable_lwp_kill()->set_signo(nb);
    return result(sys(l, sc));
  });
}

void* _lwp_getprivate(void) {
  return lwp_call(static_cast<void*>(nullptr), [&](Lwp& l) -> void* {
    pb::Syscall sc;
    sc.mutable_lwp_getprivate();
    return reinterpret_cast<void*>(sys(l, sc).retval());
  });
}

void _lwp_setprivate(void* ptr) {
  (void)lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_lwp_setprivate()->set_ptr(reinterpret_cast<uint64_t>(ptr));
    return result(sys(l, sc));
  });
}

int _lwp_ctl(int features, struct lwpctl** address) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    Process& p = *proc();
    pb::Syscall sc;
    sc.mutable_lwp_ctl()->set_features(features);
    pb::SyscallReturn r = sys(l, sc);
    if (r.error() != pb::ERRNO_OK) return result(r);
    if (address == nullptr) return fail(EFAULT);
    char* base = lwpctl_map(p);
    if (base == nullptr) return fail(ENOMEM);
    size_t off = static_cast<size_t>(r.lwpctl_slot()) * sizeof(struct lwpctl);
    if (r.lwpctl_slot() < 0 || off >= kLwpctlSize) return fail(ENOMEM);
    *address = reinterpret_cast<struct lwpctl*>(base + off);
    return 0;
  });
}

int _lwp_park(clockid_t clock_id, int flags, struct timespec* ts, lwpid_t unpark, const void* hint,
              const void* unparkhint) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    auto* a = sc.mutable_lwp_park();
    a->set_clock_id(nb_clock(clock_id));
    a->set_flags(flags);
    if (ts != nullptr) {
      a->mutable_ts()->set_sec(ts->tv_sec);
      a->mutable_ts()->set_nsec(ts->tv_nsec);
    }
    a->set_unpark(unpark);
    a->set_hint(reinterpret_cast<uint64_t>(hint));
    a->set_unparkhint(reinterpret_cast<uint64_t>(unparkhint));
    pb::SyscallReturn r = sys(l, sc);
    if (ts != nullptr && r.has_ts() && !(flags & TIMER_ABSTIME)) {
      ts->tv_sec = static_cast<time_t>(r.ts().sec());
      ts->tv_nsec = static_cast<long>(r.ts().nsec());
    }
    return result(r);
  });
}

int _lwp_unpark(lwpid_t target, const void* hint) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_lwp_unpark()->set_target(target);
    sc.mutable_lwp_unpark()->set_hint(reinterpret_cast<uint64_t>(hint));
    return result(sys(l, sc));
  });
}

ssize_t _lwp_unpark_all(const lwpid_t* targets, size_t ntargets, const void* hint) {
  return lwp_call(ssize_t{-1}, [&](Lwp& l) -> ssize_t {
    pb::Syscall sc;
    auto* a = sc.mutable_lwp_unpark_all();
    a->set_targets_null(targets == nullptr);
    a->set_ntargets(ntargets);
    a->set_hint(reinterpret_cast<uint64_t>(hint));
    if (targets != nullptr && ntargets <= 1024) {
      for (size_t i = 0; i < ntargets; i++) a->add_targets(targets[i]);
    }
    pb::SyscallReturn r = sys(l, sc);
    if (r.error() != pb::ERRNO_OK) return result(r);
    return static_cast<ssize_t>(r.retval());
  });
}

int _lwp_setname(lwpid_t target, const char* name) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (name == nullptr) return fail(EFAULT);
    pb::Syscall sc;
    sc.mutable_lwp_setname()->set_target(target);
    sc.mutable_lwp_setname()->set_name(std::string(name, strnlen(name, 64)));
    return result(sys(l, sc));
  });
}

int _lwp_getname(lwpid_t target, char* name, size_t len) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (name == nullptr && len > 0) return fail(EFAULT);
    pb::Syscall sc;
    sc.mutable_lwp_getname()->set_target(target);
    sc.mutable_lwp_getname()->set_len(len);
    pb::SyscallReturn r = sys(l, sc);
    const std::string& n = r.name();
    if (r.error() == pb::ERRNO_OK) {
      if (n.size() + 1 > len) return fail(ENAMETOOLONG);  // cannot happen: the kernel checked
      memcpy(name, n.data(), n.size());
      name[n.size()] = '\0';
    } else if (r.error() == pb::ERRNO_ENAMETOOLONG && len > 0) {
      memcpy(name, n.data(), std::min(n.size(), len));
    }
    return result(r);
  });
}

int _sched_setparam(pid_t pid, lwpid_t lid, int policy, const struct sched_param* params) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (params == nullptr) return fail(EFAULT);
    pb::Syscall sc;
    auto* a = sc.mutable_sched_setparam();
    a->set_pid(pid);
    a->set_lid(lid);
    a->set_policy(policy);  // SCHED_OTHER/FIFO/RR and -1 share NetBSD's numbers
    a->set_priority(params->sched_priority);
    return result(sys(l, sc));
  });
}

int _sched_getparam(pid_t pid, lwpid_t lid, int* policy, struct sched_param* params) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (params == nullptr) return fail(EFAULT);
    pb::Syscall sc;
    sc.mutable_sched_getparam()->set_pid(pid);
    sc.mutable_sched_getparam()->set_lid(lid);
    pb::SyscallReturn r = sys(l, sc);
    if (r.error() != pb::ERRNO_OK) return result(r);
    if (policy != nullptr) *policy = r.policy();
    memset(params, 0, sizeof *params);
    params->sched_priority = r.priority();
    return 0;
  });
}

int _sched_setaffinity(pid_t pid, lwpid_t lid, size_t size, const cpu_set_t* set) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (set == nullptr) return fail(EFAULT);
    uint64_t mask = 0;
    const auto* bytes = reinterpret_cast<const unsigned char*>(set);
    for (size_t i = 0; i < size; i++) {
      if (bytes[i] == 0) continue;
      if (i >= 8) return fail(EINVAL);  // the emulation has at most 64 vCPUs
      mask |= uint64_t{bytes[i]} << (8 * i);
    }
    pb::Syscall sc;
    auto* a = sc.mutable_sched_setaffinity();
    a->set_pid(pid);
    a->set_lid(lid);
    a->set_mask(mask);
    return result(sys(l, sc));
  });
}

int _sched_getaffinity(pid_t pid, lwpid_t lid, size_t size, cpu_set_t* set) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (set == nullptr) return fail(EFAULT);
    pb::Syscall sc;
    sc.mutable_sched_getaffinity()->set_pid(pid);
    sc.mutable_sched_getaffinity()->set_lid(lid);
    pb::SyscallReturn r = sys(l, sc);
    if (r.error() != pb::ERRNO_OK) return result(r);
    auto* bytes = reinterpret_cast<unsigned char*>(set);
    memset(bytes, 0, size);
    for (size_t i = 0; i < size && i < 8; i++)
      bytes[i] = static_cast<unsigned char>(r.mask() >> (8 * i));
    return 0;
  });
}

int lwpd_yield(void) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    pb::Syscall sc;
    sc.mutable_sched_yield();
    return result(sys(l, sc));
  });
}

}  // extern "C"

// ---- signal handlers: the kick signal joins every handler's mask ------------------------
// (top comment, "Calls from signal handlers"). Handlers installed with
// sigaction() or signal() -- glibc's signal() does not go through sigaction(),
// so it is interposed too. sigset(), sysv_signal() and raw rt_sigaction are not.

namespace {

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

SigactionFn g_next_sigaction = nullptr;  // __atomic builtins: no instrumented guard

LWPD_NO_SANITIZE SigactionFn next_sigaction() {
  SigactionFn fn = __atomic_load_n(&g_next_sigaction, __ATOMIC_ACQUIRE);
  if (fn == nullptr) {
    fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
    __atomic_store_n(&g_next_sigaction, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

// The kick signal, known before lwpd_attach() sets g_kick_signal: handlers are
// often installed first.
LWPD_NO_SANITIZE int kick_signo() { return SIGRTMIN + 3; }

LWPD_NO_SANITIZE bool is_handler(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) != 0 || (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
}

}  // namespace

extern "C" {

LWPD_API LWPD_NO_SANITIZE int sigaction(int sig, const struct sigaction* act,
                                        struct sigaction* oact) noexcept {
  SigactionFn next = next_sigaction();
  if (next == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  const int kick = kick_signo();
  if (sig <= 0 || sig >= _NSIG || sig == kick) return next(sig, act, oact);
  void* const prev_h = __atomic_load_n(&g_user_handler[sig], __ATOMIC_ACQUIRE);
  const bool prev_si = __atomic_load_n(&g_user_siginfo[sig], __ATOMIC_RELAXED);
  struct sigaction mine;
  bool tramp = false;
  if (act != nullptr && is_handler(*act)) {
    mine = *act;
    sigaddset(&mine.sa_mask, kick);
    // SA_RESETHAND resets the disposition at delivery: a deferred signal would then get
    // the default action, so such a handler is installed as it is (only the mask changes).
    if (!(act->sa_flags & SA_RESETHAND)) {
      const bool si = (act->sa_flags & SA_SIGINFO) != 0;
      __atomic_store_n(&g_user_siginfo[sig], si, __ATOMIC_RELAXED);
      void* h = si ? reinterpret_cast<void*>(act->sa_sigaction)
                   : reinterpret_cast<void*>(act->sa_handler);
      __atomic_store_n(&g_user_handler[sig], h, __ATOMIC_RELEASE);
      mine.sa_sigaction = user_signal_tramp;
      mine.sa_flags |= SA_SIGINFO;
      tramp = true;
    }
    act = &mine;
  }
  const int rc = next(sig, act, oact);
  if (rc != 0) return rc;
  if (act != nullptr && !tramp) __atomic_store_n(&g_user_handler[sig], nullptr, __ATOMIC_RELEASE);
  if (oact != nullptr) {  // what the program installed, not the trampoline
    sigdelset(&oact->sa_mask, kick);
    if ((oact->sa_flags & SA_SIGINFO) && oact->sa_sigaction == user_signal_tramp) {
      if (prev_si) {
        oact->sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(prev_h);
      } else {
        oact->sa_handler = reinterpret_cast<sighandler_t>(prev_h);
        oact->sa_flags &= ~SA_SIGINFO;
      }
    }
  }
  return rc;
}

// BSD semantics, as glibc's signal(): the signal is blocked in its handler and
// interrupted calls restart.
LWPD_API LWPD_NO_SANITIZE sighandler_t signal(int sig, sighandler_t handler) noexcept {
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  if (handler == SIG_ERR || sigaddset(&sa.sa_mask, sig) != 0) {
    errno = EINVAL;
    return SIG_ERR;
  }
  sa.sa_flags = SA_RESTART;
  if (sigaction(sig, &sa, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

}  // extern "C"

// ---- tracing ---------------------------------------------------------------------------

namespace {

namespace pbt = ::lwpd::v1;

constexpr int kNbLwpstatusSize = 64;  // NetBSD's sizeof(struct ptrace_lwpstatus), LP64
constexpr int kNbNsigT = 64;

// The size NetBSD would see for a caller's `data` bytes of our (larger)
// struct ptrace_lwpstatus: the whole struct is NetBSD's whole struct.
int nb_lwpstatus_size(int data) {
  if (data < static_cast<int>(sizeof(lwpid_t))) return data;
  if (data > static_cast<int>(sizeof(struct ptrace_lwpstatus))) return kNbLwpstatusSize + 1;
  return kNbLwpstatusSize;
}

bool needs_addr(int req) {
  switch (req) {
    case LWPD_PT_SET_EVENT_MASK:
    case LWPD_PT_GET_EVENT_MASK:
    case LWPD_PT_GET_PROCESS_STATE:
    case LWPD_PT_GET_SIGINFO:
    case LWPD_PT_LWPINFO:
    case LWPD_PT_LWPSTATUS:
    case LWPD_PT_LWPNEXT:
      return true;
    default:
      return false;
  }
}

// Build the request: host signal numbers in `data` become NetBSD's, the
// input fields of `addr` travel by value. false: no NetBSD signal (EINVAL).
bool ptrace_call(int req, pid_t pid, void* addr, int data, pbt::PtraceArgs* a) {
  a->set_request(req);
  a->set_pid(pid);
  a->set_addr_not_one(addr != reinterpret_cast<void*>(1));
  if ((req == LWPD_PT_CONTINUE || req == LWPD_PT_DETACH) && data > 0) {
    if (data >= _NSIG) {
      data = kNbNsigT;  // out of range there too: EINVAL from the kernel
    } else if ((data = nb_signo(data)) == 0) {
      return false;
    }
  }
  if (req == LWPD_PT_LWPSTATUS || req == LWPD_PT_LWPNEXT) data = nb_lwpstatus_size(data);
  a->set_data(data);
  if (req == LWPD_PT_SET_EVENT_MASK)
    a->set_event_mask(static_cast<ptrace_event_t*>(addr)->pe_set_event);
  if (req == LWPD_PT_LWPINFO) a->set_lwpid(static_cast<struct ptrace_lwpinfo*>(addr)->pl_lwpid);
  if (req == LWPD_PT_LWPSTATUS || req == LWPD_PT_LWPNEXT)
    a->set_lwpid(static_cast<struct ptrace_lwpstatus*>(addr)->pl_lwpid);
  return true;
}

void lwpstatus_out(const pbt::PtraceOut& o, void* addr, int data) {
  struct ptrace_lwpstatus st;
  memset(&st, 0, sizeof st);
  st.pl_lwpid = o.lwpid();
  host_sigset(o.sigpend(), &st.pl_sigpend);
  host_sigset(o.sigmask(), &st.pl_sigmask);
  memcpy(st.pl_name, o.name().data(), std::min(o.name().size(), sizeof st.pl_name - 1));
  st.pl_private = reinterpret_cast<void*>(o.private_ptr());
  memcpy(addr, &st, std::min(static_cast<size_t>(data), sizeof st));
}

void siginfo_out(const pbt::PtraceOut& o, void* addr) {
  auto* psi = static_cast<ptrace_siginfo_t*>(addr);
  memset(psi, 0, sizeof *psi);
  psi->psi_siginfo.si_signo = host_signo(o.siginfo().signo());
  psi->psi_siginfo.si_code = o.siginfo().code();
  psi->psi_siginfo.si_pid = o.siginfo().pid();
  psi->psi_siginfo.si_uid = o.siginfo().uid();
  psi->psi_lwpid = o.psi_lwpid();
}

// Copy the request's results out to `addr`.
void ptrace_out(int req, const pbt::PtraceOut& o, void* addr, int data) {
  switch (req) {
    case LWPD_PT_GET_EVENT_MASK:
      static_cast<ptrace_event_t*>(addr)->pe_set_event = o.event_mask();
      break;
    case LWPD_PT_GET_PROCESS_STATE: {
      auto* ps = static_cast<ptrace_state_t*>(addr);
      ps->pe_report_event = o.report_event();
      ps->pe_lwp = o.report_lwp();
      break;
    }
    case LWPD_PT_GET_SIGINFO:
      siginfo_out(o, addr);
      break;
    case LWPD_PT_LWPINFO: {
      auto* li = static_cast<struct ptrace_lwpinfo*>(addr);
      li->pl_lwpid = o.lwpid();
      li->pl_event = o.pl_event();
      break;
    }
    case LWPD_PT_LWPSTATUS:
    case LWPD_PT_LWPNEXT:
      lwpstatus_out(o, addr, data);
      break;
    default:
      break;
  }
}

// A Linux wait status from what the daemon collected.
int wait_status(const pbt::WaitOut& w) {
  switch (w.kind()) {
    case pbt::WAIT_STOPPED:
      return (host_signo(w.code()) << 8) | 0x7f;
    case pbt::WAIT_EXITED:
      return (w.code() & 0xff) << 8;
    case pbt::WAIT_SIGNALED:
      return host_signo(w.code()) & 0x7f;
    default:
      return 0;
  }
}

}  // namespace

int lwpd_ptrace(int request, pid_t pid, void* addr, int data) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (needs_addr(request) && addr == nullptr) return fail(EFAULT);
    pb::Syscall sc;
    if (!ptrace_call(request, pid, addr, data, sc.mutable_ptrace())) return fail(EINVAL);
    pb::SyscallReturn r = sys(l, sc);
    if (r.error() == pb::ERRNO_OK) ptrace_out(request, r.ptrace(), addr, data);
    return result(r);
  });
}

pid_t lwpd_waitpid(pid_t pid, int* status, int options) {
  return lwp_call(pid_t{-1}, [&](Lwp& l) -> pid_t {
    pb::Syscall sc;
    sc.mutable_wait()->set_pid(pid);
    // WNOHANG is 1 on both systems; any other bit is passed on (EINVAL there).
    sc.mutable_wait()->set_options(options);
    pb::SyscallReturn r = sys(l, sc);
    if (r.error() != pb::ERRNO_OK) return result(r);
    if (status != nullptr && r.retval() != 0) *status = wait_status(r.wait());
    return static_cast<pid_t>(r.retval());
  });
}
