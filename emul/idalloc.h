// The PID/LID allocator. LIDs share the PID space, as in NetBSD 10: a
// process's first LWP usurps the PID's slot (LID == PID); every further LWP
// gets a fresh number; when the LID == PID LWP is freed the slot reverts to
// the process and the next LWP created takes LID == PID again.
//
// The space grows as NetBSD's PID table does. IDs are handed out below PID_MAX (30,000)
// until 16,384 are in use at once; then the space becomes 65,536 IDs, and it doubles again
// each time half of it is in use (NetBSD's pid_max goes 30,000 -> 65,535 -> 131,071 ...
// as its table fills). It never shrinks. NetBSD grows it until memory runs out; here it
// stops at `ceiling` (4,194,304 by default, Linux's own PID_MAX_LIMIT: one byte per ID).
#pragma once

#include <vector>

#include "emul/lock.h"
#include "emul/netbsd.h"
#include "emul/result.h"

namespace lwpd::emul {

class IdAllocator {
 public:
  static constexpr int kDefaultCeiling = 1 << 22;

  // IDs 1 .. initial-1 at first, never more than 1 .. ceiling-1.
  explicit IdAllocator(int initial = netbsd::PID_MAX, int ceiling = kDefaultCeiling);

  // Errors: EAGAIN when the space is exhausted.
  KResult<netbsd::pid_t> alloc_pid() EXCLUDES(mu_);
  void free_pid(netbsd::pid_t pid) EXCLUDES(mu_);
  // A fresh LID (not the process's own slot) is refused while `reserve` or fewer IDs are
  // free: they are kept for new processes, so LWPs alone never exhaust the PID space.
  KResult<netbsd::lwpid_t> alloc_lid(netbsd::pid_t pid, int reserve = 0) EXCLUDES(mu_);
  void free_lid(netbsd::pid_t pid, netbsd::lwpid_t lid) EXCLUDES(mu_);
  int in_use() const EXCLUDES(mu_);
  // One more than the highest ID that can be handed out now (NetBSD's pid_max + 1).
  int space() const EXCLUDES(mu_);

 private:
  enum class Slot : uint8_t { kFree, kProc, kProcUsurped, kLwp };
  KResult<int> fresh_locked() REQUIRES(mu_);
  void grow_locked() REQUIRES(mu_);

  mutable Mutex mu_{LockRank::kIdAlloc};
  const int ceiling_;
  std::vector<Slot> slots_ GUARDED_BY(mu_);  // one per ID of the current space
  int grow_at_ GUARDED_BY(mu_);              // IDs in use at which the space grows
  int next_ GUARDED_BY(mu_) = 1;
  int used_ GUARDED_BY(mu_) = 0;
};

}  // namespace lwpd::emul
