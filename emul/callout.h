// Timed wakeups (park timeouts). One thread sleeps until the earliest
// deadline; an idle callout uses no CPU. Entries name their sleeper by
// (process, LID, sleep sequence number), so a callout that fires after its
// sleep ended finds nothing to do.
//
// With a virtual clock (deterministic mode) there is no thread: time stands still until
// fire_next() moves it to the earliest deadline and fires that entry, which the
// deterministic scheduler does when no LWP can run (sched.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "emul/lock.h"
#include "emul/netbsd.h"

namespace lwpd::emul {

class Proc;

class Callout {
 public:
  using Clock = std::chrono::steady_clock;
  struct Key {
    Clock::time_point when;
    uint64_t seq;
    bool operator<(const Key& o) const { return when != o.when ? when < o.when : seq < o.seq; }
  };
  using Handler = std::function<void(const std::shared_ptr<Proc>&, netbsd::lwpid_t, uint64_t)>;

  explicit Callout(Handler h, bool virtual_clock = false);
  ~Callout();

  // The kernel's time for timeouts: the host's steady clock, or the virtual one.
  Clock::time_point now() const EXCLUDES(mu_);
  // Virtual clock: advance to the earliest deadline and fire it (its handler runs on this
  // thread, with no lock held). False if nothing is armed.
  bool fire_next() EXCLUDES(mu_);

  // Called with a Proc::mu held (Callout ranks after Proc, emul/lock.h).
  void arm(Key k, std::weak_ptr<Proc> p, netbsd::lwpid_t lid) EXCLUDES(mu_);
  void cancel(Key k) EXCLUDES(mu_);
  size_t pending() const EXCLUDES(mu_);

 private:
  struct Entry {
    std::weak_ptr<Proc> proc;
    netbsd::lwpid_t lid;
  };
  void run() EXCLUDES(mu_);

  Handler handler_;
  const bool virtual_;
  mutable Mutex mu_{LockRank::kCallout};
  Clock::time_point vnow_ GUARDED_BY(mu_);  // the virtual clock's time
  CondVar cv_;
  std::map<Key, Entry> q_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace lwpd::emul
