// The user side of a kernel entry: an LWP thread goes into kernel mode (every signal
// blocked), makes its call on its channel, and returns to user mode only when the daemon
// lets it, trapping at once for a kick that came first (shim_internal.h, "Kicks"). Also the
// proxy thread that runs calls made from signal handlers ("Calls from signal handlers").
#include <signal.h>
#include <ucontext.h>

#include <ctime>
#include <system_error>
#include <thread>

#include "netbsd_map.h"
#include "sanitizer.h"
#include "shim_internal.h"

namespace lwpd::client {

namespace {

// How long a return that a signal interrupted waits for that signal to come
// in as an event (see kernel_call).
constexpr long kRestartSignalWaitMs = 1000;  // ERESTART: a signal is certain
constexpr long kEintrSignalWaitMs = 20;      // EINTR: or _lwp_wakeup, without one

// Waits (bounded) until the event thread has handed this thread a signal after `seq0`.
void wait_for_signal(Lwp& l, uint32_t seq0, long wait_ms) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long left = wait_ms; l.sig_seq.load() == seq0 && left > 0;) {
    futex_wait_ms(&l.sig_seq, seq0, left);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    left = wait_ms - ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
  }
}

// Enter the kernel because of a kick latched for `gen`; returns the new gen.
uint64_t trap_on_channel(Lwp& l, uint64_t gen) {
  uint64_t next = 0;
  if (ChannelEnd e = l.ch->trap(gen, &next); !e.ok()) follow(e);
  return next;
}

// One kernel entry for the calling LWP, back in user mode (pending signals
// delivered) when it returns. See the top comment for why created LWPs make
// their calls on their home stack.
SysReply sys_once(Lwp& l, const SysRequest& rq) {
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  l.ustate.store(pack(gen_of(l.ustate.load()), kKernel));
  if (l.has_home && !t_proxy) {
    ucontext_t me;  // per call: a nested call from a signal handler has its own
    l.req = &rq;
    l.exit_req = false;
    l.user_ptr = &me;
    LWPD_FIBER_SWITCH(l.home_fiber);
    swapcontext(&me, &l.home);
    SysReply r = l.resp;
    unblock(l, old);  // pending signals are delivered here
    return r;
  }
  SysReply r = kernel_call(l, rq);
  after_return(l, r);
  leave_kernel(l, r.gen);
  unblock(l, old);
  return r;
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

}  // namespace

thread_local bool t_proxy = false;

// A call cut short by a signal (EINTR, ERESTART) returns only once the event thread has
// handed that signal to this thread (bounded wait): events and returns are not ordered, and
// NetBSD runs the handler on the way back to user mode, before the caller sees EINTR or the
// restart.
SysReply kernel_call(Lwp& l, const SysRequest& rq) {
  const uint32_t seq0 = l.sig_seq.load();
  SysReply r;
  if (ChannelEnd e = l.ch->call(rq, &r); !e.ok()) follow(e);
  const long wait_ms = r.error == nb::Errno::kERESTART ? kRestartSignalWaitMs
                       : r.error == nb::Errno::kEINTR  ? kEintrSignalWaitMs
                                                       : 0;
  if (wait_ms > 0) wait_for_signal(l, seq0, wait_ms);
  return r;
}

void leave_kernel(Lwp& l, uint64_t gen) {
  for (;;) {
    l.ustate.store(pack(gen, kUser));  // seq_cst: pairs with the event side's kick_gen then ustate
    if (!kicked(l, gen)) return;
    l.ustate.store(pack(gen, kKernel));
    gen = trap_on_channel(l, gen);
  }
}

SysReply sys(Lwp& l, const SysRequest& rq) {
  for (;;) {
    SysReply r = sys_once(l, rq);
    if (r.kind == ReturnKind::kSyscall &&
        (r.error == nb::Errno::kERESTART || r.error == nb::Errno::kEREISSUE))
      continue;
    return r;
  }
}

int result(const SysReply& r) {
  if (r.error == nb::Errno::kOk) return 0;
  return fail(host_errno(static_cast<int>(r.error)));
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

}  // namespace lwpd::client
