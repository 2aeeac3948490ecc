// lwpd_bench, M5: many parked LWPs (see bench.cc's top comment and docs/PERFORMANCE.md).

// Generated headers before <signal.h> users (sigmask macro vs LwpCreateArgs::sigmask()).
#include "lwpd/v1/kernel.grpc.pb.h"
#undef sigmask

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <lwpd/lwp.h>

#include "bench_state.h"
#include "bench_util.h"

namespace lwpd::bench {

namespace pb = ::lwpd::v1;

namespace {

// ---- M5: many parked LWPs ----------------------------------------------------------------

void lwp_parker(void*) {
  for (;;) _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr);
}

[[noreturn]] void m5_child(int ready_fd, int nlwps) {
  if (lwpd_attach(g_lwpd_ep.c_str()) != 0) die("lwpd_attach");
  constexpr size_t kStack = 16 * 1024;
  // Created suspended, then continued: see docs/PERFORMANCE.md (M5). A new LWP that is
  // dispatched before the creator's _lwp_create has returned to user mode holds its vCPU
  // with no host thread behind it (the shim starts that thread only after the return); if
  // the creator is preempted at that return, neither can go on, and with 100 processes on
  // 2 vCPUs the whole daemon stalls. LWP_SUSPENDED keeps the new LWP off the vCPUs until
  // its thread exists.
  for (int i = 1; i < nlwps; i++) {
    char* stack = static_cast<char*>(malloc(kStack));
    if (stack == nullptr) die("malloc");
    ucontext_t uc;
    _lwp_makecontext(&uc, lwp_parker, nullptr, nullptr, stack, kStack);
    lwpid_t lid = 0;
    if (_lwp_create(&uc, LWP_SUSPENDED, &lid) != 0) die("_lwp_create");
    if (_lwp_continue(lid) != 0) die("_lwp_continue");
  }
  (void)!write(ready_fd, "r", 1);
  close(ready_fd);
  lwp_parker(nullptr);
  _exit(0);
}

// Parked LWPs of the daemon's processes, per Inspect (state LSSLEEP, wchan "parked").
int count_parked(pb::Inspect::Stub& insp, int* nprocs) {
  grpc::ClientContext c1;
  pb::ListProcsReply procs;
  if (!insp.ListProcs(&c1, pb::ListProcsRequest(), &procs).ok()) return -1;
  *nprocs = procs.procs_size();
  int parked = 0;
  for (const auto& p : procs.procs()) {
    grpc::ClientContext c2;
    pb::ListLwpsRequest rq;
    rq.set_pid(p.pid());
    pb::ListLwpsReply rep;
    if (!insp.ListLwps(&c2, rq, &rep).ok()) continue;
    for (const auto& l : rep.proc().lwps())
      if (l.state() == pb::LSSLEEP && l.wchan() == "parked") parked++;
  }
  return parked;
}

// A number file under /proc/sys; -1 if absent.
long read_long(const char* path) {
  const std::string text = slurp(path);
  return text.empty() ? -1 : strtol(text.c_str(), nullptr, 10);
}

// How many more host threads this host lets exist at once: every LWP of M5 is one (a
// thread of its process, as the shim runs it), and Linux counts them against
// kernel.pid_max and kernel.threads-max, and a non-root user's against RLIMIT_NPROC.
// A margin is left for everything else that starts meanwhile. Sets *why to the binding one.
long host_thread_room(std::string* why) {
  long tasks = 0;  // /proc/loadavg: "0.00 0.01 0.05 1/234 5678"
  if (sscanf(slurp("/proc/loadavg").c_str(), "%*s %*s %*s %*d/%ld", &tasks) != 1) tasks = 0;
  constexpr long kMargin = 2000;
  long room = LONG_MAX;
  auto limit = [&](long total, const char* name, const char* raise) {
    if (total > 0 && total - tasks - kMargin < room) {
      room = total - tasks - kMargin;
      *why = std::string(name) + " is " + std::to_string(total) + "; raise it with " + raise;
    }
  };
  limit(read_long("/proc/sys/kernel/pid_max"), "kernel.pid_max",
        "`sysctl -w kernel.pid_max=4194304`");
  limit(read_long("/proc/sys/kernel/threads-max"), "kernel.threads-max",
        "`sysctl -w kernel.threads-max=N`");
  struct rlimit rl;
  if (geteuid() != 0 && getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    limit(static_cast<long>(rl.rlim_cur), "RLIMIT_NPROC", "`ulimit -u N`");
  return std::max(0L, room);
}

}  // namespace

M5Result run_m5() {
  M5Result r;
  r.procs = g_cfg.m5_procs;
  int per_proc = g_cfg.m5_lwps;
  std::string why;
  const long room = host_thread_room(&why);
  if (long{r.procs} * per_proc > room) {
    per_proc = std::max(1, static_cast<int>(room / r.procs));
    printf("\nM5: %d x %d LWPs cannot exist at once on this host (%s); running %d x %d\n", r.procs,
           g_cfg.m5_lwps, why.c_str(), r.procs, per_proc);
  }
  r.lwps = r.procs * per_proc;
  r.rss_before = rss_bytes(g_daemon_pid);
  r.threads_before = snap_proc(g_daemon_pid).threads;
  printf("\nM5: %d processes x %d LWPs, parked (daemon RSS before: %.1f MiB, %d threads)\n",
         r.procs, per_proc, r.rss_before / 1048576.0, r.threads_before);
  fflush(stdout);

  int pfd[2];
  if (pipe(pfd) != 0) die("pipe");
  const uint64_t t0 = now_ns();
  std::vector<pid_t> kids;
  for (int i = 0; i < r.procs; i++) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      close(pfd[0]);
      m5_child(pfd[1], per_proc);
    }
    kids.push_back(pid);
  }
  close(pfd[1]);
  int ready = 0;
  // Over gRPC 100,000 LWPs take about 150 s here (about 60 over shm): 4 ms each is ample.
  const uint64_t deadline =
      now_ns() + (g_cfg.quick ? 60'000ull : 120'000ull + 4ull * r.lwps) * 1'000'000ull;
  while (ready < r.procs && now_ns() < deadline) {
    struct pollfd p = {pfd[0], POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    char buf[256];
    ssize_t n = read(pfd[0], buf, sizeof buf);
    if (n <= 0) break;  // every child is gone
    ready += static_cast<int>(n);
  }
  close(pfd[0]);

  // From here on this process uses gRPC; it forks no more.
  auto insp =
      pb::Inspect::NewStub(grpc::CreateChannel(g_lwpd_ep, grpc::InsecureChannelCredentials()));
  int nprocs = 0;
  while (ready == r.procs && now_ns() < deadline) {
    r.parked = count_parked(*insp, &nprocs);
    if (r.parked >= r.lwps) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  r.setup_s = (now_ns() - t0) / 1e9;
  if (ready != r.procs || r.parked < r.lwps) {
    fprintf(stderr, "M5: only %d/%d processes ready, %d/%d LWPs parked\n", ready, r.procs, r.parked,
            r.lwps);
    grpc::ClientContext c;
    pb::ListCpusReply cpus;
    if (insp->ListCpus(&c, pb::ListCpusRequest(), &cpus).ok())
      for (const auto& cpu : cpus.cpus())
        fprintf(stderr, "M5: vCPU %d runs %d.%d, %d queued, %" PRIu64 " preemptions\n", cpu.index(),
                cpu.cur_pid(), cpu.cur_lid(), cpu.runq_len(), cpu.preemptions());
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(g_cfg.quick ? 100 : 500));
    const ProcSnap s0 = snap_proc(g_daemon_pid);
    const uint64_t w0 = now_ns();
    std::this_thread::sleep_for(std::chrono::milliseconds(g_cfg.idle_ms));
    const ProcSnap s1 = snap_proc(g_daemon_pid);
    const uint64_t w1 = now_ns();
    r.idle_s = (w1 - w0) / 1e9;
    r.idle_cpu_pct = 100.0 * (s1.cpu_ns - s0.cpu_ns) / (w1 - w0);
    r.idle_cpu_pct_ticks = 100.0 * (s1.ticks - s0.ticks) / clock_ticks_per_s() / r.idle_s;
    r.idle_csw_per_s = ((s1.vcsw + s1.ivcsw) - (s0.vcsw + s0.ivcsw)) / r.idle_s;
    r.rss_after = rss_bytes(g_daemon_pid);
    r.threads_after = s1.threads;
    grpc::ClientContext c;
    pb::StatsReply st;
    if (insp->Stats(&c, pb::StatsRequest(), &st).ok()) r.stats_rss = st.rss_bytes();
    r.ok = true;
  }
  // Tear down: the sessions break, the daemon kills the processes.
  const uint64_t k0 = now_ns();
  for (pid_t k : kids) kill(k, SIGKILL);
  for (pid_t k : kids) waitpid(k, nullptr, 0);
  for (int i = 0; i < 600; i++) {
    grpc::ClientContext c;
    pb::StatsReply st;
    if (insp->Stats(&c, pb::StatsRequest(), &st).ok() && st.nprocs() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  r.teardown_s = (now_ns() - k0) / 1e9;
  printf("M5: setup %.1f s, %d LWPs parked in %d processes; idle window %.2f s; teardown %.1f s\n",
         r.setup_s, r.parked, nprocs, r.idle_s, r.teardown_s);
  return r;
}

}  // namespace lwpd::bench
