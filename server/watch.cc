// WatchHub, Watcher and the Watch reactor (see watch.h for the design).

#include "server/watch.h"

#include <algorithm>
#include <optional>
#include <string>

#include "server/hb_annotate.h"

namespace lwpd::server {

namespace {

using emul::KEvent;

// Events per WatchReply: bounds one message (about 40 bytes an event on the wire).
constexpr size_t kMaxBatch = 512;

v1::WatchEventKind kind_to_wire(KEvent::Kind k) {
  switch (k) {
    case KEvent::Kind::kCreate:
      return v1::WATCH_LWP_CREATE;
    case KEvent::Kind::kState:
      return v1::WATCH_LWP_STATE;
    case KEvent::Kind::kFree:
      return v1::WATCH_LWP_FREE;
    case KEvent::Kind::kProcExit:
      return v1::WATCH_PROC_EXIT;
    case KEvent::Kind::kProcStop:
      return v1::WATCH_PROC_STOP;
    case KEvent::Kind::kProcCont:
      return v1::WATCH_PROC_CONT;
  }
  return v1::WATCH_EVENT_UNSPECIFIED;
}

v1::LwpState state_to_wire(netbsd::LwpStat s) {
  return static_cast<v1::LwpState>(static_cast<int>(s));
}

void event_to_wire(const KEvent& e, v1::WatchEvent* out) {
  out->set_kind(kind_to_wire(e.kind));
  out->set_seq(e.seq);
  out->set_time_ns(e.time_ns);
  out->set_pid(e.pid);
  out->set_lid(e.lid);
  out->set_cpu(e.cpu);
  if (e.kind == KEvent::Kind::kState || e.kind == KEvent::Kind::kFree)
    out->set_from(state_to_wire(e.from));
  if (e.kind == KEvent::Kind::kState) out->set_to(state_to_wire(e.to));
  if (e.kind == KEvent::Kind::kCreate) out->set_to(v1::LSIDL);
}

void marker(v1::WatchEventKind kind, uint64_t dropped, v1::WatchEvent* out) {
  out->set_kind(kind);
  out->set_cpu(-1);
  out->set_dropped(dropped);
  out->set_time_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count());
}

}  // namespace

// One watch stream's buffer and write state, shared by the hub (kernel side, pump
// thread) and its reactor (gRPC side). The reactor pointer is cleared when the reactor
// is done; a write in flight keeps the reactor alive, so r_ is valid while writing_.
class Watcher {
 public:
  Watcher(WatchHub& hub, grpc::ServerWriteReactor<v1::WatchReply>* r, pid_t pid, size_t cap)
      : hub_(hub), r_(r), pid_(pid), ring_(cap) {}

  bool wants(pid_t pid) const { return pid_ == 0 || pid_ == pid; }

  // Kernel side, O(1). True when the caller must schedule pump(): the stream was idle.
  bool push(const KEvent& e) EXCLUDES(mu_) {
    MutexLock g(mu_);
    if (finish_) return false;
    if (n_ == ring_.size()) {
      lost_++;
      hub_.count_dropped();
      if (writing_ && Clock::now() - write_started_ > hub_.stall_limit()) cut_off_locked();
      return false;
    }
    ring_[(head_ + n_) % ring_.size()] = Slot{e, lost_};
    lost_ = 0;
    n_++;
    if (busy_) return false;
    busy_ = true;
    return true;
  }

  // Starts a write of everything buffered, unless one is in flight.
  void pump() EXCLUDES(mu_) {
    UniqueLock g(mu_);
    if (writing_ || finished_) return;
    if (finish_) return finish_locked();
    take_locked();
    if (batch_.empty() && trailing_lost_ == 0 && subscribed_) {
      busy_ = false;
      return;
    }
    const bool hello = !subscribed_;
    subscribed_ = true;
    writing_ = true;
    write_started_ = Clock::now();
    busy_ = true;
    g.unlock();
    // Outside the lock: the kernel side keeps pushing while the message is built.
    out_.Clear();
    if (hello) marker(v1::WATCH_SUBSCRIBED, 0, out_.add_events());
    for (const Slot& s : batch_) {
      if (s.lost_before > 0) marker(v1::WATCH_DROPPED, s.lost_before, out_.add_events());
      event_to_wire(s.e, out_.add_events());
    }
    if (trailing_lost_ > 0) marker(v1::WATCH_DROPPED, trailing_lost_, out_.add_events());
    LWPD_HANDOFF_TO_GRPC(r_);  // to the OnWriteDone this write starts (hb_annotate.h)
    r_->StartWrite(&out_);
  }

