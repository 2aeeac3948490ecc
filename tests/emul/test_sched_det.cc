// Deterministic mode (KernelConfig::sched_seed, sched.cc "Deterministic mode"): one LWP in
// user mode at a time, every scheduling decision from a seeded generator, timeouts on a
// virtual clock. The workload is the classic lost update: LWPs each read a shared counter,
// enter the kernel (a null syscall: a scheduling point), and write back what they read plus
// one. Whether updates are lost depends only on the schedule, so with a seed the outcome --
// and the kernel's whole event sequence -- must be the same on every run, whatever the host
// does meanwhile (one run has a CPU burner beside it), and different seeds must find
// different interleavings, among them ones that lose updates.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"
#include "sched_util.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Every kernel event but its time and sequence number, as text.
class Recorder : public KernelObserver {
 public:
  explicit Recorder(bool with_cpu = true) : with_cpu_(with_cpu) {}
  void on_event(const KEvent& e) override {
    std::string s = std::to_string(static_cast<int>(e.kind)) + " " + std::to_string(e.pid) + "/" +
                    std::to_string(e.lid) + " " + std::to_string(static_cast<int>(e.from)) + ">" +
                    std::to_string(static_cast<int>(e.to));
    if (with_cpu_) s += " @" + std::to_string(e.cpu);
    std::lock_guard g(mu_);
    events_.push_back(std::move(s));
  }
  std::vector<std::string> events() {
    std::lock_guard g(mu_);
    return events_;
  }

 private:
  const bool with_cpu_;
  std::mutex mu_;
  std::vector<std::string> events_;
};

struct DetRun {
  std::vector<std::string> events;
  int total = -1;
  int max_in_user = -1;
  std::string divergence;  // Kernel::sched_replay_divergence() at the end
};

constexpr int kWorkers = 4;
constexpr int kIncrements = 20;

using Strategy = KernelConfig::SchedStrategy;

struct DetOpts {
  uint64_t seed = 1;
  int ncpus = 2;
  bool with_cpu = true;
  Strategy strategy = Strategy::kRandom;
  int workers = kWorkers;
  std::string record, replay;  // KernelConfig::sched_record / sched_replay
};

// The lost-update program under `o.seed` on `o.ncpus` logical CPUs.
DetRun lost_update(const DetOpts& o) {
  Recorder rec(o.with_cpu);
  KernelConfig cfg = test_config(o.ncpus);
  cfg.sched_seed = o.seed;
  cfg.sched_strategy = o.strategy;
  cfg.pct_steps = 100;
  cfg.sched_record = o.record;
  cfg.sched_replay = o.replay;
  cfg.quantum = 2s;  // a worker never spins: no slice may end for real
  cfg.observer = &rec;
  DetRun out;
  {
    Kernel k(cfg);
    std::atomic<int> counter{0};
    user_counter().now = 0;
    user_counter().max = 0;
    auto tp = TestProc::start(k, [&](U& u) {
      auto worker = [&](U& w) {
        for (int i = 0; i < kIncrements; i++) {
          const int seen = counter.load(std::memory_order_relaxed);
          U_EXPECT_EQ(w, w.err(LwpKillArgs{.target = w.lid()}), Errno::kOk);
          counter.store(seen + 1, std::memory_order_relaxed);
        }
      };
      std::vector<lwpid_t> lids(o.workers);
      for (lwpid_t& l : lids) U_EXPECT_EQ(u, u.create(worker, 0, &l), Errno::kOk);
      for (lwpid_t l : lids) U_EXPECT_EQ(u, u.wait(l), Errno::kOk);
      out.total = counter.load();
    });
    Finally fin{[&] { kill_if_alive(k, *tp); }};
    auto st = tp->wait_exit(60s);
    EXPECT_TRUE(st.has_value()) << dump(k, tp->pid());
    EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
    EXPECT_EQ(k.check_invariants(), "");
    out.divergence = k.sched_replay_divergence();
  }
  out.events = rec.events();
  out.max_in_user = user_counter().max.load();
  return out;
}

