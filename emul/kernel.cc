// The Kernel facade: process lifecycle, kernel entries from transports,
// inspection snapshots and the invariant checker.

#include "emul/kernel.h"

#include <cassert>
#include <map>
#include <sstream>

#include "emul/callout.h"
#include "emul/idalloc.h"
#include "emul/kern.h"
#include "emul/proc.h"
#include "emul/sched.h"

namespace lwpd::emul {

using namespace netbsd;

// ---- Proc --------------------------------------------------------------------------

Proc::Proc(Kernel& k, pid_t id, ProcSpec spec, bool is_debugger)
    : pid(id),
      uid(spec.uid),
      comm(std::move(spec.comm)),
      port(std::move(spec.port)),
      rlimit_nthr(spec.rlimit_nthr >= 0          ? spec.rlimit_nthr
                  : k.config().nthr_per_uid >= 0 ? k.config().nthr_per_uid
                                                 : std::min(k.config().maxlwp, MAXUPRC)),
      dbg(is_debugger ? std::make_unique<DebuggerState>() : nullptr),
      k_(k) {}

Proc::~Proc() = default;

Lwp* Proc::find_lwp_any(lwpid_t lid) const {
  auto it = lwps.find(lid);
  if (it == lwps.end()) return nullptr;
  Lwp* l = it->second.get();
  lwp_assert_locked(*l);
  return l->stat == LwpStat::kIdl ? nullptr : l;
}

Lwp* Proc::find_lwp(lwpid_t lid) const {
  Lwp* l = find_lwp_any(lid);
  if (l == nullptr) return nullptr;
  lwp_assert_locked(*l);
  return l->stat == LwpStat::kZomb ? nullptr : l;
}

Lwp* Proc::first_live_lwp() const {
  for (Lwp* l : order) {
    lwp_assert_locked(*l);
    if (l->stat != LwpStat::kIdl && l->stat != LwpStat::kZomb) return l;
  }
  return nullptr;
}

// ---- Kernel ------------------------------------------------------------------------

Kernel::Kernel(KernelConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.ncpus < 1) cfg_.ncpus = 1;
  if (cfg_.ncpus > kMaxCpus) cfg_.ncpus = kMaxCpus;
  ids_ = std::make_unique<IdAllocator>();
  callout_ = std::make_unique<Callout>(
      [](const std::shared_ptr<Proc>& p, lwpid_t lid, uint64_t seq) { lwp_timeout(p, lid, seq); },
      cfg_.sched_seed.has_value());
  sched_ = std::make_unique<Scheduler>(
      *this, cfg_.ncpus, cfg_.quantum, cfg_.pin_cpus, cfg_.kick_timeout, cfg_.sched_seed,
      cfg_.sched_strategy == KernelConfig::SchedStrategy::kPct, cfg_.pct_depth, cfg_.pct_steps);
  if (cfg_.sched_seed && (!cfg_.sched_record.empty() || !cfg_.sched_replay.empty()))
    sched_->open_log(cfg_.sched_record, cfg_.sched_replay, cfg_.on_replay_divergence);
  if (cfg_.sched_seed && !cfg_.sched_replay.empty())
    sched_->set_input_applier([this](const std::string& what) { return apply_input(what); });
  sched_->set_rt_priority(cfg_.rt_priority, cfg_.pin_realtime);
  sched_->start();
}

Kernel::~Kernel() {
  // Workers first: after this no vCPU touches an LWP, and the processes can
  // be dropped wholesale.
  sched_->stop();
  callout_.reset();
  MutexLock g(table_mu_);
  procs_.clear();
  debuggers_.clear();
}

KResult<ProcRef> Kernel::proc_create(ProcSpec spec) {
  assert(spec.port != nullptr);
  const uint32_t uid = spec.uid;
  TRY_OK(proc_slot_take(uid));
  auto pid = ids_->alloc_pid();
  if (!pid.ok()) {
    proc_slot_give(uid);
    return pid.error();
  }
  auto p = std::make_shared<Proc>(*this, pid.value(), std::move(spec));
  Lwp* main = nullptr;
  {
    DeferringProcLock g(*p);
    auto l = lwp_create(*p, nullptr, 0, 0, 0);
    if (!l.ok()) {
      ids_->free_pid(p->pid);
      proc_slot_give(uid);
      return l.error();
    }
    main = l.value();
    assert(main->lid == p->pid);
  }
  // Published while its only LWP is still an embryo, then started.
  {
    MutexLock t(table_mu_);
    procs_.emplace(p->pid, p);
  }
  DeferringProcLock g(*p);
  lwp_assert_locked(*main);
  lwp_start(*main, 0);
  return p;
}

