// A host thread's real-time priority as a burst allowance (`lwpd --rt-priority N`).
//
// The threads that serve kernel entries (vCPU workers, the shared-memory regions' serving
// threads) are woken for every entry; at normal priority the host scheduler may leave one
// queued behind a thread that spins in user code until its next timer tick (~4 ms on a
// 250 Hz host: the tail of `_lwp_suspend`, docs/PERFORMANCE.md). SCHED_FIFO removes that
// wait. But a real-time thread that clients keep busy would keep every normal thread off
// its host CPU, so the priority lasts kBurstNs of work without a sleep: past that the thread
// drops to SCHED_OTHER until it next sleeps, and a client that floods the daemon is served
// at normal priority, as without the option.
//
// One per thread, used by that thread only: busy() after work, rest() before a sleep. Where
// SCHED_FIFO is not allowed (no CAP_SYS_NICE, no RLIMIT_RTPRIO) start() says false and the
// thread runs normally.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <cstdint>

namespace lwpd::emul {

class RtBurst {
 public:
  static constexpr uint64_t kBurstNs = 2'000'000;

  // `prio` 0: normal scheduling, nothing to do. An error number if SCHED_FIFO is refused.
  int start(int prio) {
    prio_ = prio;
    if (prio_ <= 0) return 0;
    const int e = apply(true);
    if (e != 0) prio_ = 0;
    return e;
  }
  void busy() {
    if (prio_ <= 0 || demoted_) return;
    const uint64_t now = now_ns();
    if (busy_since_ == 0)
      busy_since_ = now;
    else if (now - busy_since_ > kBurstNs)
      demoted_ = apply(false) == 0;
  }
  void rest() {
    busy_since_ = 0;
    if (demoted_) demoted_ = apply(true) != 0;
  }
  bool realtime() const { return prio_ > 0 && !demoted_; }

 private:
  static uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
  }
  int apply(bool rt) const {
    sched_param sp{};
    sp.sched_priority = rt ? prio_ : 0;
    return pthread_setschedparam(pthread_self(), rt ? SCHED_FIFO : SCHED_OTHER, &sp);
  }

  int prio_ = 0;
  bool demoted_ = false;
  uint64_t busy_since_ = 0;
};

}  // namespace lwpd::emul