DetRun lost_update(uint64_t seed, int ncpus, bool with_cpu = true,
                   Strategy strategy = Strategy::kRandom) {
  return lost_update(
      DetOpts{.seed = seed, .ncpus = ncpus, .with_cpu = with_cpu, .strategy = strategy});
}

// A thread that keeps a host CPU busy until destroyed.
class Burner {
 public:
  Burner()
      : t_([this] {
          while (!stop_.load(std::memory_order_relaxed)) {
          }
        }) {}
  ~Burner() {
    stop_ = true;
    t_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread t_;
};

TEST(DetSched, SameSeedSameRunEvenBesideABurner) {
  for (uint64_t seed : {1u, 7u}) {
    const DetRun a = lost_update(seed, 2);
    DetRun b;
    {
      Burner burn;
      b = lost_update(seed, 2);
    }
    const DetRun c = lost_update(seed, 2);
    ASSERT_GT(a.events.size(), 100u);
    EXPECT_EQ(a.events, b.events) << "seed " << seed << ": the run beside a burner differed";
    EXPECT_EQ(a.events, c.events) << "seed " << seed;
    EXPECT_EQ(a.total, b.total);
    EXPECT_EQ(a.total, c.total);
    for (const DetRun* r : std::initializer_list<const DetRun*>{&a, &b, &c})
      EXPECT_EQ(r->max_in_user, 1) << "more than one LWP ran user code at a time";
  }
}

TEST(DetSched, SeedsFindDifferentInterleavingsAndTheLostUpdate) {
  std::set<std::vector<std::string>> distinct;
  std::set<int> totals;
  for (uint64_t seed = 1; seed <= 8; seed++) {
    const DetRun r = lost_update(seed, 2);
    distinct.insert(r.events);
    totals.insert(r.total);
    EXPECT_LE(r.total, kWorkers * kIncrements);
  }
  EXPECT_GE(distinct.size(), 4u) << "eight seeds gave fewer than four schedules";
  EXPECT_LT(*totals.begin(), kWorkers * kIncrements) << "no seed lost an update";
  EXPECT_GE(totals.size(), 2u);
}

// PCT: random priorities, the highest runs until a change point drops it. Deterministic too,
// and its change points find the lost update.
TEST(DetSched, PctIsDeterministicAndFindsTheLostUpdate) {
  const DetRun a = lost_update(11, 2, true, Strategy::kPct);
  const DetRun b = lost_update(11, 2, true, Strategy::kPct);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.total, b.total);
  std::set<std::vector<std::string>> distinct;
  int lost = 0;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    const DetRun r = lost_update(seed, 2, true, Strategy::kPct);
    distinct.insert(r.events);
    if (r.total < kWorkers * kIncrements) lost++;
    EXPECT_EQ(r.max_in_user, 1);
  }
  EXPECT_GE(distinct.size(), 4u);
  EXPECT_GE(lost, 1) << "no PCT seed of 20 lost an update";
}

// A recorded schedule replays the run -- under another seed, so the record, not the seed,
// decides -- and a program that asks other questions than the recorded one is told where.
TEST(DetSched, RecordAndReplay) {
  const std::string file = ::testing::TempDir() + "lwpd-sched-record-" + std::to_string(getpid());
  for (Strategy strategy : {Strategy::kRandom, Strategy::kPct}) {
    const DetRun recorded = lost_update(DetOpts{.seed = 5, .strategy = strategy, .record = file});
    const uint64_t replay_seed = strategy == Strategy::kPct ? 5 : 999;  // PCT: change points
    const DetRun replayed =
        lost_update(DetOpts{.seed = replay_seed, .strategy = strategy, .replay = file});
    EXPECT_EQ(replayed.divergence, "");
    EXPECT_EQ(recorded.events, replayed.events);
    EXPECT_EQ(recorded.total, replayed.total);
    // The seed alone gives another run: the replay did not just follow it.
    if (strategy == Strategy::kRandom) {
      EXPECT_NE(lost_update(999, 2).events, recorded.events);
    }
    // Three workers where four were recorded: the run asks another question at some draw.
    const DetRun other = lost_update(
        DetOpts{.seed = replay_seed, .strategy = strategy, .workers = 3, .replay = file});
    EXPECT_NE(other.divergence.find("schedule replay diverged at draw "), std::string::npos)
        << other.divergence;
  }
  std::remove(file.c_str());
}