const char* entry_status_name(EntryStatus s) {
  switch (s) {
    case EntryStatus::kOk:
      return "ok";
    case EntryStatus::kNoSuchLwp:
      return "no such LWP in this process";
    case EntryStatus::kNotInUserMode:
      return "LWP already has a pending kernel entry";
    case EntryStatus::kProcExited:
      return "process has exited";
    case EntryStatus::kBadArgs:
      return "request carries no syscall";
  }
  return "?";
}

namespace {

// Validate that `lid` may enter the kernel now and mark it as entered.
EntryStatus lwp_enter(Proc& p, lwpid_t lid, Lwp** out) REQUIRES(p.mu) {
  if (p.stat == ProcStat::kZomb) return EntryStatus::kProcExited;
  Lwp* l = p.find_lwp(lid);
  if (l == nullptr) return EntryStatus::kNoSuchLwp;
  lwp_assert_locked(*l);
  if (!l->user_mode()) return EntryStatus::kNotInUserMode;
  l->in_kernel = true;
  *out = l;
  return EntryStatus::kOk;
}

}  // namespace

EntryStatus Kernel::syscall(const ProcRef& p, lwpid_t lid, SysArgs args) {
  if (std::holds_alternative<std::monostate>(args)) return EntryStatus::kBadArgs;
  const bool trace_call =
      std::holds_alternative<PtraceArgs>(args) || std::holds_alternative<WaitArgs>(args);
  Scheduler::EntryGate gate(sched(), lid);  // outlives every lock taken below
  EntrySwitch es;                           // outlives g: its release runs entry_end
  {
    DeferringProcLock g(*p);
    Lwp* l = nullptr;
    EntryStatus st = lwp_enter(*p, lid, &l);
    if (st != EntryStatus::kOk) return st;
    lwp_assert_locked(*l);
    if (!trace_call) {
      sched().entry_begin(es, *l);
      Outcome o = sys_dispatch(*l, args);
      if (o.what == Outcome::kReturn) {
        l->ret = std::move(o.ret);
        lwp_userret(*l);
      }
      return EntryStatus::kOk;
    }
  }
  // The LWP stays LSONPROC in the kernel while the call locks other processes.
  trace_syscall(p, lid, args);
  return EntryStatus::kOk;
}

EntryStatus Kernel::trap(const ProcRef& p, lwpid_t lid) {
  Scheduler::EntryGate gate(sched(), lid);
  DeferringProcLock g(*p);
  Lwp* l = nullptr;
  EntryStatus st = lwp_enter(*p, lid, &l);
  if (st != EntryStatus::kOk) return st;
  lwp_assert_locked(*l);
  l->ret = SysReturn{.kind = ReturnKind::kResume};
  lwp_userret(*l);
  return EntryStatus::kOk;
}

// The outside inputs below pass an InputGate (deterministic mode: they take effect between
// two kernel events, and the schedule record keeps them; a replay refuses live ones with
// EBUSY and applies the record's, apply_input). Each records itself once it has acted, after
// its DeferringProcLock has run what the lock deferred.

KResult<void> Kernel::proc_signal(const ProcRef& p, int signo) {
  if (signo <= 0 || signo >= NB_NSIG) return Errno::kEINVAL;
  Scheduler::InputGate in(sched());
  if (in.refused()) return Errno::kEBUSY;
  {
    DeferringProcLock g(*p);
    if (p->stat == ProcStat::kZomb) return Errno::kESRCH;
    SigInfo si{.signo = signo, .code = NB_SI_USER, .pid = 0, .uid = 0};
    proc_post_signal(*p, nullptr, si);
  }
  in.record("signal " + std::to_string(p->pid) + " " + std::to_string(signo));
  return {};
}

