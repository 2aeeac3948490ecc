// End-to-end tests of `lwpstat watch` and of Inspect.Watch read raw: order, shutdown, a
// slow watcher, JSON and human lines. Set-up: lwpstat_test.h.
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

}  // namespace
