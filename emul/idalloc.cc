#include "emul/idalloc.h"

#include <cassert>

namespace lwpd::emul {

IdAllocator::IdAllocator(int max_id) : slots_(max_id, Slot::kFree) {}

KResult<int> IdAllocator::fresh_locked() {
  const int n = static_cast<int>(slots_.size());
  for (int i = 0; i < n - 1; i++) {
    int id = next_;
    next_ = next_ + 1 >= n ? 1 : next_ + 1;  // 0 is never handed out
    if (slots_[id] == Slot::kFree) {
      used_++;
      return id;
    }
  }
  return Errno::kEAGAIN;
}

KResult<netbsd::pid_t> IdAllocator::alloc_pid() {
  MutexLock g(mu_);
  int id = TRY(fresh_locked());
  slots_[id] = Slot::kProc;
  return id;
}

void IdAllocator::free_pid(netbsd::pid_t pid) {
  MutexLock g(mu_);
  assert(slots_.at(pid) == Slot::kProc);
  slots_[pid] = Slot::kFree;
  used_--;
}

KResult<netbsd::lwpid_t> IdAllocator::alloc_lid(netbsd::pid_t pid, int reserve) {
  MutexLock g(mu_);
  assert(slots_.at(pid) == Slot::kProc || slots_.at(pid) == Slot::kProcUsurped);
  if (slots_[pid] == Slot::kProc) {
    slots_[pid] = Slot::kProcUsurped;
    return pid;
  }
  // Slot 0 is never handed out.
  if (static_cast<int>(slots_.size()) - 1 - used_ <= reserve) return Errno::kEAGAIN;
  int id = TRY(fresh_locked());
  slots_[id] = Slot::kLwp;
  return id;
}

void IdAllocator::free_lid(netbsd::pid_t pid, netbsd::lwpid_t lid) {
  MutexLock g(mu_);
  if (lid == pid) {
    assert(slots_.at(pid) == Slot::kProcUsurped);
    slots_[pid] = Slot::kProc;
    return;
  }
  assert(slots_.at(lid) == Slot::kLwp);
  slots_[lid] = Slot::kFree;
  used_--;
}

int IdAllocator::in_use() const {
  MutexLock g(mu_);
  return used_;
}

}  // namespace lwpd::emul