KResult<LwpStat> Kernel::lwp_suspend_ext(const ProcRef& p, lwpid_t lid) {
  Scheduler::InputGate in(sched());
  if (in.refused()) return Errno::kEBUSY;
  LwpStat st;
  {
    DeferringProcLock g(*p);
    if (p->stat == ProcStat::kZomb || (p->sflag & PS_WEXIT)) return Errno::kESRCH;
    Lwp* t = p->find_lwp(lid);
    if (t == nullptr) return Errno::kESRCH;
    lwp_assert_locked(*t);
    // As _lwp_suspend: a debugger's suspension already holds it; nothing to arm.
    if (!(t->flag & LW_DBGSUSPEND)) lwp_suspend_arm(*t, nullptr);
    st = t->stat;
  }
  in.record("suspend " + std::to_string(p->pid) + " " + std::to_string(lid));
  return st;
}

KResult<LwpStat> Kernel::lwp_continue_ext(const ProcRef& p, lwpid_t lid) {
  Scheduler::InputGate in(sched());
  if (in.refused()) return Errno::kEBUSY;
  LwpStat st;
  {
    DeferringProcLock g(*p);
    Lwp* t = p->find_lwp(lid);
    if (t == nullptr) return Errno::kESRCH;
    lwp_assert_locked(*t);
    lwp_continue_target(*t);
    st = t->stat;
  }
  in.record("continue " + std::to_string(p->pid) + " " + std::to_string(lid));
  return st;
}

void Kernel::proc_abandon(const ProcRef& p) {
  // Always acts, replaying too: the user side is gone whatever the record says.
  Scheduler::InputGate in(sched(), /*always=*/true);
  {
    // Process exit already takes LWPs in user mode into the kernel itself.
    DeferringProcLock g(*p);
    if (p->stat == ProcStat::kZomb) return;
    proc_exit_begin(*p, ExitStatus{.signaled = true, .code = NB_SIGKILL}, nullptr);
  }
  in.record("abandon " + std::to_string(p->pid));
}

// A recorded input, replayed at its point (Scheduler::set_input_applier): "" when it acted as
// recorded, else how it differs.
std::string Kernel::apply_input(const std::string& what) {
  if (what.rfind("dbg-", 0) == 0) return apply_debugger_input(what);
  std::istringstream in(what);
  std::string op;
  pid_t pid = 0;
  int arg = 0;
  in >> op >> pid >> arg;
  const ProcRef p = proc_lookup(pid);
  if (p == nullptr) return "names no process of this run";
  if (op == "signal") {
    auto r = proc_signal(p, arg);
    return r.ok()
               ? ""
               : "failed: " + std::string("errno ") + std::to_string(static_cast<int>(r.error()));
  }
  if (op == "suspend" || op == "continue") {
    auto r = op == "suspend" ? lwp_suspend_ext(p, arg) : lwp_continue_ext(p, arg);
    return r.ok()
               ? ""
               : "failed: " + std::string("errno ") + std::to_string(static_cast<int>(r.error()));
  }
  if (op == "abandon") {
    proc_abandon(p);
    return "";
  }
  return "is not an input this daemon knows";
}

void Kernel::proc_set_sigrestart(const ProcRef& p, SigSet mask) {
  DeferringProcLock g(*p);
  p->sigrestart = mask;
}

KResult<void> Kernel::proc_release(const ProcRef& p) {
  {
    DeferringProcLock g(*p);
    if (p->stat != ProcStat::kZomb) return Errno::kEBUSY;
  }
  {
    MutexLock t(table_mu_);
    if (procs_.erase(p->pid) != 1) return {};
    ids_->free_pid(p->pid);
  }
  proc_slot_give(p->uid);
  return {};
}

// A process slot for `uid`, taken before the process exists and given back when it is
// released (a zombie still holds one, as on NetBSD). Errors: EAGAIN (kern.maxproc, its
// root reserve for other uids, or RLIMIT_NPROC, which root bypasses).
KResult<void> Kernel::proc_slot_take(uint32_t uid) {
  MutexLock t(table_mu_);
  const int limit = uid == 0 ? cfg_.maxproc : cfg_.maxproc - NPROC_ROOT_RESERVE;
  if (nprocs_ >= limit) return Errno::kEAGAIN;
  int& mine = uid_nproc_[uid];
  if (uid != 0 && mine >= cfg_.maxuprc) {
    if (mine == 0) uid_nproc_.erase(uid);
    return Errno::kEAGAIN;
  }
  mine++;
  nprocs_++;
  return {};
}

void Kernel::proc_slot_give(uint32_t uid) {
  MutexLock t(table_mu_);
  auto it = uid_nproc_.find(uid);
  assert(it != uid_nproc_.end() && it->second > 0 && nprocs_ > 0);
  if (--it->second == 0) uid_nproc_.erase(it);
  nprocs_--;
}

