#include "harness.h"

#include <pthread.h>

#include <cassert>
#include <cstring>

namespace lwpd::test {

using namespace std::chrono_literals;

UserCounter& user_counter() {
  static UserCounter c;
  return c;
}

void UserCounter::enter_user() {
  int n = now.fetch_add(1, std::memory_order_acq_rel) + 1;
  int m = max.load(std::memory_order_relaxed);
  while (n > m && !max.compare_exchange_weak(m, n)) {
  }
}

std::string show(Errno e) { return netbsd::errno_name(e); }
std::string show(int64_t v) { return std::to_string(v); }
std::string show(const std::string& s) { return "\"" + s + "\""; }

KernelConfig test_config(int ncpus) {
  KernelConfig c;
  c.ncpus = ncpus;
  c.quantum = 20ms;
  c.pin_cpus = false;
  return c;
}

// ---- U ------------------------------------------------------------------------------

U::U(TestProc& tp, lwpid_t lid) : tp_(tp), lid_(lid), box_(tp.box(lid)) {}

SysReturn U::await_return() {
  TestProc::Mailbox* b = &tp_.mbox(*this);
  std::unique_lock lk(b->mu);
  b->cv.wait(lk, [&] { return !b->q.empty() || b->shutdown; });
  if (b->q.empty()) throw LwpGone{};
  TestProc::Msg m = std::move(b->q.front());
  b->q.pop_front();
  if (m.kind == TestProc::Msg::kExited) throw LwpGone{};
  gen_ = m.gen;
  user_counter().enter_user();
  return std::move(m.ret);
}

SysReturn U::sys(const SysArgs& a) {
  for (;;) {
    user_counter().leave_user();
    EntryStatus st = tp_.k_.syscall(tp_.ref_, lid_, a);
    if (st != EntryStatus::kOk && tp_.mbox(*this).gone.load()) throw LwpGone{};
    if (st != EntryStatus::kOk) {
      tp_.fail(std::string("kernel refused syscall: ") + entry_status_name(st));
      throw LwpGone{};
    }
    SysReturn r = await_return();
    if (r.kind == ReturnKind::kSyscall &&
        (r.error == Errno::kERESTART || r.error == Errno::kEREISSUE))
      continue;
    return r;
  }
}

void U::poll() {
  TestProc::Mailbox* b = &tp_.mbox(*this);
  if (b->gone.load(std::memory_order_acquire)) {
    user_counter().leave_user();
    throw LwpGone{};
  }
  if (b->kick_gen.load(std::memory_order_acquire) != gen_) return;
  user_counter().leave_user();
  EntryStatus st = tp_.k_.trap(tp_.ref_, lid_);
  if (st != EntryStatus::kOk && b->gone.load()) throw LwpGone{};
  if (st != EntryStatus::kOk) {
    tp_.fail(std::string("kernel refused trap: ") + entry_status_name(st));
    throw LwpGone{};
  }
  await_return();
}

bool U::spin_until(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    poll();
    if (std::chrono::steady_clock::now() > end) return false;
  }
  return true;
}

Errno U::create(std::function<void(U&)> fn, uint64_t flags, lwpid_t* lid, LwpCreateArgs base) {
  base.flags = flags;
  SysReturn r = sys(base);
  if (r.error != Errno::kOk) return r.error;
  if (lid != nullptr) *lid = static_cast<lwpid_t>(r.retval);
  tp_.spawn(static_cast<lwpid_t>(r.retval), std::move(fn));
  return Errno::kOk;
}

void U::lwp_exit() {
  sys(LwpExitArgs{});
  tp_.fail("_lwp_exit returned");
  throw LwpGone{};
}

Errno U::wait(lwpid_t lid, lwpid_t* departed) {
  SysReturn r = sys(LwpWaitArgs{.wait_for = lid});
  if (departed != nullptr && r.error == Errno::kOk) *departed = static_cast<lwpid_t>(r.retval);
  return r.error;
}

Errno U::park(std::optional<Timespec> ts, int flags, lwpid_t unpark, int clock, SysReturn* out) {
  SysReturn r = sys(LwpParkArgs{.clock_id = clock, .flags = flags, .ts = ts, .unpark = unpark});
  if (out != nullptr) *out = r;
  return r.error;
}

// ---- TestProc --------------------------------------------------------------------------

std::shared_ptr<TestProc> TestProc::start(Kernel& k, std::function<void(U&)> main, uint32_t uid,
                                          int rlimit_nthr) {
  std::shared_ptr<TestProc> tp(new TestProc(k));
  tp->self_ = tp;
  // The kernel's reference to the port does not own it: TestProc outlives
  // every port call (its destructor ends the process first), and an owning
  // reference would make a Proc <-> TestProc cycle.
  std::shared_ptr<UserPort> port(tp.get(), [](UserPort*) {});
  auto r = k.proc_create(
      ProcSpec{.uid = uid, .comm = "test", .port = std::move(port), .rlimit_nthr = rlimit_nthr});
  assert(r.ok());
  tp->ref_ = r.release();
  tp->pid_ = k.proc_pid(tp->ref_);
  tp->spawn(tp->pid_, std::move(main));
  return tp;
}