// Inputs from outside the program -- here an admin's suspend and continue, and the client's
// death -- take effect between two kernel events whenever they arrive; the record keeps each
// at its event and a replay applies it there itself: the replay (under another seed) has the
// recorded run's events exactly, and refuses live inputs meanwhile.
struct InputRun {
  std::vector<std::string> events;
  std::string record;  // the schedule record's text, when recording
  std::string divergence;
  Errno live_suspend = Errno::kOk;   // a live suspend tried during a replay
  Errno live_debugger = Errno::kOk;  // a live debugger_open tried during a replay
  int debugger_saw = 0;              // the stop signal the debugger collected
  lwpid_t debugger_lwp = 0;          // PT_LWPINFO's answer
  bool killed = false;               // the process ended by SIGKILL
};

// The outside world of one run: a host thread with its own timing, as lwpstat's or a
// debugger's would be. `reach(n)` waits until the workers have done n increments in all (or
// everything is parked); `out` collects what the actions saw.
using OutsideActs = std::function<void(Kernel& k, TestProc& tp,
                                       const std::function<void(int)>& reach, InputRun& out)>;

// The lost update's workers; the first LWP makes null syscalls until they are done, waits for
// them, then parks until the process is killed. Beside them `act` runs; then the client dies:
// at `abandon_at` increments, or once everything is parked (replaying: the record's death).
InputRun outside_inputs(uint64_t seed, const std::string& record, const std::string& replay,
                        const OutsideActs& act, int abandon_at) {
  Recorder rec;
  KernelConfig cfg = test_config(2);
  cfg.sched_seed = seed;
  cfg.sched_record = record;
  cfg.sched_replay = replay;
  cfg.quantum = 2s;
  cfg.observer = &rec;
  InputRun out;
  {
    Kernel k(cfg);
    std::atomic<int> counter{0}, progress{0};
    std::atomic<bool> lingering{false};
    auto tp = TestProc::start(k, [&](U& u) {
      auto worker = [&](U& w) {
        for (int i = 0; i < kIncrements; i++) {
          const int seen = counter.load(std::memory_order_relaxed);
          if (w.err(LwpKillArgs{.target = w.lid()}) != Errno::kOk) return;  // (killed)
          counter.store(seen + 1, std::memory_order_relaxed);
          progress.fetch_add(1);
        }
      };
      std::vector<lwpid_t> lids(kWorkers);
      for (lwpid_t& l : lids) U_EXPECT_EQ(u, u.create(worker, 0, &l), Errno::kOk);
      // Busy at kernel boundaries meanwhile, so that a suspension takes hold at once.
      while (progress.load() < kWorkers * kIncrements) (void)u.err(LwpKillArgs{.target = u.lid()});
      for (lwpid_t l : lids) (void)u.wait(l);
      lingering = true;
      (void)u.park();
    });
    Finally fin{[&] { kill_if_alive(k, *tp); }};
    auto reach = [&](int n) {
      while (progress.load() < n && !lingering.load() && !tp->exited()) std::this_thread::yield();
    };
    act(k, *tp, reach, out);
    if (replay.empty()) {
      reach(abandon_at > 0 ? abandon_at : kWorkers * kIncrements + 1);
      k.proc_abandon(tp->ref());
    } else {
      // A replay that diverged applies no more of the record's inputs: the client's death
      // is the test's to bring then.
      reach(kWorkers * kIncrements + 1);
      if (!k.sched_replay_divergence().empty()) k.proc_abandon(tp->ref());
    }
    auto st = tp->wait_exit(60s);
    EXPECT_TRUE(st.has_value()) << dump(k, tp->pid());
    out.killed = st.has_value() && st->signaled && st->code == netbsd::NB_SIGKILL;
    EXPECT_EQ(k.check_invariants(), "");
    out.divergence = k.sched_replay_divergence();
  }
  out.events = rec.events();
  if (!record.empty()) {
    std::ifstream in(record);
    std::stringstream text;
    text << in.rdbuf();
    out.record = text.str();
  }
  return out;
}

