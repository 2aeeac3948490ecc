// Randomized stress tests of the emulated LWP kernel.
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

uint64_t env_u64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  return std::strtoull(v, nullptr, 0);
}

uint64_t stress_seed(const char* test) {
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
int mixed_iters() {
  return static_cast<int>(env_u64("LWPD_STRESS_ITERS", kTsan ? 1500 : 10000));
}

uint64_t mix_seed(uint64_t seed, uint64_t salt) {
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

bool allowed(Errno e, std::initializer_list<Errno> ok) {
  return std::find(ok.begin(), ok.end(), e) != ok.end();
}

std::string allowed_str(std::initializer_list<Errno> ok) {
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

std::string dump_procs(Kernel& k) {
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

void expect_no_failures(TestProc& tp) {
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

// ============================================================================================
// 1. Mixed calls: 8 workers x N iterations of random create/exit/wait/detach/suspend/
//    continue/park/unpark/wakeup/kill/setname/getname/_lwp_ctl/yield, in two processes.
// ============================================================================================

struct Worker {
  std::atomic<bool> guard{false};  // held during a wait-any, or by a suspender
  std::atomic<bool> done{false};   // finished its loop (set just before exiting)
  std::atomic<lwpid_t> lid{0};
  std::atomic<int64_t> calls{0};
};

struct Mixed : Shared {
  Mixed(Kernel& kk, uint64_t sd, int it) : Shared(kk, sd), iters(it) {}
  const int iters;
  std::array<Worker, kWorkers> workers;
  std::atomic<int> workers_reaped_by_main{0};
  std::atomic<int> workers_spawned{0};
  // StressExit: the worker that is to call exit(2), and with what status.
  std::atomic<int> exit_worker{-1};
  std::atomic<int> exit_status{0};

  const Worker* worker_by_lid(lwpid_t lid) const {
    for (auto& w : workers)
      if (w.lid.load() == lid) return &w;
    return nullptr;
  }
};

// A short-lived child: a few random calls, then it exits by returning or by _lwp_exit.
void mixed_child(U& u, Mixed& s, uint64_t seed) {
  Ctx c(u, s, seed);
  s.add_live(u.lid(), nullptr);
  int n = c.rnd(5);
  for (int i = 0; i < n; i++) {
    switch (c.rnd(12)) {
      case 0: c.op_yield(); break;
      case 1: c.op_self(); break;
      case 2: c.op_kill0(); break;
      case 3: c.op_unpark(); break;
      case 4: c.op_wakeup(); break;
      case 5: c.op_setname(); break;
      case 6: c.op_park_zero(); break;
      case 7: c.op_park_self_token(); break;
      case 8:
        if (c.chance(30)) c.op_park_timed();
        else c.op_getname();
        break;
      case 9:
        if (c.chance(30)) {
          // Detach oneself: the creator's wait then fails with EINVAL (or
          // ESRCH once the zombie is gone).
          // EINVAL: created detached, or its creator detached it first.
          c.call(kSelfDetach, LwpDetachArgs{.target = u.lid()}, {Errno::kOk, Errno::kEINVAL});
        } else {
          c.op_ctl();
        }
        break;
      case 10: c.op_unpark_all(); break;
      default: c.op_private(); break;
    }
  }
  s.remove_live(u.lid());
  if (c.chance(50)) u.lwp_exit();
}

void mixed_worker(U& u, Mixed& s, int idx) {
  Worker& me = s.workers[idx];
  Ctx c(u, s, mix_seed(s.seed, idx));
  me.lid = u.lid();
  s.add_live(u.lid(), &me.guard);
  std::vector<lwpid_t> kids;  // my non-detached children not yet known to be gone

  auto forget = [&](lwpid_t lid) {
    auto it = std::find(kids.begin(), kids.end(), lid);
    if (it != kids.end()) kids.erase(it);
  };

  for (int it = 0; it < s.iters; it++) {
    if (s.exit_worker.load(std::memory_order_relaxed) == idx) {
      u.sys(ProcExitArgs{.status = s.exit_status.load()});
      c.bad(kCreate, "exit(2) returned");
    }
    const int r = c.rnd(1000);
    if (r < 20) {
      // ---- create (2%) ----
      uint64_t flags = 0;
      if (c.chance(30)) flags |= LWP_DETACHED;
      if (c.chance(30)) flags |= LWP_SUSPENDED;
      if (c.chance(10)) flags |= 0x100000;  // unknown bits are ignored
      lwpid_t lid = 0;
      uint64_t cseed = c.rng();
      if (c.create([&s, cseed](U& cu) { mixed_child(cu, s, cseed); }, flags, &lid) !=
          Errno::kOk)
        continue;
      if (!(flags & LWP_DETACHED)) kids.push_back(lid);
      if (flags & LWP_SUSPENDED) {
        // Someone else may have suspended+continued it already, and it may
        // have exited and been reaped by a wait-any since.
        c.call(kContinueNew, LwpContinueArgs{.target = lid}, {Errno::kOk, Errno::kESRCH}, lid);
      }
    } else if (r < 60) {
      // ---- wait for one of my children (4%) ----
      if (kids.empty()) {
        c.op_yield();
        continue;
      }
      lwpid_t lid = kids[c.rnd(static_cast<int>(kids.size()))];
      auto res = c.call(kWaitChild, LwpWaitArgs{.wait_for = lid},
                        {Errno::kOk, Errno::kESRCH, Errno::kEINVAL, Errno::kEINTR}, lid);
      if (res.error == Errno::kOk && res.retval != lid) c.bad(kWaitChild, "departed != wait_for");
      if (res.error != Errno::kEINTR) forget(lid);
    } else if (r < 75) {
      // ---- wait for anyone (1.5%) ----
      bool expected = false;
      if (!me.guard.compare_exchange_strong(expected, true)) {
        c.op_yield();  // being suspended right now
        continue;
      }
      auto res = c.call(kWaitAny, LwpWaitArgs{.wait_for = 0},
                        {Errno::kOk, Errno::kESRCH, Errno::kEDEADLK, Errno::kEINTR});
      me.guard = false;
      if (res.error == Errno::kOk) {
        auto dep = static_cast<lwpid_t>(res.retval);
        if (dep == 0 || dep == u.lid() || dep == s.main_lid.load()) {
          c.bad(kWaitAny, "departed " + std::to_string(dep));
        }
        if (const Worker* w = s.worker_by_lid(dep); w != nullptr && !w->done.load()) {
          c.bad(kWaitAny, "reaped worker " + std::to_string(dep) + " before it finished");
        }
        forget(dep);
      }
    } else if (r < 85) {
      // ---- detach one of my children (1%) ----
      if (kids.empty()) {
        c.op_self();
        continue;
      }
      lwpid_t lid = kids[c.rnd(static_cast<int>(kids.size()))];
      c.call(kDetach, LwpDetachArgs{.target = lid}, {Errno::kOk, Errno::kESRCH, Errno::kEINVAL},
             lid);
      forget(lid);
    } else if (r < 105) {
      // ---- suspend + continue a sibling or a child (2%) ----
      bool expected = false;
      if (!s.suspend_token.compare_exchange_strong(expected, true)) {
        c.op_yield();
        continue;
      }
      Shared::Target t = s.pick(c.rng, false);
      bool ok = t.lid != u.lid();
      if (ok && t.guard != nullptr) {
        bool g = false;
        ok = t.guard->compare_exchange_strong(g, true);
      }
      if (ok) {
        c.call(kSuspend, LwpSuspendArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH}, t.lid);
        if (c.chance(20)) c.op_kill0(false);
        c.call(kContinue, LwpContinueArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH}, t.lid);
        if (t.guard != nullptr) t.guard->store(false);
      } else {
        c.op_yield();
      }
      s.suspend_token = false;
    } else if (r < 115) {
      // ---- suspend/continue of LIDs that do not exist (1%) ----
      lwpid_t bad = c.chance(50) ? 0 : kNoSuchLid;
      c.call(kSuspendBad, LwpSuspendArgs{.target = bad}, {Errno::kESRCH}, bad);
      c.call(kSuspendBad, LwpContinueArgs{.target = bad}, {Errno::kESRCH}, bad);
    } else if (r < 135) {
      c.op_park_timed();  // 2%
    } else if (r < 155) {
      c.op_park_timed(s.pick(c.rng, true).lid);  // 2%
    } else if (r < 185) {
      c.op_park_zero();  // 3%
    } else if (r < 200) {
      c.op_park_abs_past();  // 1.5%
    } else if (r < 240) {
      c.op_park_self_token();  // 4%
    } else if (r < 340) {
      c.op_unpark();  // 10%
    } else if (r < 380) {
      c.op_unpark_all();  // 4%
    } else if (r < 390) {
      c.op_unpark_all_null();  // 1%
    } else if (r < 450) {
      c.op_wakeup();  // 6%
    } else if (r < 520) {
      c.op_kill0();  // 7%
    } else if (r < 530) {
      c.op_killsig();  // 1%
    } else if (r < 590) {
      c.op_setname();  // 6%
    } else if (r < 650) {
      c.op_getname();  // 6%
    } else if (r < 680) {
      c.op_ctl();  // 3%
    } else if (r < 800) {
      c.op_yield();  // 12%
    } else if (r < 880) {
      c.op_self();  // 8%
    } else if (r < 950) {
      c.op_private();  // 7%
    } else if (r < 990) {
      c.op_getparam();  // 4%
    } else {
      c.op_sched();  // 1%
    }
  }

  s.remove_live(u.lid());
  // Reap what is left of my children (a sibling's wait-any may have got some).
  for (lwpid_t lid : kids) {
    for (;;) {
      auto res = c.call(kWaitChild, LwpWaitArgs{.wait_for = lid},
                        {Errno::kOk, Errno::kESRCH, Errno::kEINVAL, Errno::kEINTR}, lid);
      if (res.error != Errno::kEINTR) break;
    }
  }
  me.calls = c.calls;
  me.done = true;
  if (c.chance(50)) u.lwp_exit();
}

// The main LWP must never exit before the end: its LID is the PID, which the
// next _lwp_create would hand out again (NetBSD does the same), and the
// harness cannot tell two LWPs with the same LID apart while the first one's
// thread is still winding down. So when the main LWP's _lwp_wait fails with
// EDEADLK because every other LWP sleeps in a wait-any, it creates an LWP
// that exits at once, for one of them to collect.
void feed(Ctx& c) {
  c.create([](U&) {}, 0, nullptr);
}

void mixed_main(U& u, Mixed& s) {
  Ctx c(u, s, mix_seed(s.seed, 1000));
  s.main_lid = u.lid();
  std::array<lwpid_t, kWorkers> lids{};
  for (int i = 0; i < kWorkers; i++) {
    Errno e = u.create([&s, i](U& wu) { mixed_worker(wu, s, i); }, 0, &lids[i]);
    U_EXPECT_EQ(u, e, Errno::kOk);
    if (e == Errno::kOk) s.workers_spawned++;
    c.step();
  }
  for (int i = 0; i < kWorkers; i++) {
    for (;;) {
      // EINTR: a worker's _lwp_wakeup or SIGUSR1. ESRCH: a worker's wait-any
      // collected it first. EDEADLK: every worker sleeps in a wait-any, so
      // that all LWPs are inside _lwp_wait: feed them.
      auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = lids[i]},
                      {Errno::kOk, Errno::kESRCH, Errno::kEINTR, Errno::kEDEADLK}, lids[i]);
      if (r.error == Errno::kEINTR) continue;
      if (r.error == Errno::kEDEADLK) {
        feed(c);
        continue;
      }
      if (r.error == Errno::kOk) {
        s.workers_reaped_by_main++;
        if (r.retval != lids[i]) c.bad(kMainWait, "departed != wait_for");
      }
      break;
    }
  }
  for (auto& w : s.workers) U_EXPECT(u, w.done.load());
  // Every non-detached LWP has been collected by now, except perhaps a feeder.
  for (;;) {
    auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = 0},
                    {Errno::kOk, Errno::kESRCH, Errno::kEINTR});
    if (r.error == Errno::kESRCH) break;
  }
}

