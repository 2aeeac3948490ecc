// The PID/LID allocator. LIDs share the PID space, as in NetBSD 10: a
// process's first LWP usurps the PID's slot (LID == PID); every further LWP
// gets a fresh number; when the LID == PID LWP is freed the slot reverts to
// the process and the next LWP created takes LID == PID again.
#pragma once

#include <mutex>
#include <vector>

#include "emul/netbsd.h"
#include "emul/result.h"

namespace lwpd::emul {

class IdAllocator {
 public:
  explicit IdAllocator(int max_id = netbsd::PID_MAX);

  // Errors: EAGAIN when the space is exhausted.
  KResult<netbsd::pid_t> alloc_pid();
  void free_pid(netbsd::pid_t pid);
  // A fresh LID (not the process's own slot) is refused while `reserve` or fewer IDs are
  // free: they are kept for new processes, so LWPs alone never exhaust the PID space.
  KResult<netbsd::lwpid_t> alloc_lid(netbsd::pid_t pid, int reserve = 0);
  void free_lid(netbsd::pid_t pid, netbsd::lwpid_t lid);
  int in_use() const;

 private:
  enum class Slot : uint8_t { kFree, kProc, kProcUsurped, kLwp };
  KResult<int> fresh_locked();

  mutable std::mutex mu_;  // leaf lock
  std::vector<Slot> slots_;
  int next_ = 1;
  int used_ = 0;
};

}  // namespace lwpd::emul