// The LWP `lid` of `tp` is in state `want` (polled: the outside thread has nothing to wait on).
void await_lwp_stat(Kernel& k, TestProc& tp, lwpid_t lid, netbsd::LwpStat want) {
  auto is = [&] {
    auto pi = k.snapshot_proc(tp.pid());
    for (const LwpInfo& l : pi ? pi->lwps : std::vector<LwpInfo>{})
      if (l.lid == lid) return l.stat == want;
    return false;
  };
  while (!is()) std::this_thread::yield();
}

// An admin suspends the first LWP once the workers have done `suspend_at` increments and
// continues it at `continue_at`.
OutsideActs suspend_and_continue(int suspend_at, int continue_at) {
  return [=](Kernel& k, TestProc& tp, const std::function<void(int)>& reach, InputRun&) {
    reach(suspend_at);
    EXPECT_TRUE(k.lwp_suspend_ext(tp.ref(), tp.pid()).ok());
    // It takes hold at the LWP's next kernel boundary: continue it only after.
    await_lwp_stat(k, tp, tp.pid(), netbsd::LwpStat::kSuspended);
    reach(continue_at);
    EXPECT_TRUE(k.lwp_continue_ext(tp.ref(), tp.pid()).ok());
  };
}

const OutsideActs kNothing = [](Kernel&, TestProc&, const std::function<void(int)>&, InputRun&) {};

// Replaying: a live input is refused (the record's come by themselves).
const OutsideActs kTryLive = [](Kernel& k, TestProc& tp, const std::function<void(int)>& reach,
                                InputRun& out) {
  reach(1);
  out.live_suspend = k.lwp_suspend_ext(tp.ref(), tp.pid()).error();
  auto d = k.debugger_open(0);
  out.live_debugger = d.ok() ? Errno::kOk : d.error();
};

TEST(DetSched, OutsideInputsAreRecordedAndReplayed) {
  const std::string file = ::testing::TempDir() + "lwpd-sched-inputs-" + std::to_string(getpid());
  // An admin suspends the first LWP and continues it; later the client dies.
  const InputRun recorded = outside_inputs(5, file, "", suspend_and_continue(10, 40), 0);
  EXPECT_TRUE(recorded.killed);
  EXPECT_NE(recorded.record.find(" suspend 1 1\n"), std::string::npos) << recorded.record;
  EXPECT_NE(recorded.record.find(" continue 1 1\n"), std::string::npos) << recorded.record;
  EXPECT_NE(recorded.record.find(" abandon 1\n"), std::string::npos) << recorded.record;
  const InputRun replayed = outside_inputs(999, "", file, kTryLive, 0);
  EXPECT_EQ(replayed.divergence, "");
  EXPECT_EQ(replayed.live_suspend, Errno::kEBUSY);
  EXPECT_EQ(replayed.live_debugger, Errno::kEBUSY);
  EXPECT_TRUE(replayed.killed);
  EXPECT_EQ(recorded.events, replayed.events);
  // The same seed without the suspension gives another run: the inputs mattered.
  EXPECT_NE(outside_inputs(5, "", "", kNothing, 0).events, recorded.events);

  // The client dies while its LWPs run: the replay kills the process at the same event.
  const InputRun died = outside_inputs(7, file, "", kNothing, 30);
  EXPECT_TRUE(died.killed);
  const InputRun died_again = outside_inputs(999, "", file, kNothing, 0);
  EXPECT_TRUE(died_again.killed);
  EXPECT_EQ(died_again.divergence, "");
  EXPECT_EQ(died.events, died_again.events);
  std::remove(file.c_str());
}