TEST(StressMixed, EightWorkersTenThousandCallsTwoProcesses) {
  const uint64_t seed = stress_seed("StressMixed");
  const int iters = mixed_iters();
  Kernel k(test_config(3));
  Mixed s1(k, seed, iters);
  Mixed s2(k, mix_seed(seed, 77), iters);
  auto t0 = Clock::now();
  auto tp1 = TestProc::start(k, [&](U& u) { mixed_main(u, s1); });
  auto tp2 = TestProc::start(k, [&](U& u) { mixed_main(u, s2); });
  // The second process is stopped and continued all along.
  Stopper stopper(k, tp2, mix_seed(seed, 99));
  // Only read the counters once the processes are gone.
  std::vector<std::shared_ptr<TestProc>> tps{tp1, tp2};
  auto limit = std::chrono::seconds(kTsan ? 600 : 120);
  for (auto& tp : tps) tp->wait_exit(limit);
  stopper.stop();
  std::vector<int> threads{1 + s1.workers_spawned.load() + s1.children.load(),
                           1 + s2.workers_spawned.load() + s2.children.load()};
  finish(k, tps, threads, 1s);
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();

  for (Mixed* s : {&s1, &s2}) {
    int64_t min_calls = INT64_MAX;
    for (auto& w : s->workers) min_calls = std::min<int64_t>(min_calls, w.calls.load());
    std::cout << "[stress] mixed: " << iters << " iterations/worker, min calls/worker "
              << min_calls << ", " << s->hist.total() << " calls, " << s->children.load()
              << " children, workers reaped by main " << s->workers_reaped_by_main.load()
              << "\n"
              << s->hist.str();
    EXPECT_EQ(s->inv_failures.load(), 0);
    EXPECT_EQ(s->bad_results.load(), 0);
    // The issue asks for >= 8 threads x >= 10,000 calls (full size only).
    if (iters >= 10000) {
      EXPECT_GE(min_calls, 10000);
    }
  }
  std::cout << "[stress] mixed: " << stopper.stops() << " SIGSTOPs of pid " << tp2->pid() << ", "
            << secs << " s" << std::endl;
}

