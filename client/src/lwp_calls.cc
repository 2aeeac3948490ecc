// The _lwp_* and _sched_* calls of <lwpd/lwp.h>: each checks and converts its arguments
// (host -> NetBSD numbers), makes one kernel entry through lwp_call()/sys()
// (kernel_entry.cc) and copies the results out. No transport here: requests and returns are
// the plain values of kernel_call.h.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "netbsd_map.h"
#include "sanitizer.h"
#include "shim_internal.h"

using namespace lwpd::client;

extern "C" {

int _lwp_create(const ucontext_t* uc, unsigned long flags, lwpid_t* new_lwp) {
  return lwp_call(int{-1}, [&](Lwp& self) -> int {
    if (uc == nullptr) return fail(EFAULT);
    auto nl = std::make_shared<Lwp>();
    copy_context(*uc, nl.get());
    send_sigrestart(*proc());
    self.creating = nl;
    SysReply r = sys(self, create_request(*uc, flags, new_lwp == nullptr));
    if (r.error != nb::Errno::kOk) return result(r);
    *new_lwp = static_cast<lwpid_t>(r.retval);
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
  if (ChannelEnd e = l->ch->exit(); e.kind != ChannelEnd::Kind::kLwpGone) follow(e);
  l->kick_word.store(nullptr);
  l->ch->close();
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
    SysReply r = sys(l, LwpWaitReq{wait_for});
    if (r.error == nb::Errno::kOk && departed != nullptr)
      *departed = static_cast<lwpid_t>(r.retval);
    return result(r);
  });
}

int _lwp_suspend(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int { return result(sys(l, LwpSuspendReq{target})); });
}

int _lwp_continue(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int { return result(sys(l, LwpContinueReq{target})); });
}

int _lwp_wakeup(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int { return result(sys(l, LwpWakeupReq{target})); });
}

int _lwp_detach(lwpid_t target) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int { return result(sys(l, LwpDetachReq{target})); });
}

int _lwp_kill(lwpid_t target, int signo) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    int sig = 0;
    if (signo < 0 || signo >= _NSIG) {
      sig = nb::NB_NSIG;  // out of range there too: EINVAL from the kernel
    } else if (signo != 0 && (sig = nb_signo(signo)) == 0) {
      return fail(EINVAL);  // no NetBSD equivalent (SIGSTKFLT)
    }
    return result(sys(l, LwpKillReq{target, sig}));
  });
}

void* _lwp_getprivate(void) {
  return lwp_call(static_cast<void*>(nullptr), [&](Lwp& l) -> void* {
    return reinterpret_cast<void*>(sys(l, LwpGetprivateReq{}).retval);
  });
}

void _lwp_setprivate(void* ptr) {
  (void)lwp_call(int{-1}, [&](Lwp& l) -> int {
    return result(sys(l, LwpSetprivateReq{reinterpret_cast<uint64_t>(ptr)}));
  });
}

int _lwp_ctl(int features, struct lwpctl** address) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    Process& p = *proc();
    SysReply r = sys(l, LwpCtlReq{features});
    if (r.error != nb::Errno::kOk) return result(r);
    if (address == nullptr) return fail(EFAULT);
    char* base = lwpctl_map(p);
    if (base == nullptr) return fail(ENOMEM);
    size_t off = static_cast<size_t>(r.lwpctl_slot) * sizeof(struct lwpctl);
    if (r.lwpctl_slot < 0 || off >= kLwpctlSize) return fail(ENOMEM);
    *address = reinterpret_cast<struct lwpctl*>(base + off);
    return 0;
  });
}