TestProc::~TestProc() {
  // No port call may come after we are gone: end the process if it lives.
  if (!exited()) {
    k_.proc_abandon(ref_);
    wait_exit(std::chrono::seconds(10));
  }
  {
    std::lock_guard g(mu_);
    for (auto& [lid, b] : boxes_) {
      std::lock_guard bg(b->mu);
      b->shutdown = true;
      b->cv.notify_all();
    }
  }
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

std::shared_ptr<TestProc::Mailbox> TestProc::box(lwpid_t lid) {
  std::lock_guard g(mu_);
  auto& b = boxes_[lid];
  if (!b) b = std::make_shared<Mailbox>();
  return b;
}

void TestProc::spawn(lwpid_t lid, std::function<void(U&)> fn) {
  // The mailbox is claimed here, on the spawning thread, before anything can
  // reuse the LID.
  auto u = std::make_shared<U>(*this, lid);
  std::lock_guard g(mu_);
  mbox(*u).claimed = true;
  if (mbox(*u).tombstone) boxes_.erase(lid);
  threads_.emplace_back([this, up = std::move(u), fn = std::move(fn)] {
    U& u = *up;
    try {
      // Like a new host thread of the shim: wait for the first dispatch.
      u.await_return();
      fn(u);
      // Falling off the end of an LWP's function is _lwp_exit (makecontext's
      // return address).
      u.sys(LwpExitArgs{});
      fail("_lwp_exit returned");
    } catch (const LwpGone&) {
    }
    finished_.fetch_add(1);
    std::lock_guard g2(mu_);
    cv_.notify_all();
  });
}

std::optional<ExitStatus> TestProc::wait_exit(std::chrono::milliseconds limit) {
  std::vector<std::thread> done;
  std::optional<ExitStatus> st;
  {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, limit, [&] { return exit_.has_value(); });
    st = exit_;
    // Once the process has exited every LWP has been told it is gone, and no
    // thread can spawn another: join them so thread counts are final.
    if (st) done.swap(threads_);
  }
  for (auto& t : done) t.join();
  return st;
}

bool TestProc::await_finished(int n, std::chrono::milliseconds limit) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, limit, [&] { return finished_.load() >= n; });
}

bool TestProc::exited() const {
  std::lock_guard g(mu_);
  return exit_.has_value();
}

std::vector<SigInfo> TestProc::signals(lwpid_t lid) {
  std::lock_guard g(mu_);
  auto it = sigs_.find(lid);
  return it == sigs_.end() ? std::vector<SigInfo>{} : it->second;
}

bool TestProc::await(const std::function<bool(const ProcInfo&)>& pred,
                     std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto pi = k_.snapshot_proc(pid_);
    if (pi && pred(*pi)) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    // Polling the kernel's state from outside (no notification exists for
    // "reached state X"); bounded, and only used to observe, never to order.
    std::this_thread::yield();
  }
}

std::optional<LwpInfo> TestProc::lwp_info(lwpid_t lid) {
  auto pi = k_.snapshot_proc(pid_);
  if (!pi) return std::nullopt;
  for (auto& l : pi->lwps)
    if (l.lid == lid) return l;
  return std::nullopt;
}

std::vector<std::string> TestProc::failures() {
  std::lock_guard g(mu_);
  return failures_;
}

void TestProc::fail(const std::string& what) {
  std::lock_guard g(mu_);
  failures_.push_back(what);
}

// ---- UserPort: called under the kernel's process lock; only queue and notify ----

void TestProc::lwp_return(lwpid_t lid, const SysReturn& ret, uint64_t gen) {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  (std::strncmp(name, "lwpd-cpu", 8) == 0 ? returns_on_workers_ : returns_elsewhere_)++;
  auto b = box(lid);
  std::lock_guard g(b->mu);
  b->q.push_back(Msg{Msg::kReturn, ret, gen});
  b->cv.notify_all();
}

void TestProc::lwp_kick(lwpid_t lid, uint64_t gen) {
  box(lid)->kick_gen.store(gen, std::memory_order_release);
}

void TestProc::lwp_signal(lwpid_t lid, const SigInfo& info) {
  std::lock_guard g(mu_);
  sigs_[lid].push_back(info);
}

void TestProc::lwp_exited(lwpid_t lid) {
  std::shared_ptr<Mailbox> b;
  {
    std::lock_guard g(mu_);
    auto it = boxes_.find(lid);
    if (it == boxes_.end() || !it->second->claimed) {
      // Killed before its thread was spawned (only when the whole process is
      // going, so the LID cannot be reused first), perhaps after its first
      // dispatch was queued: leave a tombstone that the spawned thread will
      // find. Erasing an unclaimed box would give that thread a fresh, empty
      // one to wait on forever.
      if (it == boxes_.end()) it = boxes_.emplace(lid, std::make_shared<Mailbox>()).first;
      b = it->second;
      std::lock_guard bg(b->mu);
      b->q.push_back(Msg{Msg::kExited, {}, 0});
      b->tombstone = true;
      b->gone.store(true);
      return;
    }
    b = std::move(it->second);
    boxes_.erase(it);  // the LID may now be reused by a new LWP
  }
  b->gone.store(true, std::memory_order_release);
  std::lock_guard g(b->mu);
  b->q.push_back(Msg{Msg::kExited, {}, 0});
  b->cv.notify_all();
}

void TestProc::proc_exited(const ExitStatus& status) {
  std::lock_guard g(mu_);
  exit_ = status;
  cv_.notify_all();
}

}  // namespace lwpd::test