LimitInfo Kernel::snapshot_limits() const {
  LimitInfo li{
      .maxproc = cfg_.maxproc,
      .maxuprc = cfg_.maxuprc,
      .nthr_per_uid = cfg_.nthr_per_uid >= 0 ? cfg_.nthr_per_uid : std::min(cfg_.maxlwp, MAXUPRC),
      .unresponsive_kills = unresponsive_kills_.load(std::memory_order_relaxed)};
  std::map<uint32_t, UidUsage> by_uid;
  {
    MutexLock t(table_mu_);
    for (const auto& [uid, n] : uid_nproc_) by_uid[uid] = UidUsage{.uid = uid, .nprocs = n};
  }
  {
    MutexLock g(uid_mu_);
    for (const auto& [uid, n] : uid_nthr_)
      if (n > 0) {
        by_uid[uid].uid = uid;
        by_uid[uid].nthr = n;
      }
  }
  for (const auto& [uid, u] : by_uid) li.uids.push_back(u);
  return li;
}

ProcRef Kernel::proc_lookup(pid_t pid) const {
  MutexLock t(table_mu_);
  auto it = procs_.find(pid);
  return it == procs_.end() ? nullptr : it->second;
}

ProcRef Kernel::tracer_lookup(pid_t pid) const {
  MutexLock t(table_mu_);
  if (auto it = procs_.find(pid); it != procs_.end()) return it->second;
  auto it = debuggers_.find(pid);
  return it == debuggers_.end() ? nullptr : it->second;
}

pid_t Kernel::proc_pid(const ProcRef& p) const { return p->pid; }

uint64_t Kernel::sched_realtime_preemptions() const { return sched_->realtime_preemptions(); }

std::string Kernel::sched_replay_divergence() const { return sched_->replay_divergence(); }

void Kernel::emit(KEvent e) const {
  if (cfg_.observer == nullptr) return;
  e.seq = event_seq_.fetch_add(1, std::memory_order_relaxed) + 1;
  e.time_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::steady_clock::now().time_since_epoch())
                  .count();
  cfg_.observer->on_event(e);
}

bool Kernel::uid_nthr_add(uint32_t uid, int limit) {
  MutexLock g(uid_mu_);
  int& n = uid_nthr_[uid];
  if (n + 1 > limit) return false;
  n++;
  return true;
}

void Kernel::uid_nthr_sub(uint32_t uid) {
  MutexLock g(uid_mu_);
  int& n = uid_nthr_[uid];
  assert(n > 0);
  n--;
}

// ---- inspection ----------------------------------------------------------------------

namespace {

ProcInfo proc_info_locked(const Proc& p) REQUIRES(p.mu) {
  ProcInfo pi;
  pi.pid = p.pid;
  pi.uid = p.uid;
  pi.comm = p.comm;
  pi.stat = p.stat;
  pi.nlwps = p.nlwps;
  pi.nrlwps = p.nrlwps;
  pi.nzlwps = p.nzlwps;
  pi.ndlwps = p.ndlwps;
  pi.nlwpwait = p.nlwpwait;
  if (p.lwpctl) pi.lwpctl_path = p.lwpctl->path();
  for (const Lwp* l : p.order) {
    lwp_assert_locked(*l);
    LwpInfo li;
    li.lid = l->lid;
    li.stat = l->stat;
    li.flag = l->flag;
    li.cpu = l->cpu;
    li.priority = l->eff_prio();
    li.policy = l->policy;
    li.name = l->name.value_or("");
    li.wchan = sleep_wchan(l->sleep.kind);
    li.detached = l->detached;
    li.in_kernel = l->in_kernel;
    li.switches = l->switches;
    if (l->lwpctl_slot >= 0) {
      li.lc_pctr = p.lwpctl->pctr(l->lwpctl_slot);
      li.lc_curcpu = p.lwpctl->curcpu(l->lwpctl_slot);
    }
    pi.lwps.push_back(std::move(li));
  }
  return pi;
}

}  // namespace

std::vector<ProcInfo> Kernel::snapshot_procs() const {
  std::vector<ProcRef> procs;
  {
    MutexLock t(table_mu_);
    for (auto& [pid, p] : procs_) procs.push_back(p);
  }
  std::vector<ProcInfo> out;
  for (auto& p : procs) {
    DeferringProcLock g(*p);
    out.push_back(proc_info_locked(*p));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.pid < b.pid; });
  return out;
}