// The debugger of one run: it attaches, collects the SIGSTOP stop, reads the LWP's state and
// detaches, letting the process go on; then it closes.
void debug_once(Kernel& k, TestProc& tp, InputRun& out) {
  auto opened = k.debugger_open(0);
  ASSERT_TRUE(opened.ok());
  const ProcRef d = opened.release();
  auto pt = [&](int req, int data = 0) {
    auto r = k.debugger_ptrace(d, PtraceArgs{.request = req, .pid = tp.pid(), .data = data});
    EXPECT_TRUE(r.has_value()) << "debugger closed";
    return r ? *r : SysReturn::err(Errno::kESRCH);
  };
  EXPECT_EQ(pt(netbsd::PT_ATTACH).error, Errno::kOk);
  // Wait for the stop as the Trace service does: again after each change.
  for (;;) {
    std::mutex mu;
    std::condition_variable cv;
    bool changed = false;
    auto w = k.debugger_wait(d, WaitArgs{.pid = tp.pid()}, 1, [&] {
      std::lock_guard g(mu);
      changed = true;
      cv.notify_all();
    });
    if (w.kind == Kernel::DebuggerWait::kDone) {
      out.debugger_saw = w.ret.wait.kind == WaitOut::kStopped ? w.ret.wait.code : -1;
      break;
    }
    ASSERT_EQ(w.kind, Kernel::DebuggerWait::kPending);
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, 20s, [&] { return changed; })) {
      ADD_FAILURE() << "the debugger's wait was never woken";
      lk.unlock();
      if (!k.debugger_wait_cancel(d, 1)) {  // fired meanwhile: the callback must find mu
        lk.lock();
        cv.wait(lk, [&] { return changed; });
      }
      break;
    }
  }
  out.debugger_lwp = pt(netbsd::PT_LWPINFO, netbsd::PTRACE_LWPINFO_SIZE).trace.lwpid;
  EXPECT_EQ(pt(netbsd::PT_DETACH).error, Errno::kOk);
  k.debugger_close(d);
}

// An admin's stop and continue signals and a debugger's session, recorded and replayed: the
// replay opens its own debugger at the recorded event, makes the recorded requests, gets the
// recorded results, and the run is the recorded one.
TEST(DetSched, SignalsAndADebuggerAreRecordedAndReplayed) {
  const std::string file = ::testing::TempDir() + "lwpd-sched-dbg-" + std::to_string(getpid());
  const OutsideActs acts = [](Kernel& k, TestProc& tp, const std::function<void(int)>& reach,
                              InputRun& out) {
    reach(10);
    EXPECT_TRUE(k.proc_signal(tp.ref(), netbsd::NB_SIGSTOP).ok());
    await_lwp_stat(k, tp, tp.pid(), netbsd::LwpStat::kStop);
    EXPECT_TRUE(k.proc_signal(tp.ref(), netbsd::NB_SIGCONT).ok());
    reach(30);
    debug_once(k, tp, out);
  };
  const InputRun recorded = outside_inputs(11, file, "", acts, 0);
  EXPECT_TRUE(recorded.killed);
  EXPECT_EQ(recorded.debugger_saw, netbsd::NB_SIGSTOP);
  EXPECT_GT(recorded.debugger_lwp, 0);  // (from LID 0: the newest LWP, as on NetBSD)
  for (const char* line : {" signal 1 17\n", " signal 1 19\n", " dbg-open ", " dbg-ptrace ",
                           " dbg-wait ", " dbg-close ", " abandon 1\n"})
    EXPECT_NE(recorded.record.find(line), std::string::npos) << line << " in " << recorded.record;
  const InputRun replayed = outside_inputs(999, "", file, kNothing, 0);
  EXPECT_EQ(replayed.divergence, "");
  EXPECT_TRUE(replayed.killed);
  EXPECT_EQ(recorded.events, replayed.events);

  // A record whose debugger result is not what the replay gets is a divergence naming it
  // (the PT_DETACH's: the replay goes on with the process running).
  std::string tampered = recorded.record;
  const size_t at = tampered.rfind(" dbg-ptrace ");
  ASSERT_NE(at, std::string::npos);
  const size_t eq = tampered.find(" = 0 ", at);
  ASSERT_NE(eq, std::string::npos);
  tampered.replace(eq, 5, " = 3 ");  // ESRCH instead of success
  {
    std::ofstream f(file, std::ios::trunc);
    f << tampered;
  }
  const InputRun diverged = outside_inputs(999, "", file, kNothing, 0);
  EXPECT_NE(diverged.divergence.find("dbg-ptrace"), std::string::npos) << diverged.divergence;
  std::remove(file.c_str());
}

