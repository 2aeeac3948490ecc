// The PID/LID allocator. LIDs share the PID space, as in NetBSD 10: a
// process's first LWP usurps the PID's slot (LID == PID); every further LWP
// gets a fresh number; when the LID == PID LWP is freed the slot reverts to
// the process and the next LWP created takes LID == PID again.
#pragma once

#include <vector>

#include "emul/lock.h"
#include "emul/netbsd.h"
#include "emul/result.h"

namespace lwpd::emul {

class IdAllocator {
 public:
  explicit IdAllocator(int max_id = netbsd::PID_MAX);

  // Errors: EAGAIN when the space is exhausted.
  KResult<netbsd::pid_t> alloc_pid() EXCLUDES(mu_);
  void free_pid(netbsd::pid_t pid) EXCLUDES(mu_);
  // A fresh LID (not the process's own slot) is refused while `reserve` or fewer IDs are
  // free: they are kept for new processes, so LWPs alone never exhaust the PID space.
  KResult<netbsd::lwpid_t> alloc_lid(netbsd::pid_t pid, int reserve = 0) EXCLUDES(mu_);
  void free_lid(netbsd::pid_t pid, netbsd::lwpid_t lid) EXCLUDES(mu_);
  int in_use() const EXCLUDES(mu_);

 private:
  enum class Slot : uint8_t { kFree, kProc, kProcUsurped, kLwp };
  KResult<int> fresh_locked() REQUIRES(mu_);

  mutable Mutex mu_{LockRank::kIdAlloc};
  std::vector<Slot> slots_ GUARDED_BY(mu_);
  int next_ GUARDED_BY(mu_) = 1;
  int used_ GUARDED_BY(mu_) = 0;
};

}  // namespace lwpd::emul