std::optional<ProcInfo> Kernel::snapshot_proc(pid_t pid) const {
  ProcRef p = proc_lookup(pid);
  if (!p) return std::nullopt;
  DeferringProcLock g(*p);
  return proc_info_locked(*p);
}

std::vector<CpuInfo> Kernel::snapshot_cpus() const { return sched_->snapshot(); }

// ---- invariants ----------------------------------------------------------------------

std::string Kernel::check_debuggers(const std::vector<ProcRef>& dbgs) const {
  std::ostringstream err;
  for (const auto& dr : dbgs) {
    DeferringProcLock g(*dr);
    const Proc& d = *dr;
    d.mu.AssertHeld();
    if (!d.is_debugger()) return "pid " + std::to_string(d.pid) + " in the debugger table";
    const DebuggerState& ds = *d.dbg;
    if (d.nlwps != 0 || !d.lwps.empty() || !d.order.empty()) err << "debugger with LWPs; ";
    if (d.traced.tracer != 0) err << "debugger is traced; ";
    if (ds.calls < 0) err << "negative call count; ";
    if (ds.closed && (!d.tracing.tracees.empty() || !ds.waiters.empty() || !ds.exits.empty()))
      err << "closed debugger still traces, waits or keeps exits; ";
    for (const auto& [tpid, q] : ds.exits)
      if (q == nullptr || q->pid != tpid) err << "kept exit " << tpid << " is wrong; ";
    for (const auto& [tpid, q] : d.tracing.tracees)
      if (q == nullptr || q->pid != tpid || q->is_debugger())
        err << "tracee map entry " << tpid << " is wrong; ";
    if (std::string e = err.str(); !e.empty())
      return "debugger " + std::to_string(d.pid) + ": " + e;
  }
  return "";
}