// ============================================================================================
// 1b. The same mix, ended half-way by exit(2) from a worker or by SIGKILL from
//     outside, while LWPs are suspended, parked, waiting, being created and
//     stopped: the process must still end with the right status and nothing
//     leaked.
// ============================================================================================

TEST(StressExit, MixedWorkloadEndedByExitOrSigkill) {
  const uint64_t seed = stress_seed("StressExit");
  const int rounds = kTsan ? 4 : 16;
  Kernel k(test_config(3));
  std::mt19937_64 rng(seed);
  int64_t calls = 0, children = 0, by_exit = 0, by_kill = 0;
  auto t0 = Clock::now();
  for (int round = 0; round < rounds; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (std::getenv("LWPD_STRESS_VERBOSE")) std::cout << "[stress] exit: round " << round << std::endl;
    std::vector<std::unique_ptr<Mixed>> ss;
    std::vector<std::shared_ptr<TestProc>> tps;
    std::vector<ExitStatus> want;
    for (int i = 0; i < 2; i++) {
      // Enough iterations never to end on their own.
      ss.push_back(std::make_unique<Mixed>(k, mix_seed(seed, 100 * round + i), 1 << 30));
      Mixed& s = *ss.back();
      tps.push_back(TestProc::start(k, [&s](U& u) { mixed_main(u, s); }));
    }
    std::vector<std::unique_ptr<Stopper>> stoppers;
    if (rng() % 2) stoppers.push_back(std::make_unique<Stopper>(k, tps[rng() % 2], rng()));
    for (int i = 0; i < 2; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (kTsan ? 200 : 40)));
      if (rng() % 2) {
        int status = 1 + static_cast<int>(rng() % 250);
        ss[i]->exit_status = status;
        ss[i]->exit_worker = static_cast<int>(rng() % kWorkers);
        want.push_back(ExitStatus{.signaled = false, .code = status});
        by_exit++;
      } else {
        EXPECT_TRUE(k.proc_signal(tps[i]->ref(), netbsd::NB_SIGKILL).ok());
        want.push_back(ExitStatus{.signaled = true, .code = netbsd::NB_SIGKILL});
        by_kill++;
      }
    }
    const auto deadline = Clock::now() + std::chrono::seconds(kTsan ? 60 : 15);
    for (auto& tp : tps) {
      tp->wait_exit(std::max(std::chrono::milliseconds(1),
                             std::chrono::duration_cast<std::chrono::milliseconds>(
                                 deadline - Clock::now())));
    }
    stoppers.clear();
    std::vector<int> threads;
    for (auto& s : ss) {
      threads.push_back(1 + s->workers_spawned.load() + s->children.load());
      calls += s->hist.total();
      children += s->children.load();
    }
    finish(k, tps, threads, 1s, want);
    for (auto& s : ss) {
      EXPECT_EQ(s->inv_failures.load(), 0);
      EXPECT_EQ(s->bad_results.load(), 0);
    }
    if (::testing::Test::HasFailure()) break;
  }
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[stress] exit: " << rounds << " rounds x 2 processes (" << by_exit
            << " exit(2), " << by_kill << " SIGKILL), " << calls << " calls, " << children
            << " children, " << secs << " s" << std::endl;
}

