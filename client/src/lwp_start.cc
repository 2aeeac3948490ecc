// Created LWPs (shim_internal.h, "Created LWPs"): _lwp_makecontext()'s contexts, the
// request _lwp_create() sends for one, and the host thread that runs the new LWP: it opens
// the LWP's channel, waits for its first dispatch, runs the user's context and makes every
// later call of the LWP on its own ("home") stack.
#include <pthread.h>
#include <signal.h>
#include <ucontext.h>

#include <cstdlib>

#include "netbsd_map.h"
#include "sanitizer.h"
#include "shim_internal.h"

namespace lwpd::client {

using nb::lwpid_t;

namespace {

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

  l.kick_word.store(l.ch->kick_word());  // the channel: opened by the creator (after_return)
  uint64_t gen = 0;
  if (ChannelEnd e = l.ch->start(&gen); !e.ok()) follow(e);  // RETURN_START
  l.has_home = true;
  l.home_fiber = LWPD_FIBER_CURRENT();
  l.user_fiber = LWPD_FIBER_CREATE();
  for (;;) {
    leave_kernel(l, gen);
    LWPD_FIBER_SWITCH(l.user_fiber);
    swapcontext(&l.home, l.user_ptr);  // user code runs until its next call
    l.ustate.store(pack(gen_of(l.ustate.load()), kKernel));
    if (l.exit_req) break;
    l.resp = kernel_call(l, *l.req);
    after_return(l, l.resp);
    gen = l.resp.gen;
  }
  // Off the user's stack for good: now the daemon may report the LWP gone.
  LWPD_FIBER_DESTROY(l.user_fiber);
  if (ChannelEnd e = l.ch->exit(); e.kind != ChannelEnd::Kind::kLwpGone) follow(e);
  l.kick_word.store(nullptr);
  l.ch->close();
  drop_rekick(l);
  drop_altstack(l);
  t_self = nullptr;
  lwp_unregister(p, l.lid);
  p.lwp_threads.fetch_sub(1);  // the last touch of `p`: lwpd_detach may free it now
  futex_wake(&p.lwp_threads);
  return nullptr;
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

}  // namespace

// The daemon may already have dispatched the new LWP (RETURN_START); if its thread only
// started after the creator got back to user mode, a kick trapping the creator while the
// new LWP holds the vCPU would deadlock both: hence here, in kernel mode.
void after_return(Lwp& l, const SysReply& r) {
  if (!l.creating || r.error == nb::Errno::kERESTART) return;
  std::shared_ptr<Lwp> nl = std::move(l.creating);
  if (r.error != nb::Errno::kOk) return;
  nl->lid = static_cast<lwpid_t>(r.retval);
  Process& p = *proc();
  lwp_register(p, nl);
  // The start goes out before the thread is made: the daemon dispatches the new LWP and
  // answers its start while pthread_create() runs, instead of after it, one after the other.
  nl->ch = p.transport->open_channel(nl->lid);
  nl->ch->post_start();
  if (!start_lwp_thread(nl)) die_lost("pthread_create failed for a new LWP");
}

// For our own contexts the mask is applied by the trampoline, once on the user's stack.
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

LwpCreateReq create_request(const ucontext_t& uc, unsigned long flags, bool lid_fault) {
  const greg_t* r = uc.uc_mcontext.gregs;
  LwpCreateReq a;
  a.uc_flags = static_cast<uint32_t>(uc.uc_flags);
  if (made_by_us(uc)) {
    a.pc = join_halves(r[REG_RDI], r[REG_RSI]);
    a.tls_base = join_halves(r[REG_R8], r[REG_R9]);
    a.rflags = static_cast<uint64_t>(r[REG_EFL]);
  } else {
    // glibc's getcontext() does not save RFLAGS: send 0 (the kernel's default).
    a.pc = static_cast<uint64_t>(r[REG_RIP]);
  }
  a.sigmask = nb_sigset(uc.uc_sigmask);
  a.flags = flags;
  a.lid_out_fault = lid_fault;
  return a;
}

}  // namespace lwpd::client

using namespace lwpd::client;

extern "C" {

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

}  // extern "C"
