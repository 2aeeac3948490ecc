// Helpers shared by the LWP system-call conformance tests (test_lwp_*.cc).
// Spec: ../shared/netbsd-lwp-semantics.md §2, §3, §4, §7.
//
// Synchronisation rules these helpers follow: no host sleeps. An LWP waits
// for another LWP by spinning in "user code" (U::spin_until, which polls for
// kicks so the scheduler can still preempt it) on an atomic or on the
// kernel's snapshot of the other LWP, or by parking/waiting in the kernel.
#pragma once

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "harness.h"

namespace lwpd::test {

// Extra printers for U_EXPECT_EQ (found by its qualified ::lwpd::test::show).
inline std::string show(uint64_t v) { return std::to_string(v); }
inline std::string show(netbsd::LwpStat s) { return netbsd::lwp_stat_name(s); }
inline std::string show(netbsd::ProcStat s) { return netbsd::proc_stat_name(s); }
inline std::string show(bool b) { return b ? "true" : "false"; }

namespace lwpcalls {

using namespace std::chrono_literals;
using netbsd::Errno;
using netbsd::LwpStat;
using netbsd::ProcStat;

// A LID no test ever allocates (IDs are handed out upwards from 1 per Kernel).
inline constexpr lwpid_t kBogusLid = 29999;

// How long an LWP spins for a condition before the test gives up.
inline constexpr std::chrono::milliseconds kSpinLimit = 20s;
// Timeout of parks that are expected to be ended by an unpark: a lost wakeup
// then shows up as ETIMEDOUT instead of a hang.
inline constexpr Timespec kLongPark{10, 0};

inline std::string Dump(Kernel& k, pid_t pid) {
  auto pi = k.snapshot_proc(pid);
  if (!pi) return "(process gone)";
  std::ostringstream o;
  o << "pid " << pi->pid << " stat " << netbsd::proc_stat_name(pi->stat) << " nlwps "
    << pi->nlwps << " nrlwps " << pi->nrlwps << " nzlwps " << pi->nzlwps << " ndlwps "
    << pi->ndlwps << " nlwpwait " << pi->nlwpwait << ";";
  for (auto& l : pi->lwps) {
    o << " [lid " << l.lid << " " << netbsd::lwp_stat_name(l.stat) << " wchan '" << l.wchan
      << "' flag 0x" << std::hex << l.flag << std::dec << (l.in_kernel ? " kern" : " user")
      << (l.detached ? " detached" : "") << "]";
  }
  return o.str();
}

// The end of every test: the process must have exited with `want`, no
// expectation inside an LWP may have failed, and the kernel must be consistent.
inline void Finish(Kernel& k, const std::shared_ptr<TestProc>& tp, ExitStatus want = {}) {
  auto st = tp->wait_exit();
  if (!st) {
    ADD_FAILURE() << "process did not exit: " << Dump(k, tp->pid());
  } else {
    EXPECT_EQ(st->signaled, want.signaled);
    EXPECT_EQ(st->code, want.code);
  }
  for (const auto& f : tp->failures()) ADD_FAILURE() << "in an LWP: " << f;
  EXPECT_EQ(k.check_invariants(), "");
}

inline std::optional<LwpInfo> Info(U& u, lwpid_t lid) { return u.proc().lwp_info(lid); }
inline std::optional<ProcInfo> PInfo(U& u) {
  return u.proc().kernel().snapshot_proc(u.proc().pid());
}
inline lwpid_t Self(U& u) { return static_cast<lwpid_t>(u.sys(LwpSelfArgs{}).retval); }

#define U_CHECK_INVARIANTS(u) \
  U_EXPECT_EQ(u, (u).proc().kernel().check_invariants(), std::string())

// Spin (polling for kicks) until the kernel's view of LWP `lid` satisfies pred.
inline bool AwaitLwp(U& u, lwpid_t lid, const std::function<bool(const LwpInfo&)>& pred) {
  return u.spin_until(
      [&] {
        auto i = u.proc().lwp_info(lid);
        return i && pred(*i);
      },
      kSpinLimit);
}
inline bool AwaitSleeping(U& u, lwpid_t lid, const char* wchan) {
  return AwaitLwp(u, lid, [&](const LwpInfo& i) {
    return i.stat == LwpStat::kSleep && i.wchan == wchan;
  });
}
inline bool AwaitParked(U& u, lwpid_t lid) { return AwaitSleeping(u, lid, "parked"); }
inline bool AwaitInWait(U& u, lwpid_t lid) { return AwaitSleeping(u, lid, "lwpwait"); }
inline bool AwaitStat(U& u, lwpid_t lid, LwpStat s) {
  return AwaitLwp(u, lid, [&](const LwpInfo& i) { return i.stat == s; });
}
inline bool AwaitZombie(U& u, lwpid_t lid) { return AwaitStat(u, lid, LwpStat::kZomb); }
inline bool AwaitGone(U& u, lwpid_t lid) {
  return u.spin_until([&] { return !u.proc().lwp_info(lid).has_value(); }, kSpinLimit);
}

// Park until `go` is set; tolerates the token's EALREADY and spurious wakeups.
inline void ParkUntil(U& u, const std::atomic<bool>& go) {
  while (!go.load()) {
    Errno e = u.park();
    U_EXPECT(u, e == Errno::kOk || e == Errno::kEALREADY);
  }
}
// Release an LWP that is in ParkUntil (it may already have seen `go` and left).
inline void Release(U& u, std::atomic<bool>& go, lwpid_t lid) {
  go = true;
  Errno e = u.unpark(lid);
  U_EXPECT(u, e == Errno::kOk || e == Errno::kESRCH);
}

// Wait for `pred` without holding a vCPU: short timed parks in between checks.
// Used where the condition depends on other processes (which cannot unpark
// us) or on an LWP that may need this LWP's vCPU to make progress.
inline bool PollUntil(U& u, const std::function<bool()>& pred,
                      std::chrono::milliseconds limit = kSpinLimit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    Errno e = u.park(Timespec{0, 2000000});
    U_EXPECT(u, e == Errno::kETIMEDOUT || e == Errno::kOk || e == Errno::kEALREADY);
  }
  return true;
}

// An LWP spinning in user code: it calls nothing but poll() (inside
// spin_until) and counts its iterations.
struct Spinner {
  std::atomic<uint64_t> count{0};
  std::atomic<bool> stop{false};
};
inline void Spin(U& u, Spinner& s) {
  bool ok = u.spin_until(
      [&] {
        s.count.fetch_add(1);
        return s.stop.load();
      },
      60s);
  U_EXPECT(u, ok);
}
// Spin until the spinner made progress beyond `from`.
inline bool AwaitProgress(U& u, Spinner& s, uint64_t from) {
  return u.spin_until([&] { return s.count.load() > from; }, kSpinLimit);
}

// Let time pass inside the kernel (a timed park, not a host sleep): used only
// to give a wrong behaviour the chance to show, never to order events.
inline void TimedPark(U& u, std::chrono::milliseconds ms) {
  Errno e = u.park(Timespec{0, static_cast<int64_t>(ms.count()) * 1000000});
  U_EXPECT_EQ(u, e, Errno::kETIMEDOUT);
}

// A read-only mapping of a process's lwpctl region (its backing file under the
// kernel's runtime directory), as the user side would map it.
class LwpctlMap {
 public:
  explicit LwpctlMap(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    void* m = ::mmap(nullptr, netbsd::LWPCTL_UAREA_SZ, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m != MAP_FAILED) base_ = static_cast<const netbsd::lwpctl*>(m);
  }
  ~LwpctlMap() {
    if (base_ != nullptr) ::munmap(const_cast<netbsd::lwpctl*>(base_), netbsd::LWPCTL_UAREA_SZ);
  }
  LwpctlMap(const LwpctlMap&) = delete;
  LwpctlMap& operator=(const LwpctlMap&) = delete;
  bool ok() const { return base_ != nullptr; }
  int32_t curcpu(int slot) const {
    return __atomic_load_n(&base_[slot].lc_curcpu, __ATOMIC_ACQUIRE);
  }
  int32_t pctr(int slot) const { return __atomic_load_n(&base_[slot].lc_pctr, __ATOMIC_ACQUIRE); }

 private:
  const netbsd::lwpctl* base_ = nullptr;
};

// A private runtime directory, so the lwpctl region has a file to map.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/lwpd-lwpcalls-XXXXXX";
    if (char* d = ::mkdtemp(tmpl)) path_ = d;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace lwpcalls
}  // namespace lwpd::test