namespace {

// What check_proc() recounts from the LWPs themselves.
struct LwpCounts {
  int nlwps = 0, nrlwps = 0, nzlwps = 0, ndlwps = 0, nlwpwait = 0, lwpcv = 0;
};

// One LWP: its state against its sleep, its vCPU and its _lwp_wait bookkeeping.
void check_lwp(const Proc& p, const Lwp& l, LwpCounts& c, std::ostream& err) REQUIRES(p.mu) {
  lwp_assert_locked(l);
  const LwpStat s = l.stat;
  c.nlwps++;
  if (s == LwpStat::kIdl || s == LwpStat::kRun || s == LwpStat::kOnProc || s == LwpStat::kSleep)
    c.nrlwps++;
  if (s == LwpStat::kZomb || l.exiting) c.nzlwps++;
  if (l.detached) c.ndlwps++;
  if (l.in_lwpwait) c.nlwpwait++;
  if (l.sleep.on_lwpcv) c.lwpcv++;
  const bool sleeping = l.sleep.kind != SleepKind::kNone;
  if (s == LwpStat::kSleep && !sleeping) err << "lwp " << l.lid << " LSSLEEP without a sleep; ";
  if ((s == LwpStat::kRun || s == LwpStat::kOnProc || s == LwpStat::kZomb ||
       s == LwpStat::kSuspended) &&
      sleeping)
    err << "lwp " << l.lid << " " << lwp_stat_name(s) << " with a sleep; ";
  if (sleeping && l.sleep.on_lwpcv != sleep_class(l.sleep.kind).on_lwpcv())
    err << "lwp " << l.lid << " on the wrong queue for its sleep; ";
  if (s == LwpStat::kOnProc && l.cpu < 0) err << "lwp " << l.lid << " ONPROC without cpu; ";
  if (s != LwpStat::kOnProc && !l.in_kernel && s != LwpStat::kZomb)
    err << "lwp " << l.lid << " in user mode while " << lwp_stat_name(s) << "; ";
  if (l.in_lwpwait != (l.sleep.kind == SleepKind::kLwpWait) && s != LwpStat::kOnProc)
    err << "lwp " << l.lid << " lwpwait bookkeeping off; ";
  if (p.lwps.count(l.lid) != 1) err << "lwp " << l.lid << " not in the map; ";
}

// The process's state against its flags and LWPs (kern_lwp.cc's process-state machine).
void check_proc_state(const Proc& p, int nlwps, std::ostream& err) REQUIRES(p.mu) {
  if (p.stat == ProcStat::kIdl) err << "process in SIDL; ";
  if (p.stat == ProcStat::kZomb && nlwps != 0) err << "exited process still has LWPs; ";
  if ((p.sflag & PS_WEXIT) && p.stat != ProcStat::kDying && p.stat != ProcStat::kZomb)
    err << "exiting process is " << proc_stat_name(p.stat) << "; ";
  if (p.stat == ProcStat::kDying && !(p.sflag & PS_WEXIT)) err << "SDYING without PS_WEXIT; ";
  if ((p.sflag & PS_STOPPING) && p.stat != ProcStat::kActive)
    err << "stopping process is " << proc_stat_name(p.stat) << "; ";
  if (const Lwp* z = p.zomblwp) {
    lwp_assert_locked(*z);
    if (z->stat != LwpStat::kZomb || !z->detached) err << "p_zomblwp holds a non-zombie; ";
  }
}

// The tracee and tracer sides of one process.
void check_proc_tracing(const Proc& p, std::ostream& err) REQUIRES(p.mu) {
  if (p.traced.waited && p.traced.xsig == 0) err << "trace stop collected without a signal; ";
  if (p.traced.tracer == 0 &&
      (p.traced.xsig != 0 || p.traced.events != 0 || !p.traced.sigq.empty()))
    err << "untraced process with trace state; ";
  if (p.traced.tracer == p.pid) err << "process traces itself; ";
  for (const auto& [tpid, q] : p.tracing.tracees)
    if (q == nullptr || q->pid != tpid) err << "tracee map entry " << tpid << " is wrong; ";
}

// Everything about one process: the LWPs, the counters recomputed from them, the state.
std::string check_proc(const Proc& p) REQUIRES(p.mu) {
  std::ostringstream err;
  if (p.is_debugger()) err << "debugger in the process table; ";
  LwpCounts c;
  for (const Lwp* l : p.order) check_lwp(p, *l, c, err);
  if (static_cast<size_t>(c.nlwps) != p.lwps.size()) err << "order/map size mismatch; ";
  auto cmp = [&](const char* what, int have, int want) {
    if (have != want) err << what << " is " << have << ", recomputed " << want << "; ";
  };
  cmp("nlwps", p.nlwps, c.nlwps);
  cmp("nrlwps", p.nrlwps, c.nrlwps);
  cmp("nzlwps", p.nzlwps, c.nzlwps);
  cmp("ndlwps", p.ndlwps, c.ndlwps);
  cmp("nlwpwait", p.nlwpwait, c.nlwpwait);
  cmp("lwpcv sleepers", static_cast<int>(p.lwpcv_sleepers.size()), c.lwpcv);
  check_proc_state(p, c.nlwps, err);
  check_proc_tracing(p, err);
  std::string e = err.str();
  return e.empty() ? e : "pid " + std::to_string(p.pid) + ": " + e;
}

}  // namespace

// The table's own counts; copies out the processes and debuggers to check one by one.
std::string Kernel::check_table(std::vector<ProcRef>& procs, std::vector<ProcRef>& dbgs) const {
  MutexLock g(table_mu_);
  for (auto& [pid, p] : procs_) procs.push_back(p);
  for (auto& [pid, d] : debuggers_) {
    dbgs.push_back(d);
    if (procs_.count(pid) != 0) return "debugger pid " + std::to_string(pid) + " is a process";
  }
  // Slots are taken before a process is published: at least as many as the table holds.
  std::unordered_map<uint32_t, int> by_uid;
  for (auto& [pid, p] : procs_) by_uid[p->uid]++;
  if (nprocs_ < static_cast<int>(procs_.size()))
    return "nprocs " + std::to_string(nprocs_) + " < table " + std::to_string(procs_.size());
  for (auto& [uid, n] : by_uid) {
    auto it = uid_nproc_.find(uid);
    if (it == uid_nproc_.end() || it->second < n)
      return "uid " + std::to_string(uid) + " holds fewer process slots than processes";
  }
  return "";
}

std::string Kernel::check_invariants() const {
  std::vector<ProcRef> procs, dbgs;
  if (std::string e = check_table(procs, dbgs); !e.empty()) return e;
  if (std::string e = check_debuggers(dbgs); !e.empty()) return e;
  for (auto& pr : procs) {
    DeferringProcLock g(*pr);
    pr->mu.AssertHeld();
    if (std::string e = check_proc(*pr); !e.empty()) return e;
  }
  return "";
}

}  // namespace lwpd::emul
