// Test harness: a UserPort whose LWPs are real in-process threads following
// the same protocol as the client shim:
//   * a thread runs user code only between a return (lwp_return) and its next
//     kernel entry (syscall or trap);
//   * a kick for the thread's current user-run generation makes it trap at its
//     next poll(); stale kicks are ignored;
//   * ERESTART is restarted transparently, as the shim does;
//   * lwp_exited ends the thread (its pending call never returns).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "emul/kernel.h"

namespace lwpd::test {

using namespace lwpd::emul;
using lwpd::netbsd::Errno;

// Threads of every TestProc currently running user code (the scheduler tests
// check it never exceeds the number of vCPUs).
struct UserCounter {
  std::atomic<int> now{0};
  std::atomic<int> max{0};
  void enter_user();
  void leave_user() { now.fetch_sub(1, std::memory_order_acq_rel); }
};
UserCounter& user_counter();

class TestProc;

// Thrown inside an LWP's thread when its LWP is gone; unwinds the thread.
struct LwpGone {};

// The user-side context of one LWP: its "system call" interface.
class U {
 public:
  U(TestProc& tp, lwpid_t lid);
  lwpid_t lid() const { return lid_; }
  TestProc& proc() { return tp_; }

  // Enter the kernel with a syscall; returns its result (restarting ERESTART).
  SysReturn sys(const SysArgs& a);
  Errno err(const SysArgs& a) { return sys(a).error; }
  // If kicked in the current generation, trap into the kernel and wait.
  void poll();
  // Spin in "user code" until pred() or the deadline; polls for kicks.
  bool spin_until(const std::function<bool()>& pred,
                  std::chrono::milliseconds limit = std::chrono::seconds(10));

  // Convenience wrappers.
  Errno create(std::function<void(U&)> fn, uint64_t flags, lwpid_t* lid, LwpCreateArgs base = {});
  [[noreturn]] void lwp_exit();
  Errno wait(lwpid_t lid, lwpid_t* departed = nullptr);
  Errno park(std::optional<Timespec> ts = std::nullopt, int flags = 0, lwpid_t unpark = 0,
             int clock = netbsd::NB_CLOCK_MONOTONIC, SysReturn* out = nullptr);
  Errno unpark(lwpid_t lid) { return err(LwpUnparkArgs{.target = lid}); }
  uint64_t gen() const { return gen_; }

 private:
  friend class TestProc;
  struct Box;
  SysReturn await_return();
  TestProc& tp_;
  const lwpid_t lid_;
  // This LWP's mailbox, held for the thread's life: once the LWP has exited
  // its LID may be reused, and the new LWP gets a mailbox of its own.
  std::shared_ptr<void> box_;
  uint64_t gen_ = 0;
};

class TestProc : public UserPort {
 public:
  // Start a process whose main LWP runs `main`. uid 0 = root.
  static std::shared_ptr<TestProc> start(Kernel& k, std::function<void(U&)> main, uint32_t uid = 0,
                                         int rlimit_nthr = -1);
  ~TestProc() override;

  pid_t pid() const { return pid_; }
  const ProcRef& ref() const { return ref_; }
  Kernel& kernel() { return k_; }

  // Wait (bounded) for the process to exit; returns its status.
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds limit = std::chrono::seconds(20));
  bool exited() const;
  // Signals handed to the user side for `lid`, in order.
  std::vector<SigInfo> signals(lwpid_t lid);
  // Wait until `pred` holds on the kernel's view of this process (bounded).
  bool await(const std::function<bool(const ProcInfo&)>& pred,
             std::chrono::milliseconds limit = std::chrono::seconds(10));
  std::optional<LwpInfo> lwp_info(lwpid_t lid);
  // Run `fn` on a host thread for LWP `lid` (already created in the kernel).
  void spawn(lwpid_t lid, std::function<void(U&)> fn);
  // Number of LWP threads that have finished.
  int finished_threads() const { return finished_.load(); }
  // Wait (bounded) until at least `n` LWP threads have finished.
  bool await_finished(int n, std::chrono::milliseconds limit);
  // Errors and failed expectations recorded inside LWP threads.
  std::vector<std::string> failures();
  void fail(const std::string& what);
  // Returns to user mode delivered so far on a vCPU worker's thread ("lwpd-cpuN") and on
  // any other thread (a kernel entry's direct switch).
  int returns_on_workers() const { return returns_on_workers_.load(); }
  int returns_elsewhere() const { return returns_elsewhere_.load(); }

  // ---- UserPort ----
  void lwp_return(lwpid_t lid, const SysReturn& ret, uint64_t gen) override;
  void lwp_kick(lwpid_t lid, uint64_t gen) override;
  void lwp_signal(lwpid_t lid, const SigInfo& info) override;
  void lwp_exited(lwpid_t lid) override;
  void proc_exited(const ExitStatus& status) override;

 private:
  friend class U;
  struct Msg {
    enum Kind { kReturn, kExited } kind;
    SysReturn ret;
    uint64_t gen = 0;
  };
  struct Mailbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Msg> q;
    std::atomic<uint64_t> kick_gen{0};
    bool shutdown = false;
    bool claimed = false;    // a spawned thread holds it (set by spawn())
    bool tombstone = false;  // the LWP exited before a thread claimed it (lwp_exited)
    // Set by lwp_exited: the LWP may have been taken out while running user
    // code (process exit); the thread notices at its next poll or entry.
    std::atomic<bool> gone{false};
  };
  explicit TestProc(Kernel& k) : k_(k) {}
  std::shared_ptr<Mailbox> box(lwpid_t lid);
  Mailbox& mbox(U& u) { return *static_cast<Mailbox*>(u.box_.get()); }

  Kernel& k_;
  ProcRef ref_;
  pid_t pid_ = 0;
  std::weak_ptr<TestProc> self_;

  mutable std::mutex mu_;  // leaf
  std::condition_variable cv_;
  std::map<lwpid_t, std::shared_ptr<Mailbox>> boxes_;  // live LWPs only
  std::map<lwpid_t, std::vector<SigInfo>> sigs_;       // by LID, kept after exit
  std::optional<ExitStatus> exit_;
  std::vector<std::thread> threads_;
  std::vector<std::string> failures_;
  std::atomic<int> finished_{0};
  std::atomic<int> returns_on_workers_{0};
  std::atomic<int> returns_elsewhere_{0};
};

// Assertion usable inside LWP threads (gtest's ASSERT_* only work on the test thread).
#define U_EXPECT(u, cond)                                                                 \
  do {                                                                                    \
    if (!(cond))                                                                          \
      (u).proc().fail(std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond); \
  } while (0)
#define U_EXPECT_EQ(u, a, b)                                                            \
  do {                                                                                  \
    auto _a = (a);                                                                      \
    auto _b = (b);                                                                      \
    if (!(_a == _b))                                                                    \
      (u).proc().fail(std::string(__FILE__ ":") + std::to_string(__LINE__) +            \
                      ": " #a " == " #b " failed: " + ::lwpd::test::show(_a) + " vs " + \
                      ::lwpd::test::show(_b));                                          \
  } while (0)

std::string show(Errno e);
std::string show(int64_t v);
inline std::string show(int v) { return show(static_cast<int64_t>(v)); }
std::string show(const std::string& s);

// A kernel for one test, with a small quantum so slicing tests are quick.
KernelConfig test_config(int ncpus = 2);

}  // namespace lwpd::test
