// Randomized stress tests of the emulated LWP kernel: what the stress test files share
// (test_stress_mixed.cc, test_stress_ring.cc, test_stress_churn.cc).
//
// Every LWP is a real host thread (harness.h); the kernel's state is checked
// with Kernel::check_invariants() after every single system call, from the
// calling LWP's thread, i.e. concurrently with everything else going on.
// Each result is checked against the errors ../shared/netbsd-lwp-semantics.md
// §3 allows for that call in that situation, and every test ends with the
// process gone, every host thread finished and every PID/LID freed.
//
// Seeds: each test prints "[stress] <test> seed=N"; rerun one with
//   LWPD_STRESS_SEED=N ./tests/emul/emul_tests --gtest_filter='Stress*'
// (the interleaving still differs from run to run; the seed fixes what every
// thread chooses to do). LWPD_STRESS_ITERS=N overrides the per-worker
// iteration count of the mixed test (the other tests scale with it). Under
// ThreadSanitizer the default counts are smaller.
//
// Deadlocks the *test* could create, and how they are avoided (none of them
// is a kernel bug; NetBSD behaves the same):
//   * _lwp_suspend waits until its target reaches userret. Mutual or cyclic
//     suspends would never finish, so at most one suspend is in flight per
//     process (a try-lock token; whoever cannot take it does something else),
//     and the suspender continues its target right after.
//   * A target sleeping in a wait-any _lwp_wait only suspends once that wait
//     collects something; if the only LWP that could still exit were the
//     suspender, both would wait forever. A worker therefore holds its own
//     "guard" while in a wait-any wait, a suspender needs the target's guard,
//     and both only try-lock it.
//   * The main LWP is never suspended (it sits in _lwp_wait for the workers).
//   * Nothing parks without a timeout unless its own unpark token is
//     guaranteed (park with unpark == self).
//   * No user code blocks in user mode (it would hold a vCPU): every lock
//     taken in user code is held for a few instructions only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "emul/idalloc.h"
#include "harness.h"

#if defined(__SANITIZE_THREAD__)
#define LWPD_STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LWPD_STRESS_TSAN 1
#endif
#endif
#ifndef LWPD_STRESS_TSAN
#define LWPD_STRESS_TSAN 0
#endif

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using netbsd::Errno;
using netbsd::LWP_DETACHED;
using netbsd::LWP_SUSPENDED;
using Clock = std::chrono::steady_clock;

constexpr bool kTsan = LWPD_STRESS_TSAN != 0;
constexpr int kWorkers = 8;
constexpr lwpid_t kNoSuchLid = 29999;  // below PID_MAX, never reached by the allocator here

// ---- parameters ----------------------------------------------------------------------

inline uint64_t env_u64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  return std::strtoull(v, nullptr, 0);
}

