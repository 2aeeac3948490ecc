// A host thread's real-time priority as a rationed allowance (`lwpd --rt-priority N`).
//
// The threads that serve kernel entries (vCPU workers, the shared-memory regions' serving
// threads) are woken for every entry; at normal priority the host scheduler may leave one
// queued behind a thread that spins in user code until its next timer tick (~4 ms on a
// 250 Hz host: the tail of `_lwp_suspend`, docs/PERFORMANCE.md). SCHED_FIFO removes that
// wait. But a real-time thread that clients keep busy would keep every normal thread off its
// host CPU, so real-time running time is rationed by a bucket: it holds at most kBurstNs, the
// thread's working time at real-time priority drains it and its resting (sleeping) time
// refills it, one for one. The thread runs SCHED_FIFO while the bucket holds time and
// SCHED_OTHER from when it runs dry until it holds kResumeNs again. So no burst runs
// real-time for more than kBurstNs, and over any longer stretch a thread runs real-time at
// most about half of the time: a client that floods the daemon, or wakes a serving thread so
// often that it hardly sleeps, is served at normal priority, as without the option. Work done
// at normal priority is not owed: after a flood of any length, about kResumeNs of rest (plus
// the overshoot of the burst that emptied the bucket) gives the priority back.
//
// One per thread, used by that thread only: busy() while working (at least once per wake-up
// and per unit of work), rest() just before a sleep. Where SCHED_FIFO is not allowed (no
// CAP_SYS_NICE, no RLIMIT_RTPRIO) start() returns the error and the thread runs normally.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdint>

namespace lwpd::emul {

class RtBurst {
 public:
  static constexpr int64_t kBurstNs = 2'000'000;   // the bucket's size
  static constexpr int64_t kResumeNs = 1'000'000;  // real-time again once it holds this

  // `prio` 0: normal scheduling, nothing to do. An error number if SCHED_FIFO is refused.
  int start(int prio) {
    prio_ = prio;
    if (prio_ <= 0) return 0;
    const int e = apply(true);
    if (e != 0) prio_ = 0;
    last_ns_ = now_ns();
    return e;
  }
  void busy() { settle(true); }
  void rest() { settle(false); }
  bool realtime() const { return prio_ > 0 && !demoted_; }

 private:
  static int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
  // Charges the time since the last call to the state the thread was in (working at
  // real-time priority drains, resting refills), enters `working`, and changes the policy if
  // the bucket says so.
  void settle(bool working) {
    if (prio_ <= 0) return;
    const int64_t now = now_ns();
    const int64_t dt = now - last_ns_;
    last_ns_ = now;
    if (!working_)
      bucket_ns_ = std::min(kBurstNs, bucket_ns_ + dt);
    else if (!demoted_)
      bucket_ns_ -= dt;
    working_ = working;
    if (!demoted_ && bucket_ns_ <= 0)
      demoted_ = apply(false) == 0;
    else if (demoted_ && bucket_ns_ >= kResumeNs)
      demoted_ = apply(true) != 0;
  }
  int apply(bool rt) const {
    sched_param sp{};
    sp.sched_priority = rt ? prio_ : 0;
    return pthread_setschedparam(pthread_self(), rt ? SCHED_FIFO : SCHED_OTHER, &sp);
  }

  int prio_ = 0;
  bool demoted_ = false;
  bool working_ = false;
  int64_t bucket_ns_ = kBurstNs;
  int64_t last_ns_ = 0;
};

}  // namespace lwpd::emul
