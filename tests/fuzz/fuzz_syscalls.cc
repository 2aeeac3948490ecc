// fuzz_syscalls: random syscall sequences over 3-4 processes against emul/ directly, with
// Kernel::check_invariants() after every step.
//
// One thread -- the fuzzer's -- plays the user side of every LWP of every process. The
// kernel is real: its vCPU worker threads dispatch the LWPs and its callout thread fires
// park timeouts. A step is decoded from the input (syscall_steps.h has the format), made,
// and then the run *settles*: the driver answers kicks (traps), reissues ERESTART/EREISSUE
// returns as the shim does, and waits until the kernel can make no more progress without
// the user side (see World::quiescent). Then the invariants are checked and the next step
// starts. At the end every live process is abandoned (a broken session), the run waits
// for all of them to exit, releases them and checks that the table is empty.
//
// The kernels (one with 1 vCPU, one with 2) live for the whole fuzzing process: starting
// and joining their threads for every input cost more than the input itself. Each run
// creates its processes and must leave the table empty, so what carries over is only the
// ID allocator's position (pids differ between runs; the input names them by index) and
// callouts of 10 s parks that find their sleeper gone when they fire.
//
// Determinism: with 1 vCPU (the default) the next step always starts from the same state
// for the same input, except for park timeouts: the wall clock decides whether one has
// fired by the time a step settles (timeouts used: 0, 1 ns, 50 us, 200 us, 10 s, and
// absolute times around "now"; kLetTimePass waits for them on purpose). A user step finds
// no LWP in user mode when every LWP sleeps and is then skipped without waiting. With 2
// vCPUs (header bit 1), which vCPU runs which LWP is also a race.
// Findings abort with a message (the invariant that broke and the step number), so
// libFuzzer records them as crashes; a run that cannot settle within 20 s aborts too
// (a lost wakeup would show up that way).

#include <sys/time.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "emul/kernel.h"
#include "fuzz_input.h"
#include "syscall_steps.h"

namespace lwpd::fuzz {
namespace {

using namespace lwpd::emul;
using namespace std::chrono_literals;
using netbsd::Errno;
using netbsd::LwpStat;
using Clock = std::chrono::steady_clock;

constexpr auto kSettleLimit = 20s;     // longer: the kernel is stuck (a finding)
// kLetTimePass waits this long on purpose. The short park timeouts (50 us, 200 us, an
// absolute time 100 us ahead) are kept below it, and small: the waits for them were four
// fifths of a run's time when they were 0.5-3 ms (measured: 200 random inputs, 1.97 s -> 0.39 s).
constexpr auto kTimeoutWait = 300us;
constexpr lwpid_t kBogusLid = 29999;   // never allocated in a run this short

// LWPD_FUZZ_VERBOSE=1: print every entry and return (to read what an input does).
const bool g_verbose = std::getenv("LWPD_FUZZ_VERBOSE") != nullptr;

[[noreturn]] void finding(int step, const std::string& what) {
  std::fprintf(stderr, "fuzz_syscalls: step %d: %s\n", step, what.c_str());
  std::abort();
}

// The user side of one process: which of its LWPs are in user mode. Every port method
// runs under the kernel's process lock; they only record and notify (Hub::mu is a leaf).
struct Hub {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t events = 0;  // [mu] bumped by every port call and debugger wake-up
};

struct LwpSide {
  bool user = false;      // a return was delivered since the last entry
  uint64_t gen = 0;       // user-run generation of that return
  uint64_t kick = 0;      // latest kick's generation (acts only if == gen)
  bool reissue = false;   // the return was ERESTART/EREISSUE: enter again with `last`
  SysArgs last;           // the pending or last syscall (for reissue)
};

class FuzzProc final : public UserPort {
 public:
  explicit FuzzProc(Hub& hub) : hub_(hub) {}