int _lwp_park(clockid_t clock_id, int flags, struct timespec* ts, lwpid_t unpark, const void* hint,
              const void* unparkhint) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    LwpParkReq a;
    a.clock_id = nb_clock(clock_id);
    a.flags = flags;
    if (ts != nullptr) {
      a.has_ts = true;
      a.ts_sec = ts->tv_sec;
      a.ts_nsec = ts->tv_nsec;
    }
    a.unpark = unpark;
    a.hint = reinterpret_cast<uint64_t>(hint);
    a.unparkhint = reinterpret_cast<uint64_t>(unparkhint);
    SysReply r = sys(l, a);
    if (ts != nullptr && r.has_ts && !(flags & TIMER_ABSTIME)) {
      ts->tv_sec = static_cast<time_t>(r.ts_sec);
      ts->tv_nsec = static_cast<long>(r.ts_nsec);
    }
    return result(r);
  });
}

int _lwp_unpark(lwpid_t target, const void* hint) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    return result(sys(l, LwpUnparkReq{target, reinterpret_cast<uint64_t>(hint)}));
  });
}

ssize_t _lwp_unpark_all(const lwpid_t* targets, size_t ntargets, const void* hint) {
  return lwp_call(ssize_t{-1}, [&](Lwp& l) -> ssize_t {
    LwpUnparkAllReq a;
    a.targets_null = targets == nullptr;
    a.ntargets = ntargets;
    a.hint = reinterpret_cast<uint64_t>(hint);
    a.targets = targets;
    a.ncopy = targets != nullptr && ntargets <= nb::LWP_UNPARK_MAX ? ntargets : 0;
    SysReply r = sys(l, a);
    if (r.error != nb::Errno::kOk) return result(r);
    return static_cast<ssize_t>(r.retval);
  });
}

int _lwp_setname(lwpid_t target, const char* name) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (name == nullptr) return fail(EFAULT);
    LwpSetnameReq a;
    a.target = target;
    a.name.assign(name, strnlen(name, ShortBytes::kMax));
    return result(sys(l, a));
  });
}

int _lwp_getname(lwpid_t target, char* name, size_t len) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (name == nullptr && len > 0) return fail(EFAULT);
    SysReply r = sys(l, LwpGetnameReq{target, len});
    const size_t n = r.name.len;
    if (r.error == nb::Errno::kOk) {
      if (n + 1 > len) return fail(ENAMETOOLONG);  // cannot happen: the kernel checked
      memcpy(name, r.name.data, n);
      name[n] = '\0';
    } else if (r.error == nb::Errno::kENAMETOOLONG && len > 0) {
      memcpy(name, r.name.data, std::min(n, len));
    }
    return result(r);
  });
}

int _sched_setparam(pid_t pid, lwpid_t lid, int policy, const struct sched_param* params) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (params == nullptr) return fail(EFAULT);
    // SCHED_OTHER/FIFO/RR and -1 share NetBSD's numbers.
    return result(sys(l, SchedSetparamReq{pid, lid, policy, params->sched_priority}));
  });
}

int _sched_getparam(pid_t pid, lwpid_t lid, int* policy, struct sched_param* params) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (params == nullptr) return fail(EFAULT);
    SysReply r = sys(l, SchedGetparamReq{pid, lid});
    if (r.error != nb::Errno::kOk) return result(r);
    if (policy != nullptr) *policy = r.policy;
    memset(params, 0, sizeof *params);
    params->sched_priority = r.priority;
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
    return result(sys(l, SchedSetaffinityReq{pid, lid, mask}));
  });
}

int _sched_getaffinity(pid_t pid, lwpid_t lid, size_t size, cpu_set_t* set) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (set == nullptr) return fail(EFAULT);
    SysReply r = sys(l, SchedGetaffinityReq{pid, lid});
    if (r.error != nb::Errno::kOk) return result(r);
    auto* bytes = reinterpret_cast<unsigned char*>(set);
    memset(bytes, 0, size);
    for (size_t i = 0; i < size && i < 8; i++)
      bytes[i] = static_cast<unsigned char>(r.mask >> (8 * i));
    return 0;
  });
}

int lwpd_yield(void) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int { return result(sys(l, SchedYieldReq{})); });
}

}  // extern "C"
