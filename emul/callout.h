// Timed wakeups (park timeouts). One thread sleeps until the earliest
// deadline; an idle callout uses no CPU. Entries name their sleeper by
// (process, LID, sleep sequence number), so a callout that fires after its
// sleep ended finds nothing to do.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

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

  explicit Callout(Handler h);
  ~Callout();

  // Lock order: after Proc::mu (called with it held).
  void arm(Key k, std::weak_ptr<Proc> p, netbsd::lwpid_t lid);
  void cancel(Key k);
  size_t pending() const;

 private:
  struct Entry {
    std::weak_ptr<Proc> proc;
    netbsd::lwpid_t lid;
  };
  void run();

  Handler handler_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, Entry> q_;  // mu_
  bool stop_ = false;       // mu_
  std::thread thread_;
};

}  // namespace lwpd::emul
