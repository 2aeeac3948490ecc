#include "emul/lwpctl.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>

namespace lwpd::emul {

using netbsd::LWPCTL_SLOTS;
using netbsd::LWPCTL_UAREA_SZ;

KResult<std::unique_ptr<LwpctlArea>> LwpctlArea::create(const std::string& runtime_dir,
                                                        netbsd::pid_t pid, uint32_t uid) {
  std::unique_ptr<LwpctlArea> a(new LwpctlArea());
  if (runtime_dir.empty()) {
    a->fd_ = memfd_create("lwpctl", MFD_CLOEXEC);
  } else {
    a->path_ = runtime_dir + "/lwpctl." + std::to_string(pid);
    // A stale file of an earlier daemon with the same PID is replaced.
    ::unlink(a->path_.c_str());
    a->fd_ = ::open(a->path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    // See the header: the owner's only, read-only, when the daemon may give it away.
    if (a->fd_ >= 0 && ::geteuid() == 0 && ::fchown(a->fd_, uid, static_cast<gid_t>(-1)) == 0)
      ::fchmod(a->fd_, 0400);
  }
  if (a->fd_ < 0) return Errno::kENOMEM;
  if (::ftruncate(a->fd_, LWPCTL_UAREA_SZ) != 0) return Errno::kENOMEM;
  void* m = ::mmap(nullptr, LWPCTL_UAREA_SZ, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd_, 0);
  if (m == MAP_FAILED) return Errno::kENOMEM;
  a->base_ = static_cast<netbsd::lwpctl*>(m);
  // Unused slots read as "not on a CPU"; counters start at zero.
  for (size_t i = 0; i < LWPCTL_SLOTS; i++) {
    a->base_[i].lc_curcpu = netbsd::LWPCTL_CPU_NONE;
    a->base_[i].lc_pctr = 0;
  }
  return a;
}

LwpctlArea::~LwpctlArea() {
  if (base_ != nullptr) ::munmap(base_, LWPCTL_UAREA_SZ);
  if (fd_ >= 0) ::close(fd_);
  if (!path_.empty()) ::unlink(path_.c_str());
}

KResult<int> LwpctlArea::alloc_slot() {
  for (size_t i = 0; i < LWPCTL_SLOTS; i++) {
    if (!used_.test(i)) {
      used_.set(i);
      return static_cast<int>(i);
    }
  }
  return Errno::kENOMEM;
}

void LwpctlArea::free_slot(int slot) {
  assert(slot >= 0 && static_cast<size_t>(slot) < LWPCTL_SLOTS && used_.test(slot));
  used_.reset(slot);
}

std::atomic_ref<int32_t> LwpctlArea::cell(int slot, bool pctr) const {
  assert(slot >= 0 && static_cast<size_t>(slot) < LWPCTL_SLOTS);
  netbsd::lwpctl& lc = base_[slot];
  return std::atomic_ref<int32_t>(pctr ? lc.lc_pctr : lc.lc_curcpu);
}

void LwpctlArea::set_curcpu(int slot, int32_t cpu) {
  cell(slot, false).store(cpu, std::memory_order_release);
}

void LwpctlArea::switch_in(int slot, int32_t cpu) {
  // Only the vCPU dispatching the LWP writes pctr, under the process lock, so a
  // plain read-modify-write is race-free among writers.
  auto p = cell(slot, true);
  p.store(p.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  cell(slot, false).store(cpu, std::memory_order_release);
}

int32_t LwpctlArea::curcpu(int slot) const {
  return cell(slot, false).load(std::memory_order_acquire);
}
int32_t LwpctlArea::pctr(int slot) const {
  return cell(slot, true).load(std::memory_order_acquire);
}

}  // namespace lwpd::emul