// Regression, found by StressExit: a new LWP used to be dispatched to user
// mode before its creator got its LID back from _lwp_create; if the creator
// then never returned to user mode (suspended at the userret of that
// _lwp_create, as here, or preempted or stopped there) and the process was
// killed, the new LWP had no host thread, never entered the kernel again, and
// the process never finished exiting. Now the new LWP stays an embryo until
// its creator's return is delivered, and the kill aborts it.
TEST(StressRepro, KilledWhileCreatorHasNotSeenTheNewLid) {
  Kernel k(test_config(2));
  std::atomic<bool> s_ready{false};
  std::atomic<lwpid_t> s_lid{0};
  auto tp = TestProc::start(k, [&](U& u) {
    const lwpid_t self = u.lid();
    lwpid_t s = 0;
    u.create(
        [&, self](U& su) {
          s_ready = true;
          // Returns once the main LWP has suspended itself at its userret.
          su.err(LwpSuspendArgs{.target = self});
          su.spin_until([] { return false; }, 30s);
        },
        0, &s);
    s_lid = s;
    // Keep running user code (without polling) until the suspension is armed.
    while (!s_ready) std::this_thread::yield();
    for (;;) {
      auto li = u.proc().lwp_info(self);
      if (li && (li->flag & netbsd::LW_WSUSPEND)) break;
      std::this_thread::yield();
    }
    // Completes in the kernel, but the caller suspends before it returns.
    u.create([](U& cu) { cu.spin_until([] { return false; }, 30s); }, 0, nullptr);
  });
  const pid_t pid = tp->pid();
  ASSERT_TRUE(tp->await(
      [&](const ProcInfo& pi) {
        bool main_suspended = false, child_embryo = false;
        for (auto& l : pi.lwps) {
          if (l.lid == pid) main_suspended = l.stat == netbsd::LwpStat::kSuspended;
          if (l.lid != pid && l.lid != s_lid.load() && s_lid.load() != 0)
            child_embryo = l.stat == netbsd::LwpStat::kIdl && l.in_kernel;
        }
        return main_suspended && child_embryo;
      },
      10s))
      << dump_procs(k);
  ASSERT_TRUE(k.proc_signal(tp->ref(), netbsd::NB_SIGKILL).ok());
  auto st = tp->wait_exit(5s);
  ASSERT_TRUE(st.has_value()) << "SIGKILLed process did not exit:\n" << dump_procs(k);
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(k.check_invariants(), "");
  EXPECT_TRUE(k.proc_release(tp->ref()).ok());
  EXPECT_EQ(k.ids().in_use(), 0);
}

