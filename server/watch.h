// WatchHub: the kernel's event observer, fanned out to the Inspect.Watch streams and to
// the Admin service's "wait until suspended" replies.
//
// The kernel calls on_event() under a process lock, on whatever thread made the change
// (vCPU workers, gRPC threads entering the kernel). That path only copies the event into
// each interested watcher's fixed ring (O(1) per watcher, no allocation) or counts it as
// lost when the ring is full; it never waits for a stream. Starting a write is left to the
// hub's pump thread (woken only when an idle watcher gets its first event), and a write's
// completion (OnWriteDone) drains the next batch itself, so a busy stream is a chain of
// StartWrite calls that the kernel never takes part in.
//
// A watcher that reads nothing is cut off: when its buffer is full and the write in flight
// has not completed for the stall limit (--watch-stall-ms), the next event ends the stream
// with RESOURCE_EXHAUSTED and frees the buffer (gRPC keeps the one message it is writing).
// A slow reader is not cut: each completed write restarts the clock.
//
// Loss is never silent: events that do not fit are counted, and the count is delivered as
// a WATCH_DROPPED marker at the point of loss (after every event queued before the loss,
// before every event queued after it).
//
// Lock order: Proc::mu -> WatchHub::mu_ -> Watcher::mu_ -> WatchHub::pump_mu_ (leaves).
// The pump thread and gRPC reactions take them without a process lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "emul/kernel.h"
#include "lwpd/v1/kernel.pb.h"

namespace lwpd::server {

namespace v1 = ::lwpd::v1;

class Watcher;

class WatchHub final : public emul::KernelObserver {
 public:
  static constexpr uint32_t kDefaultBuffer = 4096;
  static constexpr uint32_t kMaxBuffer = 65536;

  static constexpr std::chrono::milliseconds kDefaultStall{30000};

  explicit WatchHub(std::chrono::milliseconds stall_limit = kDefaultStall);
  ~WatchHub() override;  // stops the pump thread; every stream must be done by then
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  void on_event(const emul::KEvent& e) override EXCLUDES(mu_);

  // A server-streaming reactor for Inspect.Watch (finishes with UNAVAILABLE at once after
  // shutdown()). `buffer` 0 means kDefaultBuffer; larger than kMaxBuffer is capped.
  grpc::ServerWriteReactor<v1::WatchReply>* start_watch(pid_t pid, uint32_t buffer);

  // Suspension waiters (Admin.SuspendLwp). `done` runs exactly once, on the pump thread
  // or on the caller of cancel_waiter(), never under a kernel lock: with kOk when LWP
  // pid/lid became LSSUSPENDED, kESRCH when it died or its process exited first.
  using WaitDone = std::function<void(netbsd::Errno)>;
  uint64_t add_waiter(pid_t pid, netbsd::lwpid_t lid, WaitDone done) EXCLUDES(mu_);
  // Unregisters a waiter; true if it was still pending (its `done` will never run).
  bool cancel_waiter(uint64_t id) EXCLUDES(mu_);

  // Daemon shutdown: ends every watch stream with `st` and refuses new ones. Pending
  // waiters are left to Server::Shutdown, which cancels their calls (OnCancel).
  void shutdown(const grpc::Status& st) EXCLUDES(mu_);

  int watchers() const { return nwatchers_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t cut_off() const { return cut_off_.load(std::memory_order_relaxed); }

  // ---- for Watcher ----
  std::chrono::milliseconds stall_limit() const { return stall_limit_; }
  void count_dropped() { dropped_.fetch_add(1, std::memory_order_relaxed); }
  void count_cut_off() { cut_off_.fetch_add(1, std::memory_order_relaxed); }
  void remove(const std::shared_ptr<Watcher>& w) EXCLUDES(mu_);

 private:
  struct Waiter {
    uint64_t id;
    pid_t pid;
    netbsd::lwpid_t lid;
    WaitDone done;
  };
  bool add(const std::shared_ptr<Watcher>& w) EXCLUDES(mu_);  // false after shutdown()
  void post(std::function<void()> task) EXCLUDES(pump_mu_);   // run on the pump thread
  void pump_loop() EXCLUDES(pump_mu_);

  mutable Mutex mu_{LockRank::kWatchHub};
  std::vector<std::shared_ptr<Watcher>> watchers_ GUARDED_BY(mu_);
  std::vector<Waiter> waiters_ GUARDED_BY(mu_);
  uint64_t next_waiter_ GUARDED_BY(mu_) = 1;
  bool closed_ GUARDED_BY(mu_) = false;  // shutdown() ran
  std::atomic<int> nwatchers_{0};        // watchers_.size(); read without mu_ on the fast path
  std::atomic<int> nwaiters_{0};         // waiters_.size(); likewise
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> cut_off_{0};
  const std::chrono::milliseconds stall_limit_;

  Mutex pump_mu_{LockRank::kPump};
  CondVar pump_cv_;
  std::vector<std::function<void()>> tasks_ GUARDED_BY(pump_mu_);
  bool stop_ GUARDED_BY(pump_mu_) = false;
  std::thread pump_;
};

}  // namespace lwpd::server