// The logical CPU an LWP runs on is drawn apart from the schedule: with another --cpus the
// order of events is the same, only the CPUs they name differ.
TEST(DetSched, TheScheduleDoesNotDependOnTheCpuCount) {
  const DetRun one = lost_update(3, 1, /*with_cpu=*/false);
  const DetRun four = lost_update(3, 4, /*with_cpu=*/false);
  EXPECT_EQ(one.events, four.events);
  EXPECT_EQ(one.total, four.total);
}

// Timeouts run on the virtual clock: a 10 s park ends at once when nothing else can run, and
// timed sleepers wake in the order of their deadlines, not of the host's timing.
TEST(DetSched, TimeoutsRunOnTheVirtualClock) {
  KernelConfig cfg = test_config(2);
  cfg.sched_seed = 5;
  Kernel k(cfg);
  std::mutex mu;
  std::vector<int> woke;
  int64_t park_ms = -1;
  auto tp = TestProc::start(k, [&](U& u) {
    const auto t0 = Clock::now();
    U_EXPECT_EQ(u, u.park(Timespec{.tv_sec = 10}), Errno::kETIMEDOUT);
    park_ms = ms_since(t0);
    auto sleeper = [&](int secs) {
      return [&, secs](U& s) {
        U_EXPECT_EQ(s, s.park(Timespec{.tv_sec = secs}), Errno::kETIMEDOUT);
        std::lock_guard g(mu);
        woke.push_back(secs);
      };
    };
    lwpid_t a = 0, b = 0, c = 0;
    U_EXPECT_EQ(u, u.create(sleeper(3), 0, &a), Errno::kOk);
    U_EXPECT_EQ(u, u.create(sleeper(1), 0, &b), Errno::kOk);
    U_EXPECT_EQ(u, u.create(sleeper(2), 0, &c), Errno::kOk);
    for (lwpid_t l : {a, b, c}) U_EXPECT_EQ(u, u.wait(l), Errno::kOk);
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  ASSERT_TRUE(tp->wait_exit(30s).has_value()) << dump(k, tp->pid());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_LT(park_ms, 1000) << "the 10 s park waited for real";
  EXPECT_EQ(woke, (std::vector<int>{1, 2, 3}));
}

// The one real-time decision: an LWP that spins in user code while another is runnable loses
// its vCPU when its slice ends, and that is counted. (The creator goes on after _lwp_create:
// the new LWP becomes runnable only once its creator has returned to user mode.)
TEST(DetSched, ASpinnerIsPreemptedByTheClockAndCounted) {
  KernelConfig cfg = test_config(1);
  cfg.sched_seed = 9;
  Kernel k(cfg);
  std::atomic<bool> other_ran{false};
  auto tp = TestProc::start(k, [&](U& u) {
    lwpid_t o = 0;
    U_EXPECT_EQ(u, u.create([&](U&) { other_ran = true; }, 0, &o), Errno::kOk);
    U_EXPECT(u, u.spin_until([&] { return other_ran.load(); }, 20s));
    U_EXPECT_EQ(u, u.wait(o), Errno::kOk);
  });
  Finally fin{[&] { kill_if_alive(k, *tp); }};
  ASSERT_TRUE(tp->wait_exit(30s).has_value()) << dump(k, tp->pid());
  EXPECT_TRUE(tp->failures().empty()) << first_failure(*tp);
  EXPECT_TRUE(other_ran.load());
  EXPECT_GE(k.sched_realtime_preemptions(), 1u);
}

}  // namespace
}  // namespace lwpd::test
