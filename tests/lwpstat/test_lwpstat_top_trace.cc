// End-to-end tests of `lwpstat top` (batch frames, and the screen under tmux) and of
// `lwpstat trace`. Set-up: lwpstat_test.h.
#include "lwpstat_test.h"

namespace {

using namespace lwpstat_test;

// ---- top ------------------------------------------------------------------------------

// With stdout not a terminal, top prints plain frames.
TEST(LwpstatTop, BatchFrames) {
  Result r = lwpstat({"top", "--iterations", "2", "--interval-ms", "200"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "escapes in batch mode";
  size_t frames = 0;
  for (size_t at = 0; (at = r.out.find("lwpstat top - ", at)) != std::string::npos; at++) frames++;
  EXPECT_EQ(frames, 2u) << r.out;
  EXPECT_NE(r.out.find("spinner"), std::string::npos) << r.out;
}

class Tmux {
 public:
  Tmux() : sock_(g.dir + "/tmux.sock") {}
  ~Tmux() { (void)!std::system((base() + " kill-server 2>/dev/null").c_str()); }

  // A 120x40 session running `cmd` in sh; the pane stays after it ends (sleep).
  bool start(const std::string& cmd) {
    return std::system((base() + " new-session -d -s lwpstat -x 120 -y 40 \"" + cmd +
                        "; echo LWPSTAT_EXIT=\\$?; sleep 600\"")
                           .c_str()) == 0;
  }
  std::string screen() const {
    std::string out;
    FILE* f = popen((base() + " capture-pane -p -t lwpstat").c_str(), "r");
    if (f == nullptr) return out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    pclose(f);
    return out;
  }
  // Polls the screen until it contains `text` (true) or 20 s pass.
  bool wait_for(const std::string& text, std::string* last) const {
    const auto end = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < end) {
      *last = screen();
      if (last->find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void keys(const std::string& k) const {
    (void)!std::system((base() + " send-keys -t lwpstat " + k).c_str());
  }

 private:
  std::string base() const { return std::string(TMUX_BINARY) + " -f /dev/null -S " + sock_; }
  std::string sock_;
};

std::string top_command(const std::string& args) {
  return "env LWPD_ENDPOINT=" + g.endpoint + " " + LWPSTAT_BINARY + " top " + args;
}

TEST(LwpstatTop, ScreenUnderTmux) {
  if (std::string(TMUX_BINARY).empty()) GTEST_SKIP() << "tmux not found at configure time";
  Tmux t;
  ASSERT_TRUE(t.start(top_command("--iterations 3 --interval-ms 300")));
  std::string s;
  ASSERT_TRUE(t.wait_for("LWPSTAT_EXIT=", &s)) << s;
  EXPECT_NE(s.find("LWPSTAT_EXIT=0"), std::string::npos) << s;
  auto lines = lines_of(s);
  ASSERT_GE(lines.size(), 12u) << s;
  EXPECT_EQ(lines[0].rfind("lwpstat top - " + g.endpoint, 0), 0u) << s;
  // The vCPU table: both vCPUs, one of them running the spinner.
  size_t vcpu = 0;
  while (vcpu < lines.size() && lines[vcpu].find("VCPU") == std::string::npos) vcpu++;
  ASSERT_LT(vcpu + 2, lines.size()) << s;
  expect_headers(lines[vcpu], {"VCPU", "PID", "LID", "PRI", "RUNQ", "SW/s", "BUSY%"});
  auto runs_spinner = [](const std::string& row) {
    auto w = tokens(row);  // VCPU PID LID ...
    return w.size() > 2 && w[1] == std::to_string(g.pid) && w[2] == std::to_string(g.spinner);
  };
  EXPECT_TRUE(runs_spinner(lines[vcpu + 1]) || runs_spinner(lines[vcpu + 2])) << s;
  // The LWP table: the spinner is the busiest, then the fixture's other LWPs.
  size_t hdr = vcpu + 1;
  while (hdr < lines.size() && lines[hdr].find("%CPU") == std::string::npos) hdr++;
  ASSERT_LT(hdr + 4, lines.size()) << s;
  expect_headers(lines[hdr], {"PID", "LID", "%CPU", "STATE", "WCHAN", "COMM", "NAME"});
  EXPECT_NE(lines[hdr + 1].find("spinner"), std::string::npos) << s;
  EXPECT_NE(lines[hdr + 1].find("LSONPROC"), std::string::npos) << s;
  for (const char* name : {"main", "parker-1", "parker-2"})
    EXPECT_NE(s.find(name), std::string::npos) << name << "\n" << s;
  // %CPU of the spinner from the vCPU samples: it never leaves its vCPU.
  auto w = tokens(lines[hdr + 1]);  // PID LID %CPU ...
  ASSERT_GE(w.size(), 3u);
  EXPECT_EQ(w[1], std::to_string(g.spinner));
  EXPECT_GT(std::atof(w[2].c_str()), 50.0) << lines[hdr + 1];
}

TEST(LwpstatTop, QuitsOnQ) {
  if (std::string(TMUX_BINARY).empty()) GTEST_SKIP() << "tmux not found at configure time";
  Tmux t;
  ASSERT_TRUE(t.start(top_command("--interval-ms 200")));
  std::string s;
  ASSERT_TRUE(t.wait_for("spinner", &s)) << s;
  t.keys("q");
  ASSERT_TRUE(t.wait_for("LWPSTAT_EXIT=", &s)) << s;
  EXPECT_NE(s.find("LWPSTAT_EXIT=0"), std::string::npos) << s;
}

// ---- trace -------------------------------------------------------------------------

// server_trace_fixture (tests/server/trace_fixture.c), attached; `*epid` is its emulated
// pid. It creates and joins LWPs on "churn N" and exits with status 0 on "quit".
void start_trace_fixture(Child* fx, int* epid) {
  spawn(fx, {LWPSTAT_TRACE_FIXTURE_BINARY});
  *epid = std::atoi(fx->reply(15000).c_str());
  ASSERT_GT(*epid, 0);
}

// --json: the attach stop, then exactly K CREATE and K EXIT stops (each exiting LWP created
// once), then the exit line; lwpstat exits 0 with the tracee.
TEST(LwpstatTrace, JsonEventsThenTheExit) {
  constexpr int kK = 6;
  Child fx;
  int pid = 0;
  ASSERT_NO_FATAL_FAILURE(start_trace_fixture(&fx, &pid));
  Child ls;
  ASSERT_NO_FATAL_FAILURE(spawn(&ls, {LWPSTAT_BINARY, "trace", std::to_string(pid), "--json"}));
  const auto first = parse_json<v1::TraceReport>(ls.reply());
  EXPECT_EQ(first.pid(), pid);
  EXPECT_EQ(first.kind(), v1::WAIT_STOPPED);
  EXPECT_EQ(first.signal(), "SIGSTOP");
  EXPECT_EQ(first.event(), v1::TRACE_EVENT_NONE);
  ASSERT_NO_FATAL_FAILURE(fx.send("churn " + std::to_string(kK)));
  EXPECT_EQ(fx.reply(), "ok");  // lwpstat continued it after every event
  ASSERT_NO_FATAL_FAILURE(fx.send("quit"));
  std::multiset<int> created, exited;
  v1::TraceReport last;
  for (int n = 0; n < 4 * kK; n++) {
    last = parse_json<v1::TraceReport>(ls.reply());
    if (last.kind() != v1::WAIT_STOPPED) break;
    EXPECT_EQ(last.signal(), "SIGTRAP");
    EXPECT_EQ(last.signo(), 5);
    if (last.event() == v1::TRACE_EVENT_LWP_CREATE) {
      EXPECT_EQ(created.count(last.lwp()), 0u);
      created.insert(last.lwp());
    } else {
      EXPECT_EQ(last.event(), v1::TRACE_EVENT_LWP_EXIT);
      EXPECT_EQ(created.count(last.lwp()), 1u) << last.lwp();
      exited.insert(last.lwp());
    }
  }
  EXPECT_EQ(created.size(), static_cast<size_t>(kK));
  EXPECT_EQ(created, exited);
  EXPECT_EQ(last.kind(), v1::WAIT_EXITED);
  EXPECT_EQ(last.status(), 0);
  EXPECT_GT(last.time_ns(), first.time_ns());
  EXPECT_EQ(ls.wait_exit(), 0);
  EXPECT_EQ(fx.wait_exit(), 0);
}

// Ctrl-C: lwpstat stops the tracee, collects the stop, detaches and exits 0; the tracee
// runs on untraced and later exits normally.
TEST(LwpstatTrace, SigintDetachesAndTheTraceeRunsOn) {
  Child fx;
  int pid = 0;
  ASSERT_NO_FATAL_FAILURE(start_trace_fixture(&fx, &pid));
  Child ls;
  ASSERT_NO_FATAL_FAILURE(spawn(&ls, {LWPSTAT_BINARY, "trace", std::to_string(pid)}));
  EXPECT_EQ(ls.reply(), "attached to pid " + std::to_string(pid) + " (events: create exit)");
  const std::string stop = ls.reply();  // the attach stop: "HH:MM:SS.uuuuuu  pid P  SIGSTOP signal"
  EXPECT_NE(stop.find("  pid " + std::to_string(pid) + "  SIGSTOP  signal"), std::string::npos)
      << stop;
  ASSERT_EQ(kill(ls.pid, SIGINT), 0);
  EXPECT_EQ(ls.reply(), "detached from pid " + std::to_string(pid));
  EXPECT_EQ(ls.wait_exit(), 0);
  ASSERT_NO_FATAL_FAILURE(fx.send("churn 3"));  // untraced: no stops
  EXPECT_EQ(fx.reply(), "ok");
  ASSERT_NO_FATAL_FAILURE(fx.send("quit"));
  EXPECT_EQ(fx.wait_exit(), 0);
}

// --count N: after N stops (the attach stop not counted) lwpstat detaches from the stopped
// tracee and exits 0; the tracee runs on untraced. The fixture churns one LWP at a time, so
// the stops come in a known order: CREATE L1, EXIT L1, CREATE L2.
TEST(LwpstatTrace, CountDetachesAfterNStops) {
  Child fx;
  int pid = 0;
  ASSERT_NO_FATAL_FAILURE(start_trace_fixture(&fx, &pid));
  Child ls;
  ASSERT_NO_FATAL_FAILURE(
      spawn(&ls, {LWPSTAT_BINARY, "trace", std::to_string(pid), "--count", "3"}));
  EXPECT_EQ(ls.reply(), "attached to pid " + std::to_string(pid) + " (events: create exit)");
  EXPECT_NE(ls.reply().find("SIGSTOP  signal"), std::string::npos);  // the attach stop
  ASSERT_NO_FATAL_FAILURE(fx.send("churn 4"));
  // The LID after "<what> lwp " on a stop line, or -1.
  auto lwp_of = [](const std::string& line, const std::string& what) {
    const size_t at = line.find("SIGTRAP  " + what + " lwp ");
    return at == std::string::npos ? -1 : std::atoi(line.c_str() + line.rfind(' ') + 1);
  };
  const std::string c1 = ls.reply(), e1 = ls.reply(), c2 = ls.reply();
  EXPECT_GT(lwp_of(c1, "CREATE"), 0) << c1;
  EXPECT_EQ(lwp_of(e1, "EXIT"), lwp_of(c1, "CREATE")) << e1;
  EXPECT_GT(lwp_of(c2, "CREATE"), 0) << c2;
  EXPECT_NE(lwp_of(c2, "CREATE"), lwp_of(c1, "CREATE")) << c2;
  EXPECT_EQ(ls.reply(), "detached from pid " + std::to_string(pid));
  EXPECT_EQ(ls.wait_exit(), 0);
  EXPECT_EQ(fx.reply(), "ok");  // the rest of the churn ran untraced
  ASSERT_NO_FATAL_FAILURE(fx.send("quit"));
  EXPECT_EQ(fx.wait_exit(), 0);
}

// Errors are one line and a non-zero exit: no admin token, no such process, a process
// already traced (EBUSY), the daemon down.
TEST(LwpstatTrace, ErrorsAreOneLine) {
  Child fx;
  int pid = 0;
  ASSERT_NO_FATAL_FAILURE(start_trace_fixture(&fx, &pid));
  const std::string p = std::to_string(pid);
  expect_one_line(
      lwpstat({"trace", p, "--admin-token-file", g.dir + "/none"}), 1,
      "lwpstat: cannot read admin token " + g.dir + "/none: No such file or directory\n");
  {
    std::ofstream(g.dir + "/wrong.token") << "not-the-token\n";
    expect_one_line(lwpstat({"trace", p, "--admin-token-file", g.dir + "/wrong.token"}), 1,
                    "lwpstat: lwpd at " + g.endpoint + " refused the admin token\n");
  }
  expect_one_line(lwpstat({"trace", "999999"}), 1, "lwpstat: no process 999999\n");
  Child ls;
  ASSERT_NO_FATAL_FAILURE(spawn(&ls, {LWPSTAT_BINARY, "trace", p, "--json"}));
  EXPECT_EQ(parse_json<v1::TraceReport>(ls.reply()).signal(), "SIGSTOP");  // attached
  expect_one_line(lwpstat({"trace", p}), 1, "lwpstat: pid " + p + " is already traced (EBUSY)\n");
  ASSERT_EQ(kill(ls.pid, SIGTERM), 0);  // SIGTERM detaches too
  EXPECT_EQ(ls.wait_exit(), 0);
  const std::string bogus = "unix://" + g.dir + "/no-such.sock";
  Result r = lwpstat({"trace", p, "--admin-token-file", g.dir + "/admin.token"}, bogus);
  EXPECT_EQ(r.code(), 2) << describe(r);
  EXPECT_EQ(r.err.rfind("lwpstat: cannot reach lwpd at " + bogus, 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  ASSERT_NO_FATAL_FAILURE(fx.send("quit"));  // still alive and untraced
  EXPECT_EQ(fx.wait_exit(), 0);
}

}  // namespace
