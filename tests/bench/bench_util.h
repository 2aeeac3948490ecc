// Support for lwpd_bench: child processes, /proc readings, the baseline echo server, the
// final table. Nothing here talks to lwpd through the shim.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lwpd::bench {

// ---- processes -------------------------------------------------------------------------

// fork + exec `argv`; the child gets its own process group only if `setpgrp`.
pid_t spawn_exec(const std::vector<std::string>& argv);
// Wait until the unix socket `path` exists (the server is listening) or `pid` died.
bool wait_socket(const std::string& path, pid_t pid, int timeout_ms);
// waitpid with a timeout; false on timeout (the process is left alone).
bool wait_pid(pid_t pid, int timeout_ms, int* status);
// SIGTERM, then SIGKILL after `grace_ms`; reaps the process.
void stop_process(pid_t pid, int grace_ms);
std::string describe_status(int st);

// ---- /proc readings --------------------------------------------------------------------

struct ProcSnap {
  uint64_t cpu_ns = 0;  // on-CPU time of all threads (schedstat), ns
  uint64_t ticks = 0;   // utime + stime (clock ticks), from /proc/<pid>/stat
  uint64_t vcsw = 0;    // voluntary context switches, all threads
  uint64_t ivcsw = 0;   // involuntary context switches, all threads
  int threads = 0;
  // The same per thread name (comm): e.g. lwpd-cpu0, nexting_thread (gRPC's callback
  // threads, where reactions run), default-executo.
  struct Part {
    uint64_t cpu_ns = 0, csw = 0;
    int threads = 0;
  };
  std::map<std::string, Part> by_comm;
};
ProcSnap snap_proc(pid_t pid);
// The whole of a (small) file, e.g. under /proc; empty if it cannot be read.
std::string slurp(const std::string& path);
// Resident set size in bytes (/proc/<pid>/statm).
int64_t rss_bytes(pid_t pid);
long clock_ticks_per_s();

// Monotonic time in ns.
uint64_t now_ns();

// ---- the baseline service --------------------------------------------------------------

// Serve lwpd.bench.v1.Echo on `listen` (callback API, as lwpd serves its channels) until
// SIGTERM/SIGINT. Returns the process exit code.
int run_echo_server(const std::string& listen);

// ---- results ---------------------------------------------------------------------------

double median(std::vector<double> v);

// "key value" lines over a pipe, from a measuring child to the parent.
void put_result(int fd, const std::string& key, double value);
std::map<std::string, double> read_results(int fd);

// A short text of the machine: lscpu model name, CPUs, kernel.
std::string machine_summary();

}  // namespace lwpd::bench
