// lwpd_bench: the final table, each figure beside its baseline measured in the same run.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <lwpd/lwp.h>

#include "bench_state.h"
#include "bench_util.h"

namespace lwpd::bench {

namespace {

// ---- the report --------------------------------------------------------------------------

struct Row {
  std::string figure, lwpd, baseline, ratio, target, met;
  // The published budget, for --check: the figure's value over its budget (NaN: none or
  // not measured), e.g. ratio / target ratio, or microseconds / budget microseconds.
  double over = NAN;
};

// Every budgeted row of the run, by transport, for check_budgets().
std::vector<std::pair<std::string, Row>> g_budgeted;

std::string fmt(const char* f, double v) {
  char b[64];
  snprintf(b, sizeof b, f, v);
  return b;
}

void print_table(const std::vector<Row>& rows) {
  const char* hdr[] = {"figure", "lwpd", "baseline", "ratio", "target", "met?"};
  size_t w[6];
  for (int i = 0; i < 6; i++) w[i] = strlen(hdr[i]);
  for (const auto& r : rows) {
    const std::string* c[] = {&r.figure, &r.lwpd, &r.baseline, &r.ratio, &r.target, &r.met};
    for (int i = 0; i < 6; i++) w[i] = std::max(w[i], c[i]->size());
  }
  auto line = [&](const std::string* c[]) {
    printf("|");
    for (int i = 0; i < 6; i++) printf(" %-*s |", static_cast<int>(w[i]), c[i]->c_str());
    printf("\n");
  };
  std::string h[6];
  for (int i = 0; i < 6; i++) h[i] = hdr[i];
  const std::string* hc[] = {&h[0], &h[1], &h[2], &h[3], &h[4], &h[5]};
  line(hc);
  printf("|");
  for (int i = 0; i < 6; i++) printf("%s|", std::string(w[i] + 2, '-').c_str());
  printf("\n");
  for (const auto& r : rows) {
    const std::string* c[] = {&r.figure, &r.lwpd, &r.baseline, &r.ratio, &r.target, &r.met};
    line(c);
  }
}

using Getter = std::function<double(const std::string&)>;

std::string us(double ns) { return std::isnan(ns) ? std::string("n/a") : fmt("%.1f us", ns / 1e3); }

Row ratio_row(const std::string& fig, double l, double b, const std::string& bname, double target) {
  Row r{fig, us(l), us(b) + " (" + bname + ")", "n/a", "none", "-"};
  if (!std::isnan(l) && !std::isnan(b) && b > 0) r.ratio = fmt("%.2f", l / b);
  if (target > 0) {
    r.target = fmt("<= %.2f", target);
    r.met = r.ratio == "n/a" ? "n/a" : (l / b <= target ? "yes" : "NO");
    if (r.ratio != "n/a") r.over = l / b / target;
  }
  return r;
}

// A figure with an absolute budget (no baseline): `v` and `budget` in ns.
Row abs_row(const std::string& fig, double v, const std::string& what, double budget) {
  Row r{fig, us(v), what, "-", "<= " + us(budget), "n/a"};
  if (!std::isnan(v)) {
    r.met = v <= budget ? "yes" : "NO";
    r.over = v / budget;
  }
  return r;
}

void m5_rows(const M5Result* m5, double rss_target_kib, std::vector<Row>* rows) {
  Row rss{"M5 daemon RSS per parked LWP", "n/a", "-", "-", "none", "-"};
  Row cpu{"M5 daemon CPU, all parked, idle", "n/a", "-", "-", "~0% (< 1%)", "n/a"};
  // How many were parked at once, and how long setting them up and tearing them down took.
  // Its budget is the 100,000 (over: 100,000 / parked); a smaller run, asked for or
  // fitted to the host's room for threads, is over it.
  Row count{"M5 LWPs parked at once: set up, torn down", "n/a", "-", "-", "none", "-"};
  if (rss_target_kib > 0) {
    rss.target = fmt("<= %.0f KiB", rss_target_kib);
    count.target = "100,000";
  }
  if (m5 != nullptr && m5->ok) {
    count.lwpd = fmt("%.0f", m5->parked) + fmt(" in %.0f processes", m5->procs);
    count.baseline = fmt("%.1f s", m5->setup_s) + fmt(", %.1f s", m5->teardown_s);
    if (rss_target_kib > 0 && m5->parked > 0) {
      count.met = m5->parked >= 100000                             ? "yes"
                  : long{g_cfg.m5_procs} * g_cfg.m5_lwps >= 100000 ? "NO (host)"
                                                                   : "smaller run";
      count.over = 100000.0 / m5->parked;
    }
    const double per = double(m5->rss_after - m5->rss_before) / m5->lwps;
    rss.lwpd = fmt("%.1f KiB", per / 1024);
    rss.baseline = fmt("%.1f MiB before", m5->rss_before / 1048576.0) +
                   fmt(", %.1f MiB after", m5->rss_after / 1048576.0);
    // Each M5 has a fresh daemon, whose first processes bring fixed costs (arenas, thread
    // stacks, regions): below 10,000 LWPs they weigh more than the LWPs do (--quick: 40).
    if (rss_target_kib > 0 && m5->lwps < 10000) {
      rss.met = "small run";
    } else if (rss_target_kib > 0) {
      rss.met = per / 1024 <= rss_target_kib ? "yes" : "NO";
      rss.over = per / 1024 / rss_target_kib;
    }
    cpu.lwpd = fmt("%.3f%% of a CPU", m5->idle_cpu_pct);
    cpu.baseline = fmt("%.0f ctx switches/s", m5->idle_csw_per_s);
    cpu.met = m5->idle_cpu_pct < 1.0 ? "yes" : "NO";
    cpu.over = m5->idle_cpu_pct / 1.0;
  }
  rows->push_back(count);
  rows->push_back(rss);
  rows->push_back(cpu);
}

// The gRPC transport's rows: against the bare gRPC stream it rides on.
std::vector<Row> grpc_rows(const Getter& get, const M5Result* m5) {
  const double b0 = get("B0_bare_stream_rtt");
  std::vector<Row> rows;
  rows.push_back(ratio_row("M1 null syscall (_lwp_getprivate)", get("M1_lwpd_getprivate"), b0,
                           "bare stream RTT", 1.25));
  rows.push_back(ratio_row("M2 park/unpark hand-off (per hand-off)",
                           get("M2_lwpd_park_handoff_x2") / 2, b0, "bare stream RTT", 1.5));
  rows.push_back(
      ratio_row("M1 from a signal handler (proxy thread)", get("M1s_lwpd_getprivate_from_handler"),
                get("M1_lwpd_getprivate") + get("B1s_self_signal"), "M1 + self-signal", 0));
  rows.push_back(ratio_row("M1 with a slow watcher (overflowing)",
                           get("M1w_lwpd_getprivate_slow_watcher"), get("M1_lwpd_getprivate"),
                           "M1, no watcher", 1.10));
  rows.push_back(ratio_row("M2 with a slow watcher (overflowing)",
                           get("M2w_lwpd_park_handoff_x2_slow_watcher") / 2,
                           get("M2_lwpd_park_handoff_x2") / 2, "M2, no watcher", 1.10));
  rows.push_back(ratio_row("M3 _lwp_create + _lwp_wait", get("M3_lwpd_create_wait"),
                           get("B3_pthread_create_join") + b0, "pthread create+join + RTT", 0));
  rows.push_back(ratio_row("M4 _lwp_suspend of a spinning LWP", get("M4_lwpd_suspend_spinning"),
                           get("B4_signal_stop_rtt") + b0, "signal stop RTT + RTT", 0));
  if (g_cfg.m5) m5_rows(m5, 0, &rows);
  return rows;
}

// The shared-memory transport's rows: against the futex floor (issue 10's budget).
std::vector<Row> shm_rows(const Getter& get, const M5Result* m5) {
  const double floor = get("B1p_futex_rtt_procs_one_cpu");
  std::vector<Row> rows;
  const double m1 = get("M1_lwpd_getprivate");
  rows.push_back(
      ratio_row("M1 null syscall (_lwp_getprivate)", m1, floor, "futex RTT, 2 procs, 1 CPU", 3.0));
  rows.push_back(ratio_row("M1 null syscall (_lwp_getprivate)", m1, get("B0_bare_stream_rtt"),
                           "bare stream RTT", 0.25));
  rows.push_back(ratio_row("M2 park/unpark hand-off round trip (2 hand-offs)",
                           get("M2_lwpd_park_handoff_x2"), floor, "futex RTT, 2 procs, 1 CPU",
                           5.0));
  rows.push_back(ratio_row("M1 from a signal handler (proxy thread)",
                           get("M1s_lwpd_getprivate_from_handler"), m1 + get("B1s_self_signal"),
                           "M1 + self-signal", 0));
  rows.push_back(ratio_row("M1 with a slow watcher (overflowing)",
                           get("M1w_lwpd_getprivate_slow_watcher"), m1, "M1, no watcher", 1.10));
  rows.push_back(ratio_row("M3 _lwp_create + _lwp_wait", get("M3_lwpd_create_wait"),
                           get("B3_pthread_create_join"), "pthread create+join", 3.0));
  rows.push_back(ratio_row("M4 _lwp_suspend of a spinning LWP", get("M4_lwpd_suspend_spinning"),
                           get("B4_signal_stop_rtt"), "signal stop RTT", 0));
  rows.push_back(abs_row(
      "M4 _lwp_suspend of a spinning LWP, p99", get("M4_lwpd_suspend_spinning:p99_us") * 1e3,
      "p99 of " + fmt("%.0f", get("M4_lwpd_suspend_spinning:stops")) + " stops", 1e6));
  if (g_cfg.m5) m5_rows(m5, 4, &rows);
  return rows;
}

// The same child's baselines, where the time went, M5's details. False if a figure the run
// asked for is missing.
bool print_details(const Getter& get, const M5Result* m5p) {
  printf("\nBaselines and references measured in the same run\n");
  const char* refs[][2] = {{"B0_bare_stream_rtt", "bare gRPC stream round trip (echo server)"},
                           {"B0u_bare_unary_rtt", "bare gRPC unary call (echo server)"},
                           {"B1_futex_rtt", "futex ping-pong round trip, two threads"},
                           {"B1p_futex_rtt_procs_one_cpu", "futex RTT, two processes on one CPU"},
                           {"B1pu_futex_rtt_procs", "futex RTT, two processes, unpinned"},
                           {"B1s_self_signal", "pthread_kill of the calling thread, empty handler"},
                           {"B3_pthread_create_join", "pthread_create + pthread_join"},
                           {"B4_signal_stop_rtt", "pthread_kill stop of a spinning thread, acked"}};
  for (auto& ref : refs) printf("  %-28s %10s  %s\n", ref[0], us(get(ref[0])).c_str(), ref[1]);

  printf(
      "\nWhere the time goes (medians, per operation; M2 per hand-off, M4 per"
      " suspend+continue cycle)\n");
  printf(
      "  srv = the server process (lwpd, or the echo server for B0*), all threads; vcpu = lwpd's\n"
      "  vCPU workers; cbq = gRPC callback threads of the server; cli = the client process (for\n"
      "  M4 cli_cpu_us includes the spinning LWP). csw = context switches.\n");
  printf("  %-38s %8s %8s %10s %8s %10s %8s %10s %8s %10s\n", "benchmark", "entries", "srv_csw",
         "srv_cpu_us", "vcpu_csw", "vcpu_cpu", "cbq_csw", "cbq_cpu", "cli_csw", "cli_cpu_us");
  for (const char* b : {"B0_bare_stream_rtt", "B0u_bare_unary_rtt", "M1_lwpd_getprivate",
                        "M1w_lwpd_getprivate_slow_watcher", "M2_lwpd_park_handoff_x2",
                        "M2w_lwpd_park_handoff_x2_slow_watcher", "M3_lwpd_create_wait",
                        "M4_lwpd_suspend_spinning"}) {
    std::string n = b;
    auto c = [&](const char* k) {
      double v = get(n + ":" + k);
      return std::isnan(v) ? std::string("-") : fmt("%.2f", v);
    };
    printf("  %-38s %8s %8s %10s %8s %10s %8s %10s %8s %10s\n", b, c("entries").c_str(),
           c("srv_csw").c_str(), c("srv_cpu_us").c_str(), c("vcpu_csw").c_str(),
           c("vcpu_cpu_us").c_str(), c("cbq_csw").c_str(), c("cbq_cpu_us").c_str(),
           c("cli_csw").c_str(), c("cli_cpu_us").c_str());
  }
  if (g_cfg.m5 && m5p != nullptr && m5p->ok) {
    const M5Result& m5 = *m5p;
    printf(
        "\nM5 details: %d LWPs parked in %d processes; daemon threads %d -> %d; RSS %.1f ->"
        " %.1f MiB (Inspect.Stats rss_bytes %.1f MiB); idle CPU %.3f%% (schedstat) /"
        " %.2f%% (utime+stime, %ld Hz ticks) over %.2f s; setup %.1f s, teardown %.1f s\n",
        m5.parked, m5.procs, m5.threads_before, m5.threads_after, m5.rss_before / 1048576.0,
        m5.rss_after / 1048576.0, m5.stats_rss / 1048576.0, m5.idle_cpu_pct, m5.idle_cpu_pct_ticks,
        clock_ticks_per_s(), m5.idle_s, m5.setup_s, m5.teardown_s);
  }
  // The smoke test wants every figure produced.
  bool complete = true;
  for (const char* k :
       {"B0_bare_stream_rtt", "M1_lwpd_getprivate", "M1w_lwpd_getprivate_slow_watcher",
        "M2_lwpd_park_handoff_x2", "M3_lwpd_create_wait", "B3_pthread_create_join",
        "M4_lwpd_suspend_spinning", "B4_signal_stop_rtt"})
    if (std::isnan(get(k)) && g_cfg.bench_args.empty()) complete = false;
  if (g_cfg.m5 && (m5p == nullptr || !m5p->ok)) complete = false;
  return complete;
}

}  // namespace

bool report(const std::map<std::string, double>& res, const std::map<std::string, M5Result>& m5) {
  bool complete = true;
  for (const std::string transport : {"grpc", "shm"}) {
    Getter get = [&](const std::string& k) {
      auto it = res.find(transport + "/" + k);
      return it == res.end() ? NAN : it->second;
    };
    auto m = m5.find(transport);
    const M5Result* m5t = m == m5.end() ? nullptr : &m->second;
    printf("\n== transport %s: results (medians of %d repetition%s; 1 us = 1000 ns)\n\n",
           transport.c_str(), g_cfg.reps, g_cfg.reps == 1 ? "" : "s");
    const std::vector<Row> rows = transport == "grpc" ? grpc_rows(get, m5t) : shm_rows(get, m5t);
    print_table(rows);
    for (const Row& r : rows)
      if (r.target != "none") g_budgeted.emplace_back(transport, r);
    complete = print_details(get, m5t) && complete;
  }
  return complete;
}

void report_det(const std::map<std::string, double>& res) {
  auto get = [&](const std::string& k) {
    auto it = res.find(k);
    return it == res.end() ? NAN : it->second;
  };
  printf(
      "\n== deterministic mode (lwpd --sched-seed 1, random): its cost over normal mode, "
      "transport shm, medians\n\n");
  printf("  %-34s %12s %12s %8s\n", "figure", "normal", "det", "det/norm");
  for (const char* b : {"M1_lwpd_getprivate", "M2_lwpd_park_handoff_x2", "M3_lwpd_create_wait"}) {
    const double n = get(std::string("shm/") + b), d = get(std::string("det/") + b);
    printf("  %-34s %10.1f us %9.1f us %8s\n", b, n / 1000, d / 1000,
           std::isnan(n) || std::isnan(d) ? "-" : fmt("%.2f", d / n).c_str());
  }
}

int check_budgets(double tolerance) {
  printf("\n== latency budget (--check): each figure over its budget; fails beyond %.2fx\n\n",
         tolerance);
  int bad = 0, unmeasured = 0;
  for (const auto& [transport, r] : g_budgeted) {
    const char* verdict = "not measured";
    // A quick run has too few LWPs for M5 and too few stops for a 99th percentile.
    const bool sized = r.figure.rfind("M5", 0) == 0 || r.figure.find("p99") != std::string::npos;
    if (g_cfg.quick && sized) {
      verdict = "not judged at --quick size";
    } else if (std::isnan(r.over)) {
      unmeasured++;
    } else if (r.over <= 1.0) {
      verdict = "within budget";
    } else if (r.over <= tolerance) {
      verdict = "over budget (tolerated)";
    } else {
      verdict = "OVER TOLERANCE";
      bad++;
    }
    const std::string value = r.ratio != "-" ? r.ratio : r.lwpd;
    const std::string over = std::isnan(r.over) ? std::string("n/a") : fmt("%.2fx", r.over);
    printf("  %-5s %-50s %10s  budget %-12s %8s  %s\n", transport.c_str(), r.figure.c_str(),
           value.c_str(), r.target.c_str(), over.c_str(), verdict);
  }
  printf("\n%d budgeted figure(s), %d beyond %.2fx their budget, %d not measured\n",
         static_cast<int>(g_budgeted.size()), bad, tolerance, unmeasured);
  return bad;
}

}  // namespace lwpd::bench