// ============================================================================================
// 2. Park/unpark races: a hand-off ring of 8 LWPs passing 3 tokens with
//    _lwp_unpark / ___lwp_park60(unpark = next), disturbed by _lwp_wakeup,
//    stray unparks, SIGUSR1 and suspend/continue. A lost wakeup shows up as a
//    park that times out although the unpark for a token it had not yet seen
//    completed before the park began.
// ============================================================================================

constexpr int kRing = 8;
constexpr int kTokens = 3;
constexpr int64_t kRingTimeoutNs = 20'000'000;  // 20 ms (2 ticks)

struct RingSlot {
  std::atomic<int64_t> given{0};   // tokens handed to this LWP (before its unpark)
  std::atomic<int64_t> taken{0};   // tokens it consumed (written by itself only)
  // The last token whose separate _lwp_unpark had completed, and when
  // (nanoseconds of Clock); written by the predecessor only: ts first, then idx.
  std::atomic<int64_t> sep_idx{0};
  std::atomic<int64_t> sep_ts{0};
  std::atomic<lwpid_t> lid{0};
  std::atomic<bool> done{false};
};

struct Ring : Shared {
  Ring(Kernel& kk, uint64_t sd, int r) : Shared(kk, sd), rounds(r) {}
  const int rounds;
  std::array<RingSlot, kRing> slot;
  std::atomic<int64_t> timeouts{0};
  std::atomic<int64_t> lost{0};
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void ring_member(U& u, Ring& s, int i) {
  Ctx c(u, s, mix_seed(s.seed, i));
  RingSlot& me = s.slot[i];
  const int next_i = (i + 1) % kRing;
  RingSlot& next = s.slot[next_i];
  // Everybody's LID is known before anyone starts (the main LWP fills them in
  // before the members can pass a token to a LID of 0).
  while (next.lid.load() == 0) c.op_yield();
  const lwpid_t next_lid = next.lid.load();
  bool owe_unpark = false;  // a token was handed on; its unpark rides on the next park

  auto disturb = [&] {
    if (!c.chance(4)) return;
    switch (c.rnd(6)) {
      case 0: c.op_wakeup(); break;
      case 1: c.op_unpark(); break;
      case 2: c.op_killsig(); break;
      case 3: c.op_unpark_all(); break;
      case 4: c.op_yield(); break;
      default: {
        bool expected = false;
        if (!s.suspend_token.compare_exchange_strong(expected, true)) break;
        auto t = s.pick(c.rng, false);
        if (t.lid != u.lid()) {
          c.call(kSuspend, LwpSuspendArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH}, t.lid);
          c.call(kContinue, LwpContinueArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH},
                 t.lid);
        }
        s.suspend_token = false;
        break;
      }
    }
  };
  auto separate_unpark = [&](int64_t idx) {
    c.call(kUnpark, LwpUnparkArgs{.target = next_lid}, {Errno::kOk, Errno::kESRCH}, next_lid);
    next.sep_ts.store(now_ns());
    next.sep_idx.store(idx);
  };
  int64_t owed_idx = 0;

  for (int round = 0; round < s.rounds; round++) {
    // ---- get a token ----
    for (;;) {
      disturb();
      const int64_t g0 = me.given.load();
      if (g0 != me.taken.load()) break;
      const int64_t t1 = now_ns();
      const lwpid_t up = owe_unpark ? next_lid : 0;
      owe_unpark = false;
      // The successor may already be done and gone: ESRCH, and then no park.
      auto r = c.call(kParkRing, LwpParkArgs{.ts = Timespec{0, kRingTimeoutNs}, .unpark = up},
                      up ? std::initializer_list<Errno>{Errno::kOk, Errno::kEALREADY,
                                                        Errno::kETIMEDOUT, Errno::kEINTR,
                                                        Errno::kESRCH}
                         : std::initializer_list<Errno>{Errno::kOk, Errno::kEALREADY,
                                                        Errno::kETIMEDOUT, Errno::kEINTR});
      if (r.error == Errno::kETIMEDOUT) {
        s.timeouts++;
        const int64_t t2 = now_ns();
        if (t2 - t1 < kRingTimeoutNs) {
          c.bad(kParkRing, "ETIMEDOUT after " + std::to_string(t2 - t1) + " ns");
        }
        const int64_t idx = me.sep_idx.load();
        const int64_t ts = me.sep_ts.load();
        if (idx > g0 && ts < t1) {
          s.lost++;
          c.bad(kParkRing, "lost wakeup: token " + std::to_string(idx) +
                               " was unparked " + std::to_string(t1 - ts) +
                               " ns before the park began, which still timed out");
        }
      }
    }
    if (owe_unpark) {
      owe_unpark = false;
      separate_unpark(owed_idx);
    }
    me.taken++;
    if (c.chance(10)) c.op_yield();
    // ---- hand it on ----
    const int64_t idx = next.given.fetch_add(1) + 1;
    if (c.chance(50) && me.given.load() == me.taken.load()) {
      owe_unpark = true;  // ___lwp_park60(unpark = next) in the loop above
      owed_idx = idx;
    } else {
      separate_unpark(idx);
    }
  }
  if (owe_unpark) separate_unpark(owed_idx);
  me.done = true;
  s.remove_live(u.lid());
}

