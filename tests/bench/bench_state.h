// lwpd_bench's own state, shared by its parts: bench.cc (the micro-benchmarks and main),
// bench_m5.cc (M5, many parked LWPs) and bench_report.cc (the final table). The figures and
// the process layout are described at the top of bench.cc.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace lwpd::bench {

// ---- configuration (set in main before any fork) -----------------------------------------

struct Config {
  bool quick = false;
  int reps = 5;
  double min_time = 0.5;
  int m5_procs = 100;
  int m5_lwps = 1000;  // per process, the main LWP included
  int idle_ms = 2000;
  bool m5 = true;
  bool det = true;         // the deterministic-mode pass (--no-det: skip it)
  std::string transport;   // --transport: only this one ("grpc", "shm"); empty: both
  bool check = false;      // --check: compare with the latency budget
  double tolerance = 1.0;  // --check fails for a figure beyond tolerance x its budget
  int cpus = 2;
  std::string lwpd = LWPD_BINARY;
  std::vector<std::string> bench_args;  // passed to Google Benchmark
};
inline Config g_cfg;

inline pid_t g_daemon_pid = -1;
inline pid_t g_echo_pid = -1;
inline std::string g_lwpd_ep;  // unix:///.../lwpd.sock
inline std::string g_echo_ep;

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "lwpd_bench[%d]: %s failed: %s\n", getpid(), what, strerror(errno));
  fflush(stderr);
  _exit(1);
}

// ---- M5 ------------------------------------------------------------------------------------

struct M5Result {
  bool ok = false;
  int procs = 0, lwps = 0, parked = 0;
  int64_t rss_before = 0, rss_after = 0, stats_rss = 0;
  int threads_before = 0, threads_after = 0;
  double setup_s = 0, idle_cpu_pct = 0, idle_cpu_pct_ticks = 0, idle_s = 0;
  double idle_csw_per_s = 0, teardown_s = 0;
};

// 100,000 (by default, or as many as the host allows) parked LWPs across 100 processes: the
// daemon's RSS per LWP and CPU while idle (bench_m5.cc).
M5Result run_m5();

// The final table, each figure beside its baseline (bench_report.cc): `res` holds the
// medians by "<transport>/<benchmark>", `m5` M5 by transport. True if every figure the run
// asked for was produced.
bool report(const std::map<std::string, double>& res, const std::map<std::string, M5Result>& m5);

// --check: every budgeted figure of the last report() against its budget; the number that
// exceed `tolerance` times it.
int check_budgets(double tolerance);

// Deterministic mode's cost: M1-M3 over shm against a daemon started with --sched-seed
// ("det/<benchmark>" in `res`) beside the same figures of the normal daemon ("shm/...").
void report_det(const std::map<std::string, double>& res);

}  // namespace lwpd::bench
