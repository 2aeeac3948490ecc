// The event side of the shim: what the daemon says outside any call's return (kicks,
// signals, LWP and process exits; transport.h's Event), handled on the transport's event
// thread; and how the host process ends with its emulated one.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "netbsd_map.h"
#include "shim_internal.h"

namespace lwpd::client {

namespace {

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

}  // namespace

void proc_exit_now(const ExitStatus& st) {
  if (!st.signaled) _exit(st.code);
  int h = host_signo(st.code);
  die_signaled(h > 0 ? h : SIGKILL);
}

void die_lost(const char* what) {
  Process* p = proc();
  if (p != nullptr && p->detaching.load()) {
    // lwpd_detach() tore the session down: this thread just ends.
    for (;;) pause();
  }
  fprintf(stderr, "liblwpclient: %s; the emulated process is gone\n", what);
  kill(getpid(), SIGKILL);
  _exit(137);
}

void park_forever() {
  for (;;) pause();
}

void follow(const ChannelEnd& e) {
  switch (e.kind) {
    case ChannelEnd::Kind::kProcExited:
      proc_exit_now(e.status);
    case ChannelEnd::Kind::kLwpGone:
      park_forever();
    default:
      die_lost(e.what != nullptr ? e.what : "the LWP channel broke");
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

namespace {

void on_kick(Process& p, nb::lwpid_t lid, uint64_t gen) {
  std::shared_ptr<Lwp> l;
  {
    std::lock_guard g(p.mu);
    auto it = p.lwps.find(lid);
    if (it == p.lwps.end()) {
      uint64_t& o = p.orphan_kicks[lid];
      o = std::max(o, gen);
      return;
    }
    l = it->second;
  }
  uint64_t cur = l->kick_gen.load();
  while (cur < gen && !l->kick_gen.compare_exchange_weak(cur, gen)) {
  }
  uint64_t s = l->ustate.load();  // seq_cst: after the latch, see leave_kernel
  pid_t tid = l->tid.load();
  if (mode_of(s) == kUser && gen_of(s) == gen && tid != 0)
    syscall(SYS_tgkill, getpid(), tid, g_kick_signal);
}

void on_signal(Process& p, nb::lwpid_t lid, int nb_signo) {
  int h = host_signo(nb_signo);
  if (h <= 0 || h > 64 || h == g_kick_signal) return;  // no host equivalent: dropped
  const uint64_t bit = uint64_t{1} << (h - 1);
  std::shared_ptr<Lwp> l;
  {
    std::lock_guard g(p.mu);
    auto it = p.lwps.find(lid);
    if (it == p.lwps.end()) {
      p.orphan_sigs[lid] |= bit;
      return;
    }
    l = it->second;
  }
  l->pend_sigs.fetch_or(bit);
  deliver_pending(*l);
  l->sig_seq.fetch_add(1);  // after the tgkill: the signal is pending on the thread
  futex_wake(&l->sig_seq);
}

}  // namespace

void on_event(Process& p, const Event& ev) {
  switch (ev.kind) {
    case Event::Kind::kKick:
      on_kick(p, ev.lid, ev.gen);
      break;
    case Event::Kind::kSignal:
      on_signal(p, ev.lid, ev.nb_signo);
      break;
    case Event::Kind::kLwpExited: {
      std::lock_guard g(p.mu);
      p.orphan_kicks.erase(ev.lid);
      p.orphan_sigs.erase(ev.lid);
      break;
    }
    case Event::Kind::kProcExited:
      if (!p.detaching.load()) proc_exit_now(ev.status);
      break;
    case Event::Kind::kLost:
      if (!p.detaching.load()) die_lost(ev.what.c_str());
      break;
  }
}

}  // namespace lwpd::client