  void lwp_return(lwpid_t lid, const SysReturn& ret, uint64_t gen) override {
    std::lock_guard g(hub_.mu);
    if (g_verbose)
      std::fprintf(stderr, "  return lid %d kind %d: %s retval %lld\n", lid,
                   static_cast<int>(ret.kind), netbsd::errno_name(ret.error),
                   static_cast<long long>(ret.retval));
    if (ret.kind == ReturnKind::kStart) born.push_back(lid);
    LwpSide& s = lwps[lid];
    // A created LWP can be named before it first runs (LWP_SUSPENDED, a busy vCPU).
    if (ret.kind == ReturnKind::kSyscall && ret.error == Errno::kOk &&
        std::holds_alternative<LwpCreateArgs>(s.last))
      born.push_back(static_cast<lwpid_t>(ret.retval));
    s.user = true;
    s.gen = gen;
    s.reissue = ret.kind == ReturnKind::kSyscall &&
                (ret.error == Errno::kERESTART || ret.error == Errno::kEREISSUE);
    note_locked();
  }
  void lwp_kick(lwpid_t lid, uint64_t gen) override {
    std::lock_guard g(hub_.mu);
    if (auto it = lwps.find(lid); it != lwps.end()) it->second.kick = gen;
    note_locked();
  }
  void lwp_signal(lwpid_t, const SigInfo&) override {
    std::lock_guard g(hub_.mu);
    note_locked();
  }
  void lwp_exited(lwpid_t lid) override {
    std::lock_guard g(hub_.mu);
    lwps.erase(lid);
    note_locked();
  }
  void proc_exited(const ExitStatus&) override {
    std::lock_guard g(hub_.mu);
    exited = true;
    note_locked();
  }

  // ---- [hub.mu] ----
  std::map<lwpid_t, LwpSide> lwps;  // LWPs that got a return and have not exited
  std::vector<lwpid_t> born;        // LIDs created since the driver last looked
  bool exited = false;
  // ---- driver thread only ----
  ProcRef ref;
  pid_t pid = 0;
  bool released = false;

 private:
  void note_locked() {
    hub_.events++;
    hub_.cv.notify_all();
  }
  Hub& hub_;
};

// What outlives one run: a kernel per vCPU count, and the hub their ports report to.
struct Persistent {
  Hub hub;
  std::unique_ptr<Kernel> kernels[2];
};

Persistent& persistent() {
  static Persistent* p = [] {
    auto* q = new Persistent;  // never freed: vCPU threads run until the process exits
    for (int i = 0; i < 2; i++) {
      KernelConfig cfg;
      cfg.ncpus = i + 1;
      cfg.quantum = std::chrono::hours(1);  // no time slicing: steps, not the clock, decide
      cfg.pin_cpus = false;
      q->kernels[i] = std::make_unique<Kernel>(cfg);
    }
    return q;
  }();
  return *p;
}

class World {
 public:
  World(FuzzInput& in);
  ~World();
  void run();

 private:
  // ---- settling ----
  void settle();
  bool service_ports();  // answer kicks, reissue restarts; true if it entered the kernel
  bool quiescent();
  bool wait_event(std::chrono::microseconds limit);
  void check(const char* where);

  // ---- steps ----
  void step(Step s);
  void user_step(Step s);
  void outside_step(Step s);
  void debugger_step();
  void enter(FuzzProc& p, lwpid_t lid, SysArgs a);
  // The LWP in user mode named by `who`, or nullopt.
  std::optional<std::pair<FuzzProc*, lwpid_t>> pick_user(uint8_t who);
  FuzzProc& pick_proc() { return *procs_[in_.pick(static_cast<unsigned>(procs_.size()))]; }