inline uint64_t stress_seed(const char* test) {
  uint64_t seed = env_u64("LWPD_STRESS_SEED", 0);
  if (seed == 0) {
    std::random_device rd;
    seed = (uint64_t{rd()} << 32) ^ rd() ^
           static_cast<uint64_t>(Clock::now().time_since_epoch().count());
    if (seed == 0) seed = 1;
  }
  std::cout << "[stress] " << test << " seed=" << seed << " (replay: LWPD_STRESS_SEED=" << seed
            << ")" << (kTsan ? " [tsan]" : "") << std::endl;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

// Per-worker iterations of the mixed test; the others scale from it.
inline int mixed_iters() {
  return static_cast<int>(env_u64("LWPD_STRESS_ITERS", kTsan ? 1500 : 10000));
}

inline uint64_t mix_seed(uint64_t seed, uint64_t salt) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (salt + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// ---- result histogram ------------------------------------------------------------------

enum Op : int {
  kCreate, kContinueNew, kWaitChild, kWaitAny, kDetach, kSelfDetach, kSuspend, kContinue,
  kSuspendBad, kParkTimed, kParkZero, kParkAbsPast, kParkSelfToken, kParkUnpark, kParkRing,
  kUnpark, kUnparkAll, kUnparkAllNull, kWakeup, kKill0, kKillSig, kSetname, kGetname, kCtl,
  kYield, kSelf, kPrivate, kGetparam, kSched, kMainWait, kNumOps
};
const char* const kOpNames[kNumOps] = {
    "create", "continue(new)", "wait(child)", "wait(any)", "detach", "detach(self)",
    "suspend", "continue", "suspend(bad)", "park(timed)", "park(ts=0)", "park(abs past)",
    "park(unpark=self)", "park(unpark=x)", "park(ring)", "unpark", "unpark_all",
    "unpark_all(NULL)", "wakeup", "kill(0)", "kill(SIGUSR1)", "setname", "getname",
    "_lwp_ctl", "sched_yield", "_lwp_self", "set/getprivate", "_sched_getparam",
    "_sched_*(RR)", "main wait"};

struct Histogram {
  static constexpr int kSlots = 128;  // errno values; the last slot: anything else
  std::array<std::array<std::atomic<int64_t>, kSlots>, kNumOps> n{};
  void add(Op op, Errno e) {
    int i = static_cast<int>(e);
    n[op][(i >= 0 && i < kSlots - 1) ? i : kSlots - 1].fetch_add(1, std::memory_order_relaxed);
  }
  int64_t count(Op op, Errno e) const { return n[op][static_cast<int>(e)].load(); }
  int64_t total() const {
    int64_t t = 0;
    for (auto& row : n)
      for (auto& c : row) t += c.load();
    return t;
  }
  std::string str() const {
    std::ostringstream o;
    for (int op = 0; op < kNumOps; op++) {
      int64_t sum = 0;
      for (auto& c : n[op]) sum += c.load();
      if (sum == 0) continue;
      o << "  " << kOpNames[op] << ":";
      for (int e = 0; e < kSlots; e++) {
        int64_t c = n[op][e].load();
        if (c != 0) {
          o << " " << (e == kSlots - 1 ? "?" : netbsd::errno_name(static_cast<Errno>(e))) << "="
            << c;
        }
      }
      o << "\n";
    }
    return o.str();
  }
};

inline bool allowed(Errno e, std::initializer_list<Errno> ok) {
  return std::find(ok.begin(), ok.end(), e) != ok.end();
}

inline std::string allowed_str(std::initializer_list<Errno> ok) {
  std::string s;
  for (Errno e : ok) s += std::string(s.empty() ? "" : "/") + netbsd::errno_name(e);
  return s;
}

// State shared by every LWP of one stressed process. Outlives the TestProc.
struct Shared {
  explicit Shared(Kernel& kk, uint64_t sd) : k(kk), seed(sd) {}
  Kernel& k;
  const uint64_t seed;
  Histogram hist;
  std::atomic<int> children{0};      // successful _lwp_create calls by workers/children
  std::atomic<int> inv_failures{0};
  std::atomic<int> bad_results{0};

  // Live LWPs that may be targeted (workers and children; never the main LWP
  // for suspension). `guard` is non-null for workers (see the file comment).
  struct Target {
    lwpid_t lid;
    std::atomic<bool>* guard;
  };
  std::mutex mu;
  std::vector<Target> live;
  std::atomic<lwpid_t> main_lid{0};
  std::atomic<bool> suspend_token{false};

  void add_live(lwpid_t lid, std::atomic<bool>* guard) {
    std::lock_guard g(mu);
    live.push_back({lid, guard});
  }
  void remove_live(lwpid_t lid) {
    std::lock_guard g(mu);
    for (size_t i = 0; i < live.size(); i++) {
      if (live[i].lid == lid) {
        live[i] = live.back();
        live.pop_back();
        return;
      }
    }
  }
  template <class R>
  Target pick(R& rng, bool include_main) {
    std::lock_guard g(mu);
    size_t n = live.size() + (include_main ? 1 : 0);
    if (n == 0) return {kNoSuchLid, nullptr};
    size_t i = std::uniform_int_distribution<size_t>(0, n - 1)(rng);
    if (i == live.size()) return {main_lid.load(), nullptr};
    return live[i];
  }
};

// The per-LWP side: a syscall wrapper that checks the result and the kernel's
// invariants after every call.
struct Ctx {
  Ctx(U& uu, Shared& ss, uint64_t seed) : u(uu), s(ss), rng(seed) {}
  U& u;
  Shared& s;
  std::mt19937_64 rng;
  int64_t calls = 0;
  int32_t ctl_slot = -1;
  uint64_t priv = 0;

  int rnd(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  bool chance(int percent) { return rnd(100) < percent; }

  // Check the kernel after a step. Called with no lock held.
  void step() {
    calls++;
    std::string inv = s.k.check_invariants();
    if (!inv.empty() && s.inv_failures.fetch_add(1) < 10) {
      u.proc().fail("lwp " + std::to_string(u.lid()) + ": invariant broken after call " +
                    std::to_string(calls) + ": " + inv);
    }
  }

  void bad(Op op, const std::string& what) {
    if (s.bad_results.fetch_add(1) < 50) {
      u.proc().fail("lwp " + std::to_string(u.lid()) + " " + kOpNames[op] + ": " + what);
    }
  }

  SysReturn call(Op op, const SysArgs& a, std::initializer_list<Errno> ok, lwpid_t target = 0) {
    SysReturn r = u.sys(a);
    s.hist.add(op, r.error);
    if (r.kind != ReturnKind::kSyscall) bad(op, "return kind is not kSyscall");
    if (!allowed(r.error, ok)) {
      bad(op, "target " + std::to_string(target) + " -> " + netbsd::errno_name(r.error) +
                  " (allowed " + allowed_str(ok) + ")");
    }
    step();
    return r;
  }

  Errno create(std::function<void(U&)> fn, uint64_t flags, lwpid_t* lid) {
    Errno e = u.create(std::move(fn), flags, lid);
    s.hist.add(kCreate, e);
    if (e == Errno::kOk) {
      s.children.fetch_add(1);
    } else {
      bad(kCreate, std::string("-> ") + netbsd::errno_name(e));
    }
    step();
    return e;
  }

  // ---- operations usable by any LWP (no blocking beyond a tick) ----

  void op_yield() { call(kYield, SchedYieldArgs{}, {Errno::kOk}); }
  void op_self() {
    auto r = call(kSelf, LwpSelfArgs{}, {Errno::kOk});
    if (r.retval != u.lid()) bad(kSelf, "returned " + std::to_string(r.retval));
  }
  void op_private() {
    uint64_t v = rng() & 0x7fffffffffffULL;
    call(kPrivate, LwpSetprivateArgs{.ptr = v}, {Errno::kOk});
    auto r = call(kPrivate, LwpGetprivateArgs{}, {Errno::kOk});
    if (static_cast<uint64_t>(r.retval) != v) bad(kPrivate, "getprivate != setprivate");
    priv = v;
  }
  void op_getparam() {
    auto r = call(kGetparam, SchedGetparamArgs{.pid = 0, .lid = u.lid()}, {Errno::kOk});
    if (r.policy != netbsd::NB_SCHED_OTHER) bad(kGetparam, "policy changed");
  }
  // A brief excursion into SCHED_RR (root may), with affinity changes, then
  // back to SCHED_OTHER.
  void op_sched() {
    const pid_t pid = rnd(2) ? 0 : u.proc().pid();
    call(kSched, SchedSetaffinityArgs{.pid = pid, .lid = u.lid(), .mask = 1 + rng() % 7},
         {Errno::kOk});
    call(kSched, SchedSetparamArgs{.pid = pid, .lid = u.lid(), .policy = netbsd::NB_SCHED_RR,
                                   .priority = rnd(4)},
         {Errno::kOk});
    if (chance(50)) op_yield();
    if (chance(50)) op_kill0();
    auto r = call(kSched, SchedGetparamArgs{.pid = pid, .lid = u.lid()}, {Errno::kOk});
    if (r.policy != netbsd::NB_SCHED_RR) bad(kSched, "policy is not SCHED_RR");
    call(kSched, SchedSetparamArgs{.pid = pid, .lid = u.lid(), .policy = netbsd::NB_SCHED_OTHER},
         {Errno::kOk});
    call(kSched, SchedSetaffinityArgs{.pid = pid, .lid = u.lid(), .mask = 0}, {Errno::kOk});
  }
  void op_ctl() {
    auto r = call(kCtl, LwpCtlArgs{.features = netbsd::LWPCTL_FEATURE_CURCPU |
                                               netbsd::LWPCTL_FEATURE_PCTR},
                  {Errno::kOk});
    if (r.error != Errno::kOk) return;
    if (r.lwpctl_slot < 0) bad(kCtl, "no slot");
    if (ctl_slot >= 0 && r.lwpctl_slot != ctl_slot) bad(kCtl, "slot changed");
    ctl_slot = r.lwpctl_slot;
    if (chance(10)) call(kCtl, LwpCtlArgs{.features = 0x100}, {Errno::kENODEV});
  }
  void op_kill0(bool include_main = true) {
    auto t = s.pick(rng, include_main);
    call(kKill0, LwpKillArgs{.target = t.lid, .signo = 0}, {Errno::kOk, Errno::kESRCH}, t.lid);
  }
  void op_killsig() {
    auto t = s.pick(rng, true);
    call(kKillSig, LwpKillArgs{.target = t.lid, .signo = netbsd::NB_SIGUSR1},
         {Errno::kOk, Errno::kESRCH}, t.lid);
  }
  void op_unpark() {
    auto t = s.pick(rng, true);
    call(kUnpark, LwpUnparkArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH}, t.lid);
  }
  void op_unpark_all() {
    LwpUnparkAllArgs a;
    int n = 1 + rnd(4);
    for (int i = 0; i < n; i++) a.targets.push_back(s.pick(rng, true).lid);
    a.ntargets = a.targets.size();
    call(kUnparkAll, a, {Errno::kOk, Errno::kESRCH});
  }
  void op_unpark_all_null() {
    auto r = call(kUnparkAllNull, LwpUnparkAllArgs{.targets_null = true, .ntargets = 7},
                  {Errno::kOk});
    if (r.retval != static_cast<int64_t>(netbsd::LWP_UNPARK_MAX)) bad(kUnparkAllNull, "bad max");
  }
  void op_wakeup() {
    auto t = s.pick(rng, true);
    // Nothing in these tests sleeps uninterruptibly, so EBUSY is not expected.
    call(kWakeup, LwpWakeupArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH, Errno::kENODEV},
         t.lid);
  }
  void op_setname() {
    static const char* const kNames[] = {"", "w", "worker", "a-fifteen-chars",
                                         "a-name-longer-than-fifteen"};
    lwpid_t target = 0;
    if (chance(50)) target = s.pick(rng, true).lid;
    call(kSetname, LwpSetnameArgs{.target = target, .name = kNames[rnd(5)]},
         {Errno::kOk, Errno::kESRCH}, target);
  }
  void op_getname() {
    lwpid_t target = 0;
    if (chance(50)) target = s.pick(rng, true).lid;
    if (chance(20)) {
      auto r = call(kGetname, LwpGetnameArgs{.target = target, .len = 1},
                    {Errno::kOk, Errno::kESRCH, Errno::kENAMETOOLONG}, target);
      if (r.error == Errno::kOk && !r.name.empty()) bad(kGetname, "len 1 returned a name");
      if (r.name.size() > 1) bad(kGetname, "len 1 copied out more than 1 byte");
      return;
    }
    auto r = call(kGetname, LwpGetnameArgs{.target = target, .len = netbsd::MAXCOMLEN},
                  {Errno::kOk, Errno::kESRCH}, target);
    if (r.name.size() > netbsd::MAXCOMLEN - 1) bad(kGetname, "name longer than 15");
  }
  // Park with a zero timeout: ETIMEDOUT before the token check.
  void op_park_zero() {
    auto r = call(kParkZero, LwpParkArgs{.ts = Timespec{0, 0}}, {Errno::kETIMEDOUT});
    if (!r.ts || !(*r.ts == Timespec{0, 0})) bad(kParkZero, "ts not written back as 0");
  }
  // Absolute deadline in the past: ETIMEDOUT, nothing written back.
  void op_park_abs_past() {
    auto r = call(kParkAbsPast,
                  LwpParkArgs{.clock_id = rnd(2) ? netbsd::NB_CLOCK_MONOTONIC
                                                 : netbsd::NB_CLOCK_REALTIME,
                              .flags = netbsd::NB_TIMER_ABSTIME,
                              .ts = Timespec{0, 1}},
                  {Errno::kETIMEDOUT});
    if (r.ts) bad(kParkAbsPast, "ts written back with TIMER_ABSTIME");
  }
  // Untimed park after unparking oneself: the token makes it return at once.
  void op_park_self_token() {
    call(kParkSelfToken, LwpParkArgs{.unpark = u.lid()}, {Errno::kEALREADY});
  }
  // A short relative park (one tick); unparks, wakeups and signals may end it.
  void op_park_timed(lwpid_t unpark_target = 0) {
    const Op op = unpark_target ? kParkUnpark : kParkTimed;
    auto r = unpark_target
                 ? call(op, LwpParkArgs{.ts = Timespec{0, 1000000}, .unpark = unpark_target},
                        {Errno::kOk, Errno::kEALREADY, Errno::kETIMEDOUT, Errno::kEINTR,
                         Errno::kESRCH},
                        unpark_target)
                 : call(op, LwpParkArgs{.ts = Timespec{0, 1000000}},
                        {Errno::kOk, Errno::kEALREADY, Errno::kETIMEDOUT, Errno::kEINTR});
    if (r.error == Errno::kESRCH) return;  // the unpark failed: nothing written back
    if (!r.ts) {
      bad(op, "relative ts not written back");
    } else if (r.error == Errno::kETIMEDOUT && !(*r.ts == Timespec{0, 0})) {
      bad(op, "ETIMEDOUT with time left");
    } else if (r.ts->tv_sec != 0 || r.ts->tv_nsec < 0 || r.ts->tv_nsec > 1000000000 / 100) {
      bad(op, "remaining time out of range");
    }
  }
};

// ---- end-of-test checks ----------------------------------------------------------------

inline std::string dump_procs(Kernel& k) {
  std::ostringstream o;
  for (const auto& pi : k.snapshot_procs()) {
    o << "pid " << pi.pid << " " << netbsd::proc_stat_name(pi.stat) << " nlwps=" << pi.nlwps
      << " nrlwps=" << pi.nrlwps << " nzlwps=" << pi.nzlwps << " ndlwps=" << pi.ndlwps
      << " nlwpwait=" << pi.nlwpwait << "\n";
    for (const auto& l : pi.lwps) {
      o << "  lid " << l.lid << " " << netbsd::lwp_stat_name(l.stat) << " flag=0x" << std::hex
        << l.flag << std::dec << " wchan=" << (l.wchan.empty() ? "-" : l.wchan)
        << " in_kernel=" << l.in_kernel << " detached=" << l.detached << " cpu=" << l.cpu
        << "\n";
    }
  }
  return o.str();
}

inline void expect_no_failures(TestProc& tp) {
  auto f = tp.failures();
  EXPECT_TRUE(f.empty()) << f.size() << " failure(s) in pid " << tp.pid() << ", first: "
                         << (f.empty() ? "" : f.front());
  for (size_t i = 0; i < f.size() && i < 20; i++) ADD_FAILURE() << "pid " << tp.pid() << ": " << f[i];
}

// Wait for the processes to exit (status 0), then check that nothing leaked:
// every host thread finished, the kernel consistent, only exited processes
// left, and after releasing them an empty process table and ID space.
void finish(Kernel& k, const std::vector<std::shared_ptr<TestProc>>& tps,
            const std::vector<int>& expected_threads, std::chrono::seconds limit,
            std::vector<ExitStatus> expected_status = {}) {
  expected_status.resize(tps.size());
  bool all_exited = true;
  for (size_t i = 0; i < tps.size(); i++) {
    auto& tp = tps[i];
    auto st = tp->wait_exit(limit);
    if (!st) {
      all_exited = false;
      ADD_FAILURE() << "pid " << tp->pid() << " did not exit within " << limit.count()
                    << "s (hang?); kernel state:\n"
                    << dump_procs(k);
      continue;
    }
    EXPECT_EQ(st->signaled, expected_status[i].signaled) << "pid " << tp->pid();
    EXPECT_EQ(st->code, expected_status[i].code) << "pid " << tp->pid();
  }
  for (auto& tp : tps) expect_no_failures(*tp);
  EXPECT_EQ(k.check_invariants(), "");
  if (!all_exited) return;

  for (size_t i = 0; i < tps.size(); i++) {
    // lwp_exited() has been sent for every LWP; the host threads end shortly after.
    auto end = Clock::now() + 20s;
    while (tps[i]->finished_threads() < expected_threads[i] && Clock::now() < end) {
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(tps[i]->finished_threads(), expected_threads[i]) << "pid " << tps[i]->pid();
  }
  auto procs = k.snapshot_procs();
  EXPECT_EQ(procs.size(), tps.size());
  for (const auto& pi : procs) {
    EXPECT_EQ(pi.stat, netbsd::ProcStat::kZomb) << "pid " << pi.pid;
    EXPECT_TRUE(pi.lwps.empty()) << "pid " << pi.pid << " still has LWPs";
    EXPECT_EQ(pi.nlwps, 0);
    EXPECT_EQ(pi.nrlwps, 0);
    EXPECT_EQ(pi.nzlwps, 0);
    EXPECT_EQ(pi.ndlwps, 0);
    EXPECT_EQ(pi.nlwpwait, 0);
  }
  for (auto& tp : tps) EXPECT_TRUE(k.proc_release(tp->ref()).ok()) << "pid " << tp->pid();
  EXPECT_TRUE(k.snapshot_procs().empty());
  EXPECT_EQ(k.ids().in_use(), 0) << "PIDs/LIDs still allocated";
  EXPECT_EQ(k.check_invariants(), "");

  // The ID space still works: a new process gets a PID, runs, exits, goes away.
  lwpid_t seen = 0;
  auto tp = TestProc::start(k, [&](U& u) { seen = static_cast<lwpid_t>(u.sys(LwpSelfArgs{}).retval); });
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code, 0);
  EXPECT_EQ(seen, tp->pid());
  EXPECT_TRUE(k.proc_release(tp->ref()).ok());
  EXPECT_TRUE(k.snapshot_procs().empty());
  EXPECT_EQ(k.ids().in_use(), 0);
}

// From outside (an admin's kill(1)): SIGSTOP and SIGCONT the process at
// random moments until it has exited, so that every state meets LSSTOP.
class Stopper {
 public:
  Stopper(Kernel& k, std::shared_ptr<TestProc> tp, uint64_t seed)
      : th_([this, &k, tp = std::move(tp), seed] { run(k, *tp, seed); }) {}
  ~Stopper() { stop(); }
  void stop() {
    done_ = true;
    if (th_.joinable()) th_.join();
  }
  int64_t stops() const { return stops_.load(); }

 private:
  void run(Kernel& k, TestProc& tp, uint64_t seed) {
    std::mt19937_64 rng(seed);
    while (!done_ && !tp.exited()) {
      std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 3000));
      if (!k.proc_signal(tp.ref(), netbsd::NB_SIGSTOP).ok()) break;
      stops_++;
      if (rng() % 2) {
        // Sometimes wait until every LWP has stopped (bounded).
        tp.await([](const ProcInfo& pi) { return pi.stat != netbsd::ProcStat::kActive; }, 50ms);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1000));
      if (!k.proc_signal(tp.ref(), netbsd::NB_SIGCONT).ok()) break;
    }
  }
  std::atomic<bool> done_{false};
  std::atomic<int64_t> stops_{0};
  std::thread th_;
};

}  // namespace
}  // namespace lwpd::test