TEST(StressParkRing, HandOffRingWithWakeupsAndSuspends) {
  const uint64_t seed = stress_seed("StressParkRing");
  const int rounds = std::max(10, mixed_iters() / 2);
  Kernel k(test_config(2));
  Ring s(k, seed, rounds);
  for (int i = 0; i < kTokens; i++) s.slot[i * kRing / kTokens].given = 1;
  auto t0 = Clock::now();
  auto tp = TestProc::start(k, [&](U& u) {
    Ctx c(u, s, mix_seed(seed, 1000));
    s.main_lid = u.lid();
    std::array<lwpid_t, kRing> lids{};
    for (int i = 0; i < kRing; i++) {
      // Created suspended so that every LID is published before any runs.
      U_EXPECT_EQ(u, u.create([&s, i](U& ru) { ring_member(ru, s, i); }, LWP_SUSPENDED, &lids[i]),
                  Errno::kOk);
      c.step();
      s.slot[i].lid = lids[i];
      s.add_live(lids[i], nullptr);
    }
    for (int i = 0; i < kRing; i++) {
      c.call(kContinueNew, LwpContinueArgs{.target = lids[i]}, {Errno::kOk}, lids[i]);
    }
    for (int i = 0; i < kRing; i++) {
      for (;;) {
        auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = lids[i]}, {Errno::kOk, Errno::kEINTR},
                        lids[i]);
        if (r.error != Errno::kEINTR) break;
      }
    }
    for (auto& sl : s.slot) {
      U_EXPECT(u, sl.done.load());
      U_EXPECT_EQ(u, sl.taken.load(), static_cast<int64_t>(s.rounds));
    }
  });
  Stopper stopper(k, tp, mix_seed(seed, 99));
  tp->wait_exit(std::chrono::seconds(kTsan ? 600 : 120));
  stopper.stop();
  finish(k, {tp}, {1 + kRing}, 1s);
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[stress] ring: " << rounds << " rounds/member, " << s.hist.total() << " calls, "
            << s.timeouts.load() << " park timeouts, " << s.lost.load() << " lost wakeups, "
            << stopper.stops() << " SIGSTOPs, "
            << secs << " s\n"
            << s.hist.str() << std::flush;
  EXPECT_EQ(s.lost.load(), 0);
  EXPECT_EQ(s.inv_failures.load(), 0);
  EXPECT_EQ(s.bad_results.load(), 0);
  // The hand-offs themselves must have been exercised.
  EXPECT_GT(s.hist.count(kParkRing, Errno::kOk) + s.hist.count(kParkRing, Errno::kEALREADY), 0);
}

// ============================================================================================
// 3. Create/exit/wait churn with wait-any: every collected LWP is checked
//    against a registry, so a double reap, a reaped detached LWP or a lost
//    zombie is caught.
// ============================================================================================

