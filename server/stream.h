// A server bidi reactor with an outgoing queue: gRPC allows one write in
// flight per stream, while events for a stream are produced by any thread
// (vCPU workers via the UserPort, other reactors). Send() queues and starts a
// write if none is in flight; OnWriteDone() starts the next. Finish happens
// exactly once, and only when no write is in flight.
//
// The queue is bounded (SetQueueLimit): a client that does not read its stream
// must not grow the daemon. The Send that would exceed the bound drops every
// queued event but the one gRPC is writing, finishes the stream with
// RESOURCE_EXHAUSTED and calls OnQueueOverflow() once, so the owner can deal
// with the client (a session's process is killed).
//
// Locking: wmu_ is a leaf; it is taken under GrpcPort::mu_ (port -> stream)
// and never held while calling out of this class, except into gRPC's
// non-blocking StartWrite/Finish (which never run a reaction inline).
#pragma once

#include <deque>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "emul/lock.h"
#include "server/hb_annotate.h"

namespace lwpd::server {

// The outgoing side of an event stream as the rest of the daemon sees it (a
// seam: GrpcPort is tested with fake sinks, and a second transport can
// implement it without gRPC).
template <class Ev>
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queue an event. False (and dropped) once the stream is finishing.
  virtual bool Send(Ev ev) = 0;
  // Finish with `st` after every queued event has been written.
  virtual void FinishAfterWrites(grpc::Status st) = 0;
  // Finish with `st`, dropping queued events that are not yet being written.
  virtual void FinishNow(grpc::Status st) = 0;
};

template <class Req, class Ev>
class QueuedBidiReactor : public grpc::ServerBidiReactor<Req, Ev>, public EventSink<Ev> {
 public:
  bool Send(Ev ev) override EXCLUDES(wmu_) {
    {
      MutexLock g(wmu_);
      if (finish_) return false;
      if (limit_ == 0 || q_.size() < limit_) {
        q_.push_back(std::move(ev));
        if (!writing_) StartNextLocked();
        return true;
      }
      FinishNowLocked(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          "stream cut off: more than " + std::to_string(limit_) + " events queued and not read"));
    }
    OnQueueOverflow();
    return false;
  }

  void FinishAfterWrites(grpc::Status st) override EXCLUDES(wmu_) {
    MutexLock g(wmu_);
    if (finish_) return;
    finish_ = std::move(st);
    if (!writing_) FinishLocked();
  }

  void FinishNow(grpc::Status st) override EXCLUDES(wmu_) {
    MutexLock g(wmu_);
    FinishNowLocked(std::move(st));
  }

  // At most `n` events queued (counting the one being written); 0 = no bound. Set it
  // before the stream is visible to other threads (in the constructor).
  void SetQueueLimit(size_t n) EXCLUDES(wmu_) {
    MutexLock g(wmu_);
    limit_ = n;
  }

  bool Finishing() EXCLUDES(wmu_) {
    MutexLock g(wmu_);
    return finish_.has_value();
  }

  void OnWriteDone(bool ok) override EXCLUDES(wmu_) {
    ReactionScope rs(HbKey());
    MutexLock g(wmu_);
    writing_ = false;
    q_.pop_front();
    if (!ok) {
      // The stream is broken: nothing more can be written.
      q_.clear();
      if (!finish_) finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
    }
    if (!q_.empty()) {
      StartNextLocked();
    } else if (finish_) {
      FinishLocked();
    }
  }

 protected:
  // The Send that exceeded the queue limit (once; the stream is finishing with
  // RESOURCE_EXHAUSTED). Runs on the sender's thread under the sender's locks
  // (GrpcPort::mu_, a kernel process lock) but not wmu_: it must only schedule work.
  virtual void OnQueueOverflow() {}

  // The address the TSan hand-off annotations of this reactor use (hb_annotate.h); the same
  // for the derived reactors' reactions.
  void* HbKey() { return static_cast<QueuedBidiReactor*>(this); }
  // StartRead, with the hand-off gRPC makes to the OnReadDone it starts.
  void Read(Req* req) {
    LWPD_HANDOFF_TO_GRPC(HbKey());
    this->StartRead(req);
  }

 private:
  void FinishNowLocked(grpc::Status st) REQUIRES(wmu_) {
    if (finish_) return;
    finish_ = std::move(st);
    if (writing_) {
      // Keep only the message gRPC is writing (its storage must stay valid).
      q_.erase(q_.begin() + 1, q_.end());
    } else {
      q_.clear();
      FinishLocked();
    }
  }
  void StartNextLocked() REQUIRES(wmu_) {
    writing_ = true;
    LWPD_HANDOFF_TO_GRPC(HbKey());
    this->StartWrite(&q_.front());
  }
  void FinishLocked() REQUIRES(wmu_) {
    if (finished_) return;
    finished_ = true;
    LWPD_HANDOFF_TO_GRPC(HbKey());
    this->Finish(*finish_);
  }

  Mutex wmu_{LockRank::kStream};
  std::deque<Ev> q_ GUARDED_BY(wmu_);  // front is in flight while writing_
  bool writing_ GUARDED_BY(wmu_) = false;
  std::optional<grpc::Status> finish_ GUARDED_BY(wmu_);  // requested final status
  bool finished_ GUARDED_BY(wmu_) = false;               // Finish() called
  size_t limit_ GUARDED_BY(wmu_) = 0;                    // bound on q_.size(); 0 = none
};

}  // namespace lwpd::server
