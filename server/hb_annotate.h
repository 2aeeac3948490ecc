// Happens-before edges that gRPC's callback API guarantees but that a
// ThreadSanitizer build cannot see.
//
// gRPC promises that a reaction (OnReadDone, OnWriteDone, OnCancel, OnDone)
// runs after the call that started its operation (StartRead, StartWrite,
// Finish, the method handler that returned the reactor), and that OnDone runs
// after every other reaction of the call has returned. gRPC keeps those
// promises with its own atomics and absl locks inside Debian's uninstrumented
// libgrpc, so TSan sees none of them and reports every reactor field written
// on one gRPC thread and read on the next as a race (measured: ~100 reports
// per e2e run, all of this one kind). The reactors below say what gRPC does:
// "release" on the reactor's address before handing it to gRPC and at the end
// of each reaction, "acquire" at the start of each reaction. The edges are per
// reactor and only from a hand-off to the reaction it starts, so two of our
// own threads touching a reactor without a lock still race in TSan's eyes.
//
// Outside TSan builds both macros expand to nothing.
#pragma once

#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define LWPD_HANDOFF_TO_GRPC(p) __tsan_release(static_cast<void*>(p))
#define LWPD_REACTION_BEGINS(p) __tsan_acquire(static_cast<void*>(p))
#else
#define LWPD_HANDOFF_TO_GRPC(p) ((void)0)
#define LWPD_REACTION_BEGINS(p) ((void)0)
#endif

namespace lwpd::server {

// One reaction's extent: acquires the hand-offs to gRPC made so far for this
// reactor, and releases this reaction's own work for the ones that follow
// (OnDone in particular, which deletes the reactor).
class ReactionScope {
 public:
  explicit ReactionScope(void* reactor) : r_(reactor) { LWPD_REACTION_BEGINS(r_); }
  ~ReactionScope() { LWPD_HANDOFF_TO_GRPC(r_); }
  ReactionScope(const ReactionScope&) = delete;
  ReactionScope& operator=(const ReactionScope&) = delete;

 private:
  [[maybe_unused]] void* const r_;
};

}  // namespace lwpd::server