struct RegEntry {
  bool registered = false;     // its creator learnt its LID
  bool detached_birth = false; // created LWP_DETACHED
  bool self_detached = false;  // detached later (by itself or its creator)
  int reaped = 0;              // times an _lwp_wait returned it
};

struct Churn : Shared {
  Churn(Kernel& kk, uint64_t sd, int it, int kids) : Shared(kk, sd), iters(it), max_kids(kids) {}
  const int iters;
  const int max_kids;  // per worker: every LWP is a host thread joined only at the end
  std::mutex reg_mu;
  std::unordered_map<lwpid_t, RegEntry> reg;
  std::vector<std::string> reg_errors;  // reg_mu
  std::array<std::atomic<lwpid_t>, kWorkers> worker_lids{};

  void reg_fail(const std::string& e) {
    if (reg_errors.size() < 20) reg_errors.push_back(e);
  }
  void registered(lwpid_t lid, bool detached) {
    std::lock_guard g(reg_mu);
    RegEntry& e = reg[lid];
    if (e.registered) reg_fail("LID " + std::to_string(lid) + " handed out twice");
    e.registered = true;
    e.detached_birth = detached;
    if (detached && e.reaped) reg_fail("detached LWP " + std::to_string(lid) + " was reaped");
  }
  void reaped(lwpid_t lid) {
    std::lock_guard g(reg_mu);
    RegEntry& e = reg[lid];
    if (e.reaped) reg_fail("LWP " + std::to_string(lid) + " reaped twice");
    if (e.detached_birth || e.self_detached)
      reg_fail("detached LWP " + std::to_string(lid) + " was reaped");
    e.reaped++;
  }
  // _lwp_detach succeeded (by itself or by its creator): it can no longer be reaped.
  void detached(lwpid_t lid) {
    std::lock_guard g(reg_mu);
    RegEntry& e = reg[lid];
    if (e.reaped) reg_fail("LWP " + std::to_string(lid) + " reaped before it was detached");
    if (e.detached_birth || e.self_detached)
      reg_fail("LWP " + std::to_string(lid) + " detached twice");
    e.self_detached = true;
  }
};

void churn_child(U& u, Churn& s, uint64_t seed) {
  Ctx c(u, s, seed);
  int n = c.rnd(3);
  for (int i = 0; i < n; i++) {
    if (c.chance(50)) c.op_yield();
    else c.op_self();
  }
  if (c.chance(10)) {
    // EINVAL: created detached, or its creator detached it first.
    auto r = c.call(kSelfDetach, LwpDetachArgs{.target = u.lid()}, {Errno::kOk, Errno::kEINVAL});
    if (r.error == Errno::kOk) s.detached(u.lid());
  }
  if (c.chance(50)) u.lwp_exit();
}

void churn_worker(U& u, Churn& s, int idx) {
  Ctx c(u, s, mix_seed(s.seed, idx));
  std::vector<lwpid_t> kids;
  int created = 0;
  auto forget = [&](lwpid_t lid) {
    auto it = std::find(kids.begin(), kids.end(), lid);
    if (it != kids.end()) kids.erase(it);
  };
  auto wait_child = [&](lwpid_t lid) {
    // No wakeups or signals here: EINTR is not expected. ESRCH: a wait-any
    // got it, or it detached itself and is gone; EINVAL: it detached itself.
    auto r = c.call(kWaitChild, LwpWaitArgs{.wait_for = lid},
                    {Errno::kOk, Errno::kESRCH, Errno::kEINVAL}, lid);
    if (r.error == Errno::kOk) {
      if (r.retval != lid) c.bad(kWaitChild, "departed != wait_for");
      s.reaped(lid);
    }
    forget(lid);
  };
  for (int it = 0; it < s.iters; it++) {
    const int r = c.rnd(100);
    // Creations are spread over the whole run (each is a host thread).
    const bool may_create = static_cast<int64_t>(created) * s.iters <
                            static_cast<int64_t>(s.max_kids) * (it + 1);
    if (r < 40 && may_create) {
      uint64_t flags = 0;
      if (c.chance(25)) flags |= LWP_DETACHED;
      if (c.chance(25)) flags |= LWP_SUSPENDED;
      lwpid_t lid = 0;
      uint64_t cseed = c.rng();
      if (c.create([&s, cseed](U& cu) { churn_child(cu, s, cseed); }, flags, &lid) != Errno::kOk)
        continue;
      created++;
      s.registered(lid, flags & LWP_DETACHED);
      if (!(flags & LWP_DETACHED)) kids.push_back(lid);
      if (flags & LWP_SUSPENDED) {
        // Nobody else continues it, so it cannot be gone yet.
        c.call(kContinueNew, LwpContinueArgs{.target = lid}, {Errno::kOk}, lid);
      }
      if (c.chance(30)) wait_child(lid);  // at once: often before it even ran
    } else if (r < 60) {
      if (!kids.empty()) wait_child(kids[c.rnd(static_cast<int>(kids.size()))]);
      else c.op_self();
    } else if (r < 80) {
      auto res = c.call(kWaitAny, LwpWaitArgs{.wait_for = 0},
                        {Errno::kOk, Errno::kESRCH, Errno::kEDEADLK});
      if (res.error == Errno::kOk) {
        auto dep = static_cast<lwpid_t>(res.retval);
        if (dep == 0 || dep == u.lid() || dep == s.main_lid.load()) {
          c.bad(kWaitAny, "departed " + std::to_string(dep));
        }
        s.reaped(dep);
        forget(dep);
      }
    } else if (r < 85) {
      if (kids.empty()) {
        c.op_yield();
        continue;
      }
      lwpid_t lid = kids[c.rnd(static_cast<int>(kids.size()))];
      // ESRCH: a wait-any reaped it, or it detached itself and is gone;
      // EINVAL: it detached itself.
      auto res = c.call(kDetach, LwpDetachArgs{.target = lid},
                        {Errno::kOk, Errno::kESRCH, Errno::kEINVAL}, lid);
      if (res.error == Errno::kOk) s.detached(lid);
      forget(lid);
    } else if (r < 95) {
      c.op_yield();
    } else {
      c.op_self();
    }
  }
  while (!kids.empty()) wait_child(kids.back());
}

