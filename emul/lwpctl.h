// The lwpctl region of one process: LWPCTL_UAREA_SZ bytes of shared memory
// holding `struct lwpctl` slots. The kernel (vCPU threads) writes them; the
// user side maps the same memory read-only in spirit and reads them. Backed by
// a file under the runtime directory (so another process can map it by path)
// or, without a runtime directory, by a memfd.
//
// File modes: the daemon writes through the fd it opened, so the file needs no write bit
// for anyone. A root daemon gives the file to the process's uid with mode 0400: its own
// client (and root) can map it, other uids cannot read it. A daemon that is not root cannot
// give files away: the file stays its own, 0644 (every uid can read which CPU each LWP of
// every process is on, no uid but the daemon's can write it).
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>

#include "emul/netbsd.h"
#include "emul/result.h"

namespace lwpd::emul {

class LwpctlArea {
 public:
  // Errors: ENOMEM when the backing store cannot be created or mapped.
  static KResult<std::unique_ptr<LwpctlArea>> create(const std::string& runtime_dir,
                                                     netbsd::pid_t pid, uint32_t uid);
  ~LwpctlArea();
  LwpctlArea(const LwpctlArea&) = delete;
  LwpctlArea& operator=(const LwpctlArea&) = delete;

  // Errors: ENOMEM when every slot is in use.
  KResult<int> alloc_slot();
  void free_slot(int slot);

  // Writers: release stores, matched by the user side's acquire loads.
  void set_curcpu(int slot, int32_t cpu);
  void switch_in(int slot, int32_t cpu);  // lc_curcpu = cpu, lc_pctr++
  int32_t curcpu(int slot) const;
  int32_t pctr(int slot) const;

  const std::string& path() const { return path_; }  // "" for a memfd
  int fd() const { return fd_; }

 private:
  LwpctlArea() = default;
  std::atomic_ref<int32_t> cell(int slot, bool pctr) const;

  std::string path_;
  int fd_ = -1;
  netbsd::lwpctl* base_ = nullptr;
  std::bitset<netbsd::LWPCTL_SLOTS> used_;  // guarded by the owner's Proc::mu
};

}  // namespace lwpd::emul