  void write_done(bool ok) EXCLUDES(mu_) {
    {
      MutexLock g(mu_);
      writing_ = false;
      if (!ok && !finish_) finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
      if (finish_) return finish_locked();
      if (n_ == 0 && lost_ == 0) {
        busy_ = false;
        return;
      }
    }
    pump();
  }

  // Ends the stream with `st` once the write in flight (if any) completes.
  void finish(grpc::Status st) EXCLUDES(mu_) {
    MutexLock g(mu_);
    if (finish_) return;
    finish_ = std::move(st);
    if (!writing_) finish_locked();
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Slot {
    KEvent e;
    uint64_t lost_before = 0;  // events dropped just before this one
  };

  // Moves up to kMaxBatch slots to batch_; the loss after the last queued event goes
  // with them only when the ring is emptied (later events follow that loss).
  void take_locked() REQUIRES(mu_) {
    const size_t k = std::min(n_, kMaxBatch);
    batch_.clear();
    for (size_t i = 0; i < k; i++) batch_.push_back(ring_[(head_ + i) % ring_.size()]);
    head_ = (head_ + k) % ring_.size();
    n_ -= k;
    trailing_lost_ = 0;
    if (n_ == 0) std::swap(trailing_lost_, lost_);
  }

  // The client has read nothing for the stall limit with the buffer full: end the stream
  // (after the write in flight) and free the buffer.
  void cut_off_locked() REQUIRES(mu_) {
    hub_.count_cut_off();
    finish_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "watch cut off: the client read nothing for " +
                               std::to_string(hub_.stall_limit().count()) +
                               " ms while its buffer was full");
    std::vector<Slot>().swap(ring_);
    head_ = n_ = 0;
  }

  void finish_locked() REQUIRES(mu_) {
    if (finished_) return;
    finished_ = true;
    LWPD_HANDOFF_TO_GRPC(r_);
    r_->Finish(*finish_);
  }

  WatchHub& hub_;
  grpc::ServerWriteReactor<v1::WatchReply>* const r_;
  const pid_t pid_;

  Mutex mu_{LockRank::kWatcher};
  std::vector<Slot> ring_ GUARDED_BY(mu_);  // fixed capacity
  size_t head_ GUARDED_BY(mu_) = 0;
  size_t n_ GUARDED_BY(mu_) = 0;
  uint64_t lost_ GUARDED_BY(mu_) = 0;  // dropped since the last queued event
  bool busy_ GUARDED_BY(mu_) = true;   // a pump is scheduled or a write is in flight
  bool writing_ GUARDED_BY(mu_) = false;
  Clock::time_point write_started_ GUARDED_BY(mu_);  // of the write in flight
  bool subscribed_ GUARDED_BY(mu_) = false;          // the WATCH_SUBSCRIBED marker went out
  std::optional<grpc::Status> finish_ GUARDED_BY(mu_);
  bool finished_ GUARDED_BY(mu_) = false;
  // Owned by the writer (pump with writing_ set, until write_done).
  std::vector<Slot> batch_;
  uint64_t trailing_lost_ = 0;
  v1::WatchReply out_;
};

namespace {

class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchReply> {
 public:
  WatchReactor(WatchHub& hub, pid_t pid, size_t cap)
      : hub_(hub), w_(std::make_shared<Watcher>(hub, this, pid, cap)) {}
  std::shared_ptr<Watcher> watcher() const { return w_; }

  void OnWriteDone(bool ok) override {
    ReactionScope rs(HbKey());
    w_->write_done(ok);
  }
  void OnCancel() override {
    ReactionScope rs(HbKey());
    w_->finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }
  void OnDone() override {
    LWPD_REACTION_BEGINS(HbKey());  // after the handler and every other reaction
    hub_.remove(w_);
    delete this;
  }
  // The address of the TSan hand-off annotations: the one the Watcher knows as r_.
  void* HbKey() { return static_cast<grpc::ServerWriteReactor<v1::WatchReply>*>(this); }

 private:
  WatchHub& hub_;
  std::shared_ptr<Watcher> w_;
};

}  // namespace

