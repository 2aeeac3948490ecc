#include "emul/idalloc.h"

#include <algorithm>
#include <cassert>
#include <cstdint>

namespace lwpd::emul {

namespace {

// The largest power of two below n (16,384 for PID_MAX), at least 1.
int first_growth(int n) {
  int g = 1;
  while (g * 2 < n) g *= 2;
  return g;
}

}  // namespace

IdAllocator::IdAllocator(int initial, int ceiling)
    : ceiling_(ceiling),
      slots_(std::min(initial, ceiling), Slot::kFree),
      grow_at_(first_growth(initial)) {}

void IdAllocator::grow_locked() {
  const int n = static_cast<int>(slots_.size());
  if (n >= ceiling_) return;
  // The first growth takes the space from PID_MAX to 4 x 16,384; each later one doubles it.
  const int to =
      static_cast<int>(std::min<int64_t>(ceiling_, std::max<int64_t>(int64_t{grow_at_} * 4, n)));
  slots_.resize(to, Slot::kFree);
  grow_at_ = to / 2;
}

KResult<int> IdAllocator::fresh_locked() {
  if (used_ >= grow_at_ || used_ >= static_cast<int>(slots_.size()) - 1) grow_locked();
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
  if (ceiling_ - 1 - used_ <= reserve) return Errno::kEAGAIN;
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

int IdAllocator::space() const {
  MutexLock g(mu_);
  return static_cast<int>(slots_.size());
}

}  // namespace lwpd::emul
