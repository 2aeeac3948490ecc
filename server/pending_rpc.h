// PendingRpc: a unary RPC that the emulated kernel answers, now or later -- finished
// exactly once.
//
// Three RPCs wait for the kernel:
//   Kernel.Start/Trap/Call  answered by the LWP's return to user mode (GrpcPort's routes);
//   Trace.Wait              answered by a tracee's notification (Kernel::debugger_wait);
//   Admin.SuspendLwp        answered by the LWP's suspension (a WatchHub waiter).
// Each registers itself where the answer will arrive, then acts on the kernel; the answer
// may come on another thread before the method handler has even returned. One rule makes
// that safe, the same for all three, and this class is where it lives:
//
//   A registration is taken back at most once (the registry's removal is true for exactly
//   one caller), and whoever takes it finishes the RPC: the registry delivering the
//   answer, the handler settling an immediate answer or a refusal (Settle), or gRPC's
//   cancellation (OnCancel). Whoever finds it gone leaves the reactor alone.
//
// A subclass says how its registration is taken back (Withdraw) and how its registry's
// answer fills the response before End(). The hand-offs to gRPC that make the reactor's
// fields visible to OnDone are annotated for ThreadSanitizer (hb_annotate.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include "server/hb_annotate.h"

namespace lwpd::server {

class PendingRpc : public grpc::ServerUnaryReactor {
 public:
  // Why the registration is taken back from this side.
  enum class Why {
    kSettled,    // the kernel answered at once or refused the request
    kCancelled,  // the client cancelled, its deadline passed or it disconnected
  };

  // Finish with `st`. Only for the one that holds the right: it took the registration
  // back, or none was ever made.
  void End(const grpc::Status& st) {
    LWPD_HANDOFF_TO_GRPC(this);
    Finish(st);
  }

  // The kernel answered at once or refused: if the registration is still there, take it
  // and finish with `answer()` (which may fill the response first). Otherwise the
  // registry's answer is already on its way and finishes the RPC. True if this call did.
  template <class Answer>
  bool Settle(Answer&& answer) {
    if (!Withdraw(Why::kSettled)) return false;
    End(answer());
    return true;
  }

  // The method handler returns the reactor to gRPC.
  PendingRpc* Returned() {
    LWPD_HANDOFF_TO_GRPC(this);
    return this;
  }

  void OnCancel() final {
    ReactionScope rs(this);
    if (Withdraw(Why::kCancelled))
      End(grpc::Status(grpc::StatusCode::CANCELLED, cancel_message_));
  }
  void OnDone() final {
    LWPD_REACTION_BEGINS(this);  // after the handler and every other reaction
    Done();
    delete this;
  }

 protected:
  explicit PendingRpc(const char* cancel_message) : cancel_message_(cancel_message) {}
  ~PendingRpc() override = default;

  // Take the registration back: true for exactly one of this and the registry's answer.
  virtual bool Withdraw(Why why) = 0;
  // The RPC has ended (every reaction has returned); the reactor is deleted next.
  virtual void Done() {}

 private:
  const char* const cancel_message_;
};

}  // namespace lwpd::server