WatchHub::WatchHub(std::chrono::milliseconds stall_limit)
    : stall_limit_(stall_limit), pump_([this] { pump_loop(); }) {}

WatchHub::~WatchHub() {
  {
    MutexLock g(pump_mu_);
    stop_ = true;
  }
  pump_cv_.notify_one();
  pump_.join();
}

void WatchHub::on_event(const KEvent& e) {
  if (nwatchers_.load(std::memory_order_relaxed) == 0 &&
      nwaiters_.load(std::memory_order_relaxed) == 0)
    return;  // nobody listens: the common case costs two loads
  MutexLock g(mu_);
  for (const auto& w : watchers_)
    if (w->wants(e.pid) && w->push(e)) post([w] { w->pump(); });
  if (waiters_.empty()) return;
  const bool died = (e.kind == KEvent::Kind::kState && e.to == netbsd::LwpStat::kZomb) ||
                    e.kind == KEvent::Kind::kFree;
  const bool suspended = e.kind == KEvent::Kind::kState && e.to == netbsd::LwpStat::kSuspended;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    const bool mine = it->pid == e.pid && (it->lid == e.lid || e.kind == KEvent::Kind::kProcExit);
    if (mine && (suspended || died || e.kind == KEvent::Kind::kProcExit)) {
      const netbsd::Errno r = suspended ? netbsd::Errno::kOk : netbsd::Errno::kESRCH;
      post([done = std::move(it->done), r] { done(r); });
      it = waiters_.erase(it);
      nwaiters_.fetch_sub(1, std::memory_order_relaxed);
    } else {
      ++it;
    }
  }
}

grpc::ServerWriteReactor<v1::WatchReply>* WatchHub::start_watch(pid_t pid, uint32_t buffer) {
  if (buffer == 0) buffer = kDefaultBuffer;
  auto* r = new WatchReactor(*this, pid, std::min(buffer, kMaxBuffer));
  auto w = r->watcher();
  if (!add(w)) {
    w->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "lwpd is shutting down"));
    return r;
  }
  w->pump();                         // WATCH_SUBSCRIBED, then whatever arrived since add()
  LWPD_HANDOFF_TO_GRPC(r->HbKey());  // the handler returns the reactor to gRPC
  return r;
}

bool WatchHub::add(const std::shared_ptr<Watcher>& w) {
  MutexLock g(mu_);
  if (closed_) return false;
  watchers_.push_back(w);
  nwatchers_.store(static_cast<int>(watchers_.size()), std::memory_order_relaxed);
  return true;
}

void WatchHub::remove(const std::shared_ptr<Watcher>& w) {
  MutexLock g(mu_);
  auto it = std::find(watchers_.begin(), watchers_.end(), w);
  if (it != watchers_.end()) watchers_.erase(it);
  nwatchers_.store(static_cast<int>(watchers_.size()), std::memory_order_relaxed);
}

uint64_t WatchHub::add_waiter(pid_t pid, netbsd::lwpid_t lid, WaitDone done) {
  MutexLock g(mu_);
  const uint64_t id = next_waiter_++;
  waiters_.push_back(Waiter{id, pid, lid, std::move(done)});
  nwaiters_.fetch_add(1, std::memory_order_relaxed);
  return id;
}

bool WatchHub::cancel_waiter(uint64_t id) {
  MutexLock g(mu_);
  auto it =
      std::find_if(waiters_.begin(), waiters_.end(), [id](const Waiter& w) { return w.id == id; });
  if (it == waiters_.end()) return false;
  waiters_.erase(it);
  nwaiters_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

void WatchHub::shutdown(const grpc::Status& st) {
  std::vector<std::shared_ptr<Watcher>> ws;
  {
    MutexLock g(mu_);
    closed_ = true;
    ws = watchers_;
  }
  for (const auto& w : ws) w->finish(st);
}

void WatchHub::post(std::function<void()> task) {
  {
    MutexLock g(pump_mu_);
    tasks_.push_back(std::move(task));
  }
  pump_cv_.notify_one();
}

void WatchHub::pump_loop() {
  std::vector<std::function<void()>> run;
  for (;;) {
    {
      UniqueLock g(pump_mu_);
      while (!stop_ && tasks_.empty()) pump_cv_.wait(g);
      if (stop_ && tasks_.empty()) return;
      run.swap(tasks_);
    }
    for (auto& t : run) t();
    run.clear();
  }
}

}  // namespace lwpd::server
