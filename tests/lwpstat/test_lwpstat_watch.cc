// End-to-end tests of `lwpstat watch` and of Inspect.Watch read raw: order, shutdown, a
// slow watcher, JSON and human lines, and the same sequence for the same seed in
// deterministic mode. Set-up: lwpstat_test.h.
#include <atomic>

#include "lwpstat_test.h"

namespace {

using namespace lwpstat_test;

TEST(LwpstatWatch, EveryTransitionOfAnLwpArrivesInOrder) {
  Child fx;
  int pid = 0, x = 0;
  ASSERT_NO_FATAL_FAILURE(start_watch_fixture(&fx, &pid));
  {
    RawWatch w(pid, 0);
    Events evs = run_scenario(&fx, pid, &x, [&](v1::WatchEvent* e) { return w.next(e); });
    expect_lifecycle(evs, pid, x);
    EXPECT_EQ(stats().watchers(), 1);
  }
  // A watcher that goes away is cleaned up (its cancellation reaches the daemon).
  const auto end = Clock::now() + std::chrono::seconds(15);
  while (stats().watchers() != 0) {
    ASSERT_LT(Clock::now(), end) << "watcher not cleaned up";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A daemon of its own: SIGTERM ends its watch streams with UNAVAILABLE and exits 0.
TEST(LwpstatWatch, DaemonShutdownEndsWatchStreams) {
  const std::string dir = g.dir + "/shutdown";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string ep = "unix://" + dir + "/lwpd.sock";
  pid_t d = fork();
  ASSERT_GE(d, 0);
  if (d == 0) {
    execl(LWPD_BINARY, "lwpd", "--listen", ep.c_str(), "--runtime-dir", dir.c_str(), "--cpus", "1",
          "--log-level", "warn", static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto end = Clock::now() + std::chrono::seconds(15);
  while (lwpstat({"health"}, ep).code() != 0) {
    ASSERT_LT(Clock::now(), end) << "lwpd did not start serving";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Child ls;
  ASSERT_NO_FATAL_FAILURE(spawn(&ls, {LWPSTAT_BINARY, "watch", "--endpoint", ep}));
  std::string header;
  ASSERT_TRUE(read_line(ls.out, 30000, &header));  // the watch is live
  EXPECT_EQ(stats().watchers(), 0);                // (the shared daemon has none)
  ASSERT_EQ(kill(d, SIGTERM), 0);
  int st = 0;
  ASSERT_TRUE(wait_pid(d, 15000, &st));
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_EQ(ls.wait_exit(), 2);  // "cannot reach lwpd ...: lwpd is shutting down"
}

TEST(LwpstatWatch, SlowWatcherGetsADropMarkerAndTheDaemonStaysHealthy) {
  Child fx;
  int pid = 0;
  ASSERT_NO_FATAL_FAILURE(start_watch_fixture(&fx, &pid));
  // A reader that stops reading: a small HTTP/2 window (no BDP growth) and a 64-event
  // buffer in the daemon, so the kernel soon outruns the stream.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  RawWatch w(pid, 64, args);
  v1::WatchEvent e;
  ASSERT_TRUE(w.next(&e));
  ASSERT_EQ(e.kind(), v1::WATCH_SUBSCRIBED);
  const uint64_t dropped0 = stats().watch_dropped();
  EXPECT_GE(stats().watchers(), 1);
  // Churn until the daemon reports losses; the kernel keeps serving meanwhile.
  const auto end = Clock::now() + std::chrono::seconds(60);
  while (stats().watch_dropped() == dropped0) {
    ASSERT_LT(Clock::now(), end) << "no events dropped";
    fx.send("churn 200");
    ASSERT_EQ(fx.reply(), "ok");
  }
  EXPECT_EQ(lwpstat({"health"}).code(), 0);
  // Now read: the loss is reported in place, and the stream goes on after it.
  uint64_t last_seq = 0, lost = 0;
  int creates_after = 0;
  bool more = false;
  while (w.next(&e)) {
    if (e.kind() == v1::WATCH_DROPPED) {
      EXPECT_GT(e.dropped(), 0u);
      lost += e.dropped();
      if (!more) {
        more = true;
        fx.send("churn 1");  // events after the loss must still arrive
        ASSERT_EQ(fx.reply(), "ok");
      }
      continue;
    }
    EXPECT_GT(e.seq(), last_seq) << e.DebugString();
    last_seq = e.seq();
    if (more && lost > 0 && e.kind() == v1::WATCH_LWP_FREE && ++creates_after == 1) break;
  }
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(creates_after, 1);
  EXPECT_GE(stats().watch_dropped(), dropped0 + lost);
}

TEST(LwpstatWatch, JsonLinesOfTheScenario) {
  Child fx;
  int pid = 0, x = 0;
  ASSERT_NO_FATAL_FAILURE(start_watch_fixture(&fx, &pid));
  Child ls;
  ASSERT_NO_FATAL_FAILURE(spawn(&ls, {LWPSTAT_BINARY, "watch", std::to_string(pid), "--json"}));
  Events evs = run_scenario(&fx, pid, &x, [&](v1::WatchEvent* e) {
    std::string line;
    if (!read_line(ls.out, 30000, &line)) return false;
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_NE(line.find("\"kind\":"), std::string::npos) << line;  // .proto field names
    *e = parse_json<v1::WatchEvent>(line);
    return true;
  });
  expect_lifecycle(evs, pid, x);
  EXPECT_EQ(ls.wait_exit(), 0);  // `watch PID` ends with the process
}

TEST(LwpstatWatch, HumanLinesAndCount) {
  Child fx;
  int pid = 0;
  ASSERT_NO_FATAL_FAILURE(start_watch_fixture(&fx, &pid));
  Child ls;
  ASSERT_NO_FATAL_FAILURE(spawn(&ls, {LWPSTAT_BINARY, "watch", std::to_string(pid), "-n", "5"}));
  std::string header;
  ASSERT_TRUE(read_line(ls.out, 30000, &header));  // printed once the watch is live
  expect_headers(header, {"SEQ", "TIME", "PID", "LID", "EVENT", "FROM", "TO", "CPU"});
  fx.send("churn 1");
  ASSERT_EQ(fx.reply(), "ok");
  std::vector<std::string> rows;
  for (std::string l; read_line(ls.out, 30000, &l);) rows.push_back(l);
  EXPECT_EQ(ls.wait_exit(), 0);
  ASSERT_EQ(rows.size(), 5u);
  // The first event is the churned LWP's creation: SEQ TIME PID LID CREATE - LSIDL CPU.
  auto w = tokens(rows[0]);
  ASSERT_EQ(w.size(), 8u) << rows[0];
  EXPECT_EQ(w[2], std::to_string(pid));
  EXPECT_EQ(w[4], "CREATE");
  EXPECT_EQ(w[5], "-");
  EXPECT_EQ(w[6], "LSIDL");
  // Aligned: the EVENT column starts at the same offset on every line.
  const size_t col = header.find("EVENT");
  for (const auto& r : rows) {
    ASSERT_GT(r.size(), col) << r;
    EXPECT_NE(r[col], ' ') << r;
    EXPECT_EQ(r[col - 1], ' ') << r;
  }
}

// ---- deterministic mode (issue 12; README "Finding races") ------------------------------

// Host threads that keep every CPU busy while they live.
class Burner {
 public:
  explicit Burner(int n) {
    for (int i = 0; i < n; i++)
      threads_.emplace_back([this] {
        volatile uint64_t x = 0;
        while (!stop_.load(std::memory_order_relaxed)) x = x + 1;
      });
  }
  ~Burner() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

struct DetRun {
  std::vector<std::string> events;  // every WatchEvent up to the process's exit, time_ns cleared
  std::string output;               // what the program printed (sanitizer banners left out)
  int status = -1;                  // its wait status
};

// One run of the example's lost update (client/examples/races.c) against a fresh daemon
// started with --sched-seed `seed`, watched from before the program attaches until its
// process exits; `burners` host threads spin beside it throughout.
void det_run(unsigned seed, int burners, DetRun* run) {
  static int n = 0;
  const std::string dir = g.dir + "/det" + std::to_string(n++);
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string ep = "unix://" + dir + "/lwpd.sock";
  const std::string seed_arg = std::to_string(seed);
  pid_t d = fork();
  ASSERT_GE(d, 0);
  if (d == 0) {
    execl(LWPD_BINARY, "lwpd", "--listen", ep.c_str(), "--runtime-dir", dir.c_str(), "--cpus", "2",
          "--sched-seed", seed_arg.c_str(), "--log-level", "warn", static_cast<char*>(nullptr));
    _exit(127);
  }
  struct Reap {
    pid_t pid;
    ~Reap() { stop(pid, SIGTERM); }
  } reap{d};
  const auto end = Clock::now() + std::chrono::seconds(15);
  while (lwpstat({"health"}, ep).code() != 0) {
    ASSERT_LT(Clock::now(), end) << "lwpd --sched-seed did not start serving";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Child ls;
  ASSERT_NO_FATAL_FAILURE(spawn(&ls, {LWPSTAT_BINARY, "watch", "--json", "--endpoint", ep}));
  std::string line;
  ASSERT_TRUE(read_line(ls.out, 30000, &line));  // WATCH_SUBSCRIBED: every later event arrives
  ASSERT_EQ(parse_json<v1::WatchEvent>(line).kind(), v1::WATCH_SUBSCRIBED) << line;

  Burner burn(burners);
  const std::string out = dir + "/races.out";
  pid_t prog = fork();
  ASSERT_GE(prog, 0);
  if (prog == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(o, 2);
    setenv("LWPD_ENDPOINT", ep.c_str(), 1);
    execl(LWP_RACES_BINARY, "lwp_races", "lost-update", static_cast<char*>(nullptr));
    _exit(127);
  }
  if (!wait_pid(prog, 60000, &run->status)) {
    stop(prog, SIGKILL);
    FAIL() << "lwp_races did not end within 60 s";
  }
  // The program's own lines: without a sanitizer's banners, which name pids and addresses.
  for (const auto& l : lines_of(slurp(out))) {
    const bool banner =
        (l.size() > 2 && l.compare(0, 2, "==") == 0 && l.find("==", 2) != std::string::npos) ||
        l.rfind("False positive error reports", 0) == 0 || l.rfind("For details see", 0) == 0;
    if (!banner) run->output += l + "\n";
  }
  for (;;) {
    ASSERT_TRUE(read_line(ls.out, 30000, &line)) << "the watch ended before the process exited";
    v1::WatchEvent e = parse_json<v1::WatchEvent>(line);
    ASSERT_NE(e.kind(), v1::WATCH_DROPPED) << "events were lost";
    e.clear_time_ns();
    run->events.push_back(e.ShortDebugString());
    if (e.kind() == v1::WATCH_PROC_EXIT) break;
  }
}

// The promise, end to end: the same seed gives the same Inspect.Watch sequence (every
// field but time_ns), the same pids and LIDs and the same program output, however loaded the
// host is, under either transport (LWPD_TRANSPORT reaches the program); another seed gives
// another run (so the comparison is not vacuous).
TEST(LwpstatWatch, DeterministicModeGivesTheSameWatchSequenceEvenBesideABurner) {
  const unsigned hw = std::max(2u, std::thread::hardware_concurrency());
  DetRun quiet, loaded, other;
  ASSERT_NO_FATAL_FAILURE(det_run(5, 0, &quiet));
  ASSERT_NO_FATAL_FAILURE(det_run(5, static_cast<int>(hw), &loaded));
  ASSERT_NO_FATAL_FAILURE(det_run(6, 0, &other));

  // The example loses updates and says so: "counter N of 80", exit status 1.
  EXPECT_TRUE(WIFEXITED(quiet.status) && WEXITSTATUS(quiet.status) == 1) << quiet.output;
  EXPECT_NE(quiet.output.find(" of 80"), std::string::npos) << quiet.output;
  // Four LWPs, each switched on and off its vCPU many times.
  EXPECT_GT(quiet.events.size(), 50u);
  const auto on_cpu = std::count_if(quiet.events.begin(), quiet.events.end(), [](const auto& s) {
    return s.find("to: LSONPROC") != std::string::npos;
  });
  EXPECT_GT(on_cpu, 8);

  EXPECT_EQ(loaded.output, quiet.output);
  EXPECT_EQ(loaded.status, quiet.status);
  ASSERT_EQ(loaded.events.size(), quiet.events.size());
  for (size_t i = 0; i < quiet.events.size(); i++)
    ASSERT_EQ(loaded.events[i], quiet.events[i]) << "first difference at event " << i;
  EXPECT_NE(other.events, quiet.events) << "seeds 5 and 6 gave the same run";
}

}  // namespace