TEST(StressChurn, CreateExitWaitWithWaitAny) {
  const uint64_t seed = stress_seed("StressChurn");
  const int iters = std::max(10, mixed_iters() * 3 / 10);
  const int max_kids = kTsan ? 60 : 400;
  Kernel k(test_config(2));
  Churn s(k, seed, iters, max_kids);
  auto t0 = Clock::now();
  auto tp = TestProc::start(k, [&](U& u) {
    Ctx c(u, s, mix_seed(seed, 1000));
    s.main_lid = u.lid();
    std::array<lwpid_t, kWorkers> lids{};
    for (int i = 0; i < kWorkers; i++) {
      Errno e = u.create([&s, i](U& wu) { churn_worker(wu, s, i); }, 0, &lids[i]);
      U_EXPECT_EQ(u, e, Errno::kOk);
      c.step();
      s.registered(lids[i], false);
    }
    for (int i = 0; i < kWorkers; i++) {
      for (;;) {
        auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = lids[i]},
                        {Errno::kOk, Errno::kESRCH, Errno::kEDEADLK}, lids[i]);
        if (r.error == Errno::kEDEADLK) {
          // Every worker sleeps in a wait-any (see feed()).
          lwpid_t lid = 0;
          if (c.create([](U&) {}, 0, &lid) == Errno::kOk) s.registered(lid, false);
          continue;
        }
        if (r.error == Errno::kOk) s.reaped(lids[i]);
        break;
      }
    }
    // A last feeder may be left.
    for (;;) {
      auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = 0}, {Errno::kOk, Errno::kESRCH});
      if (r.error != Errno::kOk) break;
      s.reaped(static_cast<lwpid_t>(r.retval));
    }
  });
  tp->wait_exit(std::chrono::seconds(kTsan ? 600 : 120));
  finish(k, {tp}, {1 + kWorkers + s.children.load()}, 1s);
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[stress] churn: " << iters << " iterations/worker, " << s.children.load()
            << " children, " << s.hist.total() << " calls, " << secs << " s\n"
            << s.hist.str() << std::flush;
  EXPECT_EQ(s.inv_failures.load(), 0);
  EXPECT_EQ(s.bad_results.load(), 0);

  std::lock_guard g(s.reg_mu);
  for (auto& e : s.reg_errors) ADD_FAILURE() << e;
  int reaped = 0, detached = 0;
  for (auto& [lid, e] : s.reg) {
    EXPECT_TRUE(e.registered) << "LWP " << lid << " reaped but never created";
    const int outcomes = e.reaped + ((e.detached_birth || e.self_detached) ? 1 : 0);
    EXPECT_EQ(outcomes, 1) << "LWP " << lid << ": reaped " << e.reaped << " times, detached "
                           << (e.detached_birth || e.self_detached);
    reaped += e.reaped;
    detached += e.detached_birth || e.self_detached;
  }
  EXPECT_EQ(static_cast<int>(s.reg.size()), kWorkers + s.children.load());
  EXPECT_GT(s.hist.count(kWaitAny, Errno::kOk), 0);
  std::cout << "[stress] churn: " << reaped << " reaped, " << detached << " detached"
            << std::endl;
}

}  // namespace
}  // namespace lwpd::test