  // ---- argument decoding ----
  lwpid_t lid_arg(lwpid_t self);
  pid_t pid_arg(pid_t self);
  int signal_arg();
  LwpCreateArgs create_args();
  LwpParkArgs park_args(lwpid_t self);
  PtraceArgs ptrace_args(pid_t self);
  WaitArgs wait_args(pid_t self);
  void learn_ids() {
    std::vector<lwpid_t> born;
    {
      std::lock_guard g(hub_.mu);
      for (auto& p : procs_) {
        born.insert(born.end(), p->born.begin(), p->born.end());
        p->born.clear();
      }
    }
    for (lwpid_t l : born) remember(l);
  }
  void remember(int32_t id) {
    if (std::find(ids_.begin(), ids_.end(), id) == ids_.end()) ids_.push_back(id);
  }

  void teardown();

  FuzzInput& in_;
  Hub& hub_;
  Kernel* k_;
  std::vector<std::shared_ptr<FuzzProc>> procs_;
  std::vector<int32_t> ids_;  // every pid and LID seen in this run (argument pool)
  ProcRef dbg_;               // the debugger, if open
  pid_t dbg_pid_ = 0;
  uint64_t wait_key_ = 0;     // keys of the debugger's pending waits
  std::vector<uint64_t> pending_waits_;
  int step_ = 0;
  int ncpus_ = 1;
};

World::World(FuzzInput& in) : in_(in), hub_(persistent().hub) {
  const uint8_t h = in_.u8();
  const int nprocs = 3 + (h & 1);
  ncpus_ = 1 + ((h >> 1) & 1);
  const int nthr = 1 + in_.u8() % 8;
  k_ = persistent().kernels[ncpus_ - 1].get();
  for (int i = 0; i < nprocs; i++) {
    auto fp = std::make_shared<FuzzProc>(hub_);
    const uint32_t uid = ((h >> (2 + i)) & 1) != 0 ? 1000 : 0;
    // Not owning: the World owns the ports and outlives the kernel's use of them (an owning
    // reference would make a Proc <-> port cycle through FuzzProc::ref).
    std::shared_ptr<UserPort> port(fp.get(), [](UserPort*) {});
    auto r = k_->proc_create(
        ProcSpec{.uid = uid, .comm = "fuzz", .port = std::move(port), .rlimit_nthr = nthr});
    if (!r.ok()) finding(0, "proc_create failed");
    fp->ref = r.release();
    fp->pid = k_->proc_pid(fp->ref);
    remember(fp->pid);
    procs_.push_back(std::move(fp));
  }
}

World::~World() {
  // teardown() left no process in the table and no debugger: the kernel holds no
  // reference to our ports any more.
  dbg_.reset();
  for (auto& p : procs_) p->ref.reset();
}

void World::run() {
  settle();
  check("start");
  for (step_ = 1; step_ <= kMaxSteps && !in_.done(); step_++) {
    step(static_cast<Step>(in_.u8() % kNumSteps));
    settle();
    check("step");
  }
  teardown();
}

// ---- settling ----------------------------------------------------------------------------

void World::settle() {
  const auto end = Clock::now() + kSettleLimit;
  int patience = 0;
  for (;;) {
    learn_ids();
    if (service_ports()) continue;
    if (quiescent()) return;
    // With 2 vCPUs an LWP may wait in a run queue while the other vCPU idles (affinity):
    // after a while of no change that is a settled state too.
    if (ncpus_ > 1 && ++patience > 2000) return;
    if (Clock::now() > end) finding(step_, "the kernel did not settle within 20 s");
    wait_event(100us);
  }
}

bool World::wait_event(std::chrono::microseconds limit) {
  std::unique_lock lk(hub_.mu);
  const uint64_t seen = hub_.events;
  return hub_.cv.wait_for(lk, limit, [&] { return hub_.events != seen; });
}

// Kicks and restarts are the user side's duty: a kicked LWP traps, an ERESTART/EREISSUE
// return is entered again at once. One entry per call (the kernel may answer from inside
// it, changing the maps).
bool World::service_ports() {
  for (auto& p : procs_) {
    lwpid_t lid = 0;
    bool trap = false;
    SysArgs again;
    {
      std::lock_guard g(hub_.mu);
      for (auto& [l, s] : p->lwps) {
        if (!s.user) continue;
        if (s.reissue) {
          lid = l;
          again = s.last;
          break;
        }
        if (s.kick == s.gen) {
          lid = l;
          trap = true;
          break;
        }
      }
    }
    if (lid == 0) continue;
    if (trap) {
      {
        std::lock_guard g(hub_.mu);
        p->lwps[lid].user = false;
      }
      EntryStatus st = k_->trap(p->ref, lid);
      if (st == EntryStatus::kNotInUserMode || st == EntryStatus::kBadArgs)
        finding(step_, std::string("trap refused: ") + entry_status_name(st));
    } else {
      enter(*p, lid, std::move(again));
    }
    return true;
  }
  return false;
}

// Nothing more happens without the user side (or a timeout): every vCPU either runs an
// LWP that is in user mode with no kick to answer, or is idle with an empty queue, and no
// LWP is on a vCPU with a return still to come. With one vCPU a queued LWP that outranks
// the running one means a kick is on its way.
bool World::quiescent() {
  std::vector<CpuInfo> cpus = k_->snapshot_cpus();
  std::vector<ProcInfo> procs = k_->snapshot_procs();
  std::lock_guard g(hub_.mu);
  int busy_prio = -1;
  for (const CpuInfo& c : cpus) {
    if (c.cur_pid == 0) {
      if (c.runq_len != 0) return false;
      continue;
    }
    busy_prio = c.cur_priority;
    auto it = std::find_if(procs_.begin(), procs_.end(),
                           [&](const auto& p) { return p->pid == c.cur_pid; });
    if (it == procs_.end()) return false;
    auto l = (*it)->lwps.find(c.cur_lid);
    if (l == (*it)->lwps.end() || !l->second.user || l->second.kick == l->second.gen ||
        l->second.reissue)
      return false;
  }
  for (const ProcInfo& pi : procs) {
    for (const LwpInfo& li : pi.lwps) {
      if (li.stat == LwpStat::kOnProc && li.in_kernel) return false;
      if (li.stat == LwpStat::kRun && ncpus_ == 1 && busy_prio >= 0 && li.priority > busy_prio)
        return false;
    }
  }
  return true;
}

void World::check(const char* where) {
  std::string e = k_->check_invariants();
  if (!e.empty()) finding(step_, std::string(where) + ": invariant: " + e);
}

// ---- steps -------------------------------------------------------------------------------

void World::step(Step s) {
  if (s < kSignalProc) {
    user_step(s);
  } else {
    outside_step(s);
  }
}

std::optional<std::pair<FuzzProc*, lwpid_t>> World::pick_user(uint8_t who) {
  std::lock_guard g(hub_.mu);
  const size_t n = procs_.size();
  for (size_t i = 0; i < n; i++) {
    FuzzProc& p = *procs_[(who + i) % n];
    std::vector<lwpid_t> user;
    for (auto& [lid, s] : p.lwps)
      if (s.user && !s.reissue) user.push_back(lid);
    if (!user.empty()) return std::make_pair(&p, user[(who >> 2) % user.size()]);
  }
  return std::nullopt;
}

void World::enter(FuzzProc& p, lwpid_t lid, SysArgs a) {
  {
    std::lock_guard g(hub_.mu);
    LwpSide& s = p.lwps[lid];
    s.user = false;
    s.reissue = false;
    s.last = a;
  }
  if (g_verbose)
    std::fprintf(stderr, "step %d: pid %d lid %d enters %s\n", step_, p.pid, lid,
                 syscall_name(a));
  EntryStatus st = k_->syscall(p.ref, lid, std::move(a));
  // The driver enters only for LWPs the kernel returned to user mode; only their death
  // (their process exiting under them) may refuse the entry.
  if (st == EntryStatus::kNotInUserMode || st == EntryStatus::kBadArgs)
    finding(step_, std::string("syscall refused: ") + entry_status_name(st));
}

void World::user_step(Step s) {
  const uint8_t who = in_.u8();
  auto u = pick_user(who);
  if (!u) return;  // everything sleeps: only a timeout or an outside step changes that
  auto [p, self] = *u;
  SysArgs a;
  switch (s) {
    case kCreate: a = create_args(); break;
    case kLwpExit: a = LwpExitArgs{}; break;
    case kSelf: a = LwpSelfArgs{}; break;
    case kWait: a = LwpWaitArgs{.wait_for = lid_arg(self)}; break;
    case kSuspend: a = LwpSuspendArgs{.target = lid_arg(self)}; break;
    case kContinue: a = LwpContinueArgs{.target = lid_arg(self)}; break;
    case kWakeup: a = LwpWakeupArgs{.target = lid_arg(self)}; break;
    case kGetprivate: a = LwpGetprivateArgs{}; break;
    case kSetprivate: a = LwpSetprivateArgs{.ptr = in_.u64()}; break;
    case kKill: {
      const lwpid_t t = lid_arg(self);
      a = LwpKillArgs{.target = t, .signo = signal_arg()};
      break;
    }
    case kDetach: a = LwpDetachArgs{.target = lid_arg(self)}; break;
    case kUnpark: a = LwpUnparkArgs{.target = lid_arg(self), .hint = in_.u8()}; break;
    case kUnparkAll: {
      LwpUnparkAllArgs ua;
      const int n = in_.u8() % 6;
      for (int i = 0; i < n; i++) ua.targets.push_back(lid_arg(self));
      switch (in_.u8() % 5) {
        case 0: ua.ntargets = ua.targets.size(); break;
        case 1: ua.targets_null = true; break;
        case 2: ua.ntargets = 0; break;
        case 3: ua.ntargets = 1025; break;
        default: ua.ntargets = ua.targets.size() + 1; break;
      }
      a = std::move(ua);
      break;
    }
    case kSetname: {
      const lwpid_t t = lid_arg(self);
      a = LwpSetnameArgs{.target = t, .name = in_.bytes(24)};
      break;
    }
    case kGetname: {
      const lwpid_t t = lid_arg(self);
      a = LwpGetnameArgs{.target = t, .len = in_.u8() % 20u};
      break;
    }
    case kCtl: a = LwpCtlArgs{.features = static_cast<int>(in_.u8() % 8)}; break;
    case kSchedSetparam: {
      const pid_t pid = pid_arg(p->pid);
      const lwpid_t lid = lid_arg(self);
      const int policy = static_cast<int>(in_.u8() % 5) - 1;
      const uint8_t pr = in_.u8();
      a = SchedSetparamArgs{.pid = pid, .lid = lid, .policy = policy,
                            .priority = pr >= 128 ? static_cast<int>(pr) - 130 : pr % 64};
      break;
    }
    case kSchedGetparam: {
      const pid_t pid = pid_arg(p->pid);
      a = SchedGetparamArgs{.pid = pid, .lid = lid_arg(self)};
      break;
    }
    case kSetaffinity: {
      const pid_t pid = pid_arg(p->pid);
      const lwpid_t lid = lid_arg(self);
      const uint8_t m = in_.u8();
      a = SchedSetaffinityArgs{.pid = pid, .lid = lid,
                               .mask = m >= 0xf0 ? ~CpuMask{0} : CpuMask{m} & 0x7};
      break;
    }
    case kGetaffinity: {
      const pid_t pid = pid_arg(p->pid);
      a = SchedGetaffinityArgs{.pid = pid, .lid = lid_arg(self)};
      break;
    }
    case kYield: a = SchedYieldArgs{}; break;
    case kPark: a = park_args(self); break;
    case kPtrace: a = ptrace_args(p->pid); break;
    case kTraceWait: a = wait_args(p->pid); break;
    case kProcExit: a = ProcExitArgs{.status = in_.u8()}; break;
    default: return;
  }
  enter(*p, self, std::move(a));
}

void World::outside_step(Step s) {
  if (g_verbose) std::fprintf(stderr, "step %d: outside step %d\n", step_, static_cast<int>(s));
  switch (s) {
    case kSignalProc: {
      FuzzProc& p = pick_proc();
      static constexpr int kSigs[] = {netbsd::NB_SIGSTOP, netbsd::NB_SIGCONT, netbsd::NB_SIGKILL,
                                      netbsd::NB_SIGUSR1, 0, 64, -1};
      (void)k_->proc_signal(p.ref, kSigs[in_.u8() % std::size(kSigs)]);
      break;
    }
    case kSuspendExt: {
      FuzzProc& p = pick_proc();
      (void)k_->lwp_suspend_ext(p.ref, lid_arg(p.pid));
      break;
    }
    case kContinueExt: {
      FuzzProc& p = pick_proc();
      (void)k_->lwp_continue_ext(p.ref, lid_arg(p.pid));
      break;
    }
    case kAbandon: k_->proc_abandon(pick_proc().ref); break;
    case kDebugger: debugger_step(); break;
    case kSigrestart: k_->proc_set_sigrestart(pick_proc().ref, in_.u64()); break;
    case kRelease: {
      FuzzProc& p = pick_proc();
      if (p.released) break;
      // With 2 vCPUs a settled run may still be finishing an exit (settle()'s patience), so
      // the process may exit during the call: it must succeed for a process that had exited
      // before it, and fail for one that has not exited after it (the kernel reports the
      // exit in the critical section that makes the process a zombie).
      auto has_exited = [&] {
        std::lock_guard g(hub_.mu);
        return p.exited;
      };
      const bool before = has_exited();
      KResult<void> r = k_->proc_release(p.ref);
      const bool after = has_exited();
      if (r.ok() ? !after : before)
        finding(step_, "proc_release: " + std::string(netbsd::errno_name(r.error())) +
                           (r.ok() ? " for a live process" : " for an exited process"));
      p.released = r.ok();
      break;
    }
    case kLetTimePass: wait_event(kTimeoutWait); break;
    default: break;
  }
}

void World::debugger_step() {
  switch (in_.u8() % kNumDbgOps) {
    case kDbgOpen:
      if (dbg_ == nullptr) {
        auto r = k_->debugger_open(0);
        if (!r.ok()) break;
        dbg_ = r.release();
        dbg_pid_ = k_->proc_pid(dbg_);
        remember(dbg_pid_);
      }
      break;
    case kDbgPtrace:
      if (dbg_ != nullptr) {
        auto r = k_->debugger_ptrace(dbg_, ptrace_args(dbg_pid_));
        if (g_verbose && r)
          std::fprintf(stderr, "  debugger ptrace: %s retval %lld\n", netbsd::errno_name(r->error),
                       static_cast<long long>(r->retval));
      }
      break;
    case kDbgWait: {
      if (dbg_ == nullptr) break;
      const uint64_t key = ++wait_key_;
      const bool deliver = in_.bit();
      Hub* hub = &hub_;
      auto w = k_->debugger_wait(dbg_, wait_args(dbg_pid_), key, [hub] {
        std::lock_guard g(hub->mu);
        hub->events++;
        hub->cv.notify_all();
      });
      if (w.kind == Kernel::DebuggerWait::kPending) pending_waits_.push_back(key);
      if (g_verbose)
        std::fprintf(stderr, "  debugger wait: kind %d %s retval %lld\n", static_cast<int>(w.kind),
                     netbsd::errno_name(w.ret.error), static_cast<long long>(w.ret.retval));
      // What the debugger collected reached it, or its transport failed (undo).
      if (w.kind == Kernel::DebuggerWait::kDone && w.ret.retval > 0) {
        const pid_t pid = static_cast<pid_t>(w.ret.retval);
        if (deliver) {
          k_->debugger_wait_delivered(dbg_, pid);
        } else {
          k_->debugger_wait_undo(dbg_, pid);
        }
      }
      break;
    }
    case kDbgCancel:
      if (dbg_ != nullptr && !pending_waits_.empty()) {
        const size_t i = in_.u8() % pending_waits_.size();
        (void)k_->debugger_wait_cancel(dbg_, pending_waits_[i]);
        pending_waits_.erase(pending_waits_.begin() + static_cast<ptrdiff_t>(i));
      }
      break;
    case kDbgClose:
      if (dbg_ != nullptr) {
        k_->debugger_close(dbg_);
        dbg_ = nullptr;
        pending_waits_.clear();
      }
      break;
  }
}

// ---- argument decoding -------------------------------------------------------------------

lwpid_t World::lid_arg(lwpid_t self) {
  const uint8_t b = in_.u8();
  switch (b & 7) {
    case kLidZero: return 0;
    case kLidSelf: return self;
    case kLidMinus1: return -1;
    case kLidBogus: return kBogusLid;
    case kLidMax: return INT32_MAX;
    default: return ids_.empty() ? self : ids_[(b >> 3) % ids_.size()];
  }
}

pid_t World::pid_arg(pid_t self) {
  const uint8_t b = in_.u8();
  switch (b & 7) {
    case kPidZero: return 0;
    case kPidSelf: return self;
    case kPidMinus1: return -1;
    case kPidBogus: return kBogusLid;
    default: return ids_.empty() ? self : ids_[(b >> 3) % ids_.size()];
  }
}

// Mostly valid NetBSD signals, and the edges: 0, NSIG (64), negative, huge.
int World::signal_arg() {
  const uint8_t b = in_.u8();
  if (b < 200) return b % 66;
  static constexpr int kEdges[] = {-1, 64, 65, 128, INT32_MAX, INT32_MIN};
  return kEdges[b % std::size(kEdges)];
}

LwpCreateArgs World::create_args() {
  LwpCreateArgs c;
  const uint8_t f = in_.u8();
  c.flags = (f & 1 ? netbsd::LWP_DETACHED : 0) | (f & 2 ? netbsd::LWP_SUSPENDED : 0) |
            (f & 4 ? 0x100000000ULL : 0);
  const uint8_t v = in_.u8();
  switch (v % 8) {
    case 0: c.uc_flags &= ~netbsd::UC_CPU; break;               // no _UC_CPU: EINVAL
    case 1: c.pc = netbsd::VM_MAXUSER_ADDRESS; break;           // bad PC
    case 2: c.rflags = 0x100 | netbsd::PSL_MBO; break;          // T flag: EINVAL
    case 3: c.uc_flags |= netbsd::UC_TLSBASE; c.tls_base = v; break;
    case 4: c.sigmask = ~SigSet{0}; break;
    default: break;
  }
  c.lid_out_ok = (v & 0x80) == 0;
  return c;
}

LwpParkArgs World::park_args(lwpid_t self) {
  LwpParkArgs a;
  const uint8_t c = in_.u8();
  a.clock_id = c % 3 == 0 ? netbsd::NB_CLOCK_MONOTONIC
                          : c % 3 == 1 ? netbsd::NB_CLOCK_REALTIME : 7;
  const uint8_t t = in_.u8();
  const bool abs = (t & 0x80) != 0;
  if (abs) a.flags = netbsd::NB_TIMER_ABSTIME;
  auto now = [&] {
    timespec ts{};
    clock_gettime(a.clock_id == netbsd::NB_CLOCK_REALTIME ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
    return Timespec{ts.tv_sec, ts.tv_nsec};
  };
  switch (t % 9) {
    case 0: a.ts = std::nullopt; break;                     // no timeout
    case 1: a.ts = Timespec{0, 0}; break;
    case 2: a.ts = Timespec{0, 1}; break;
    case 3: a.ts = Timespec{0, 50'000}; break;
    case 4: a.ts = Timespec{0, 200'000}; break;
    case 5: a.ts = Timespec{10, 0}; break;                  // outlives the run
    case 6: a.ts = Timespec{-1, 0}; break;
    case 7: a.ts = Timespec{0, 1'000'000'000}; break;       // bad nsec
    default: {                                              // absolute: just ahead of now
      Timespec n = now();
      n.tv_nsec += 100'000;
      if (n.tv_nsec >= 1'000'000'000) n.tv_sec++, n.tv_nsec -= 1'000'000'000;
      a.ts = n;
      a.flags = netbsd::NB_TIMER_ABSTIME;
      break;
    }
  }
  a.unpark = (t & 0x40) != 0 ? lid_arg(self) : 0;
  return a;
}

PtraceArgs World::ptrace_args(pid_t self) {
  static constexpr int kReqs[] = {
      netbsd::PT_TRACE_ME, netbsd::PT_CONTINUE, netbsd::PT_KILL, netbsd::PT_ATTACH,
      netbsd::PT_DETACH, netbsd::PT_LWPINFO, netbsd::PT_SET_EVENT_MASK,
      netbsd::PT_GET_EVENT_MASK, netbsd::PT_GET_PROCESS_STATE, netbsd::PT_GET_SIGINFO,
      netbsd::PT_RESUME, netbsd::PT_SUSPEND, netbsd::PT_STOP, netbsd::PT_LWPSTATUS,
      netbsd::PT_LWPNEXT, 1, 99, -1};
  PtraceArgs a;
  a.request = kReqs[in_.u8() % std::size(kReqs)];
  a.pid = pid_arg(self);
  const uint8_t dv = in_.u8();
  switch (dv % 4) {
    case 0: a.data = signal_arg(); break;
    case 1: a.data = -lid_arg(self); break;
    case 2: a.data = lid_arg(self); break;
    default: a.data = static_cast<int>(in_.u8()); break;  // structure sizes and the like
  }
  a.addr_is_one = (dv & 0x80) == 0;
  a.in.event_mask = in_.u8() % 16;
  a.in.lwpid = lid_arg(self);
  return a;
}

WaitArgs World::wait_args(pid_t self) {
  WaitArgs w;
  w.pid = pid_arg(self);
  static constexpr int kOptions[] = {0, 1 /* WNOHANG */, 2, 0x40};
  w.options = kOptions[in_.u8() % std::size(kOptions)];
  return w;
}

// ---- the end of a run --------------------------------------------------------------------

// Every process dies as with a broken session; the run must end with an empty table.
void World::teardown() {
  step_ = kMaxSteps + 1;
  if (dbg_ != nullptr) k_->debugger_close(dbg_);
  for (auto& p : procs_) k_->proc_abandon(p->ref);
  const auto end = Clock::now() + kSettleLimit;
  for (;;) {
    bool all = true;
    {
      std::lock_guard g(hub_.mu);
      for (auto& p : procs_) all = all && p->exited;
    }
    if (all) break;
    if (Clock::now() > end) finding(step_, "a process did not exit after proc_abandon");
    wait_event(1ms);
  }
  check("teardown");
  for (auto& p : procs_) {
    if (p->released) continue;
    KResult<void> r = k_->proc_release(p->ref);
    if (!r.ok()) finding(step_, std::string("proc_release after exit: ") +
                                    netbsd::errno_name(r.error()));
  }
  if (!k_->snapshot_procs().empty()) finding(step_, "processes left after release");
  // The debugger's PID goes back once no call of it is in progress: none is, now.
}

}  // namespace
}  // namespace lwpd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lwpd::fuzz::FuzzInput in(data, size);
  lwpd::fuzz::World w(in);
  w.run();
  return 0;
}
