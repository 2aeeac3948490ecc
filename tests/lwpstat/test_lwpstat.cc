// End-to-end tests of lwpstat: --json, the tables, the error paths and the admin
// subcommands. What the tests share, and the set-up: lwpstat_test.h.
#include "lwpstat_test.h"

namespace {

using namespace lwpstat_test;

// The private daemon and fixture, for every test of this process (all files).
const auto* g_env = ::testing::AddGlobalTestEnvironment(new LwpstatEnv);

// ---- --json ---------------------------------------------------------------------------

TEST(LwpstatJson, PsListsTheFixture) {
  Result r = lwpstat({"ps", "--json"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_TRUE(r.err.empty()) << r.err;
  // The .proto's field names, not protobuf's lowerCamelCase JSON names.
  EXPECT_NE(r.out.find("\"nlwps\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"lwpctl_path\""), std::string::npos) << r.out;
  auto rep = parse_json<v1::ListProcsReply>(r.out);
  const v1::ProcInfo* me = nullptr;
  for (const auto& p : rep.procs())
    if (p.pid() == g.pid) me = &p;
  ASSERT_NE(me, nullptr) << r.out;
  EXPECT_EQ(me->comm(), "lwpstat_fixture");
  EXPECT_EQ(me->state(), v1::SACTIVE);
  EXPECT_EQ(me->nlwps(), 4);
  EXPECT_EQ(me->nrlwps(), 4);    // NetBSD's p_nrlwps counts sleepers too
  EXPECT_EQ(me->nlwpwait(), 1);  // main, in _lwp_wait
  EXPECT_EQ(me->uid(), getuid());
  EXPECT_EQ(me->lwps_size(), 0);  // ListProcs carries no LWPs
}

TEST(LwpstatJson, LwpsShowsNamesStatesAndWaitChannels) {
  Result r = lwpstat({"lwps", std::to_string(g.pid), "--json"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_NE(r.out.find("\"lc_pctr\""), std::string::npos) << r.out;
  auto p = parse_json<v1::ListLwpsReply>(r.out).proc();
  EXPECT_EQ(p.pid(), g.pid);
  ASSERT_EQ(p.lwps_size(), 4);
  struct Want {
    int lid;
    const char* name;
    v1::LwpState state;
    const char* wchan;
  } want[] = {{g.main_lid, "main", v1::LSSLEEP, "lwpwait"},
              {g.parker1, "parker-1", v1::LSSLEEP, "parked"},
              {g.parker2, "parker-2", v1::LSSLEEP, "parked"},
              {g.spinner, "spinner", v1::LSONPROC, ""}};
  for (const auto& w : want) {
    const v1::LwpInfo* l = find_lwp(p, w.lid);
    ASSERT_NE(l, nullptr) << "no LWP " << w.lid;
    EXPECT_EQ(l->name(), w.name);
    EXPECT_EQ(l->state(), w.state) << w.name;
    EXPECT_EQ(l->wchan(), w.wchan) << w.name;
  }
  const v1::LwpInfo* sp = find_lwp(p, g.spinner);
  EXPECT_GT(sp->lc_pctr(), 0);
  EXPECT_TRUE(sp->cpu() == 0 || sp->cpu() == 1) << sp->cpu();
  EXPECT_EQ(sp->lc_curcpu(), sp->cpu());
}

TEST(LwpstatJson, CpusShowsTheSpinnerOnAVcpu) {
  Result r = lwpstat({"cpus", "--json"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  auto rep = parse_json<v1::ListCpusReply>(r.out);
  ASSERT_EQ(rep.cpus_size(), 2);
  int on = 0;
  for (const auto& c : rep.cpus()) {
    if (c.cur_pid() == g.pid && c.cur_lid() == g.spinner) on++;
    EXPECT_GT(c.busy_ns() + c.idle_ns(), 0u);
  }
  EXPECT_EQ(on, 1) << r.out;
}

TEST(LwpstatJson, ShowIsOneLwpInfo) {
  Result r = lwpstat({"show", std::to_string(g.pid), std::to_string(g.parker2), "--json"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  auto l = parse_json<v1::LwpInfo>(r.out);
  EXPECT_EQ(l.lid(), g.parker2);
  EXPECT_EQ(l.name(), "parker-2");
  EXPECT_EQ(l.state(), v1::LSSLEEP);
  EXPECT_EQ(l.wchan(), "parked");
  EXPECT_NE(r.out.find("\"state\": \"LSSLEEP\""), std::string::npos) << r.out;  // enum names
}

TEST(LwpstatJson, GlobalJsonBeforeTheSubcommandAndStats) {
  Result r = lwpstat({"--json", "stats"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  auto s = parse_json<v1::StatsReply>(r.out);
  EXPECT_EQ(s.ncpus(), 2);
  EXPECT_GE(s.nprocs(), 1);
  EXPECT_GE(s.nlwps(), 4);
  EXPECT_GT(s.syscalls(), 0u);
  EXPECT_FALSE(s.version().empty());
}

TEST(LwpstatJson, Health) {
  Result r = lwpstat({"health", "--json"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_EQ(parse_json<grpc::health::v1::HealthCheckResponse>(r.out).status(),
            grpc::health::v1::HealthCheckResponse::SERVING);
}

// ---- tables ---------------------------------------------------------------------------

TEST(LwpstatTable, Ps) {
  Result r = lwpstat({"ps"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  auto lines = lines_of(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  expect_headers(lines[0], {"PID", "UID", "STATE", "NLWPS", "NRLWPS", "NZLWPS", "NDLWPS",
                            "NLWPWAIT", "TRANSPORT", "COMM"});
  EXPECT_NE(r.out.find("lwpstat_fixture"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SACTIVE"), std::string::npos) << r.out;
  // The fixture's transport: the one ctest forced (LWPD_TRANSPORT), shm by default here.
  const char* want = std::getenv("LWPD_TRANSPORT");
  const std::string transport = want != nullptr && *want != '\0' ? want : "shm";
  const size_t col = lines[0].find("TRANSPORT");
  bool seen = false;
  for (const auto& l : lines) {
    if (l.find("lwpstat_fixture") == std::string::npos) continue;
    seen = true;
    EXPECT_EQ(l.substr(col, transport.size() + 1), transport + " ") << l;
  }
  EXPECT_TRUE(seen) << r.out;
  Result j = lwpstat({"ps", "--json"});
  ASSERT_EQ(j.code(), 0) << describe(j);
  EXPECT_NE(j.out.find("\"transport\": \"" + transport + "\""), std::string::npos) << j.out;
}

TEST(LwpstatTable, LwpsColumnsAlign) {
  Result r = lwpstat({"lwps", std::to_string(g.pid)});
  ASSERT_EQ(r.code(), 0) << describe(r);
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 6u) << r.out;  // summary, header, 4 LWPs
  EXPECT_EQ(lines[0].rfind("pid " + std::to_string(g.pid), 0), 0u) << lines[0];
  expect_headers(lines[1],
                 {"LID", "STATE", "CPU", "PRI", "CLASS", "SWITCHES", "LC_PCTR", "WCHAN", "NAME"});
  // NAME is the last column and left-aligned: every row's name starts under it.
  const size_t name_col = lines[1].find("NAME");
  for (size_t i = 2; i < lines.size(); i++) ASSERT_GT(lines[i].size(), name_col) << lines[i];
  EXPECT_EQ(lines[2].substr(name_col), "main");  // rows sorted by LID
  EXPECT_NE(r.out.find("parked"), std::string::npos);
  EXPECT_NE(r.out.find("LSONPROC"), std::string::npos);
  EXPECT_NE(r.out.find("OTHER"), std::string::npos);
}

TEST(LwpstatTable, Cpus) {
  Result r = lwpstat({"cpus"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  expect_headers(lines[0], {"CPU", "HOST", "PID", "LID", "PRI", "RUNQ", "SWITCHES", "STEALS",
                            "PREEMPTIONS", "IDLE%"});
}

TEST(LwpstatTable, ShowListsEveryField) {
  Result r = lwpstat({"show", std::to_string(g.pid), std::to_string(g.spinner)});
  ASSERT_EQ(r.code(), 0) << describe(r);
  // Every LwpInfo field, by its .proto name, one per line.
  const auto* d = v1::LwpInfo::descriptor();
  for (int i = 0; i < d->field_count(); i++) {
    const std::string key = "\n" + d->field(i)->name() + " ";
    EXPECT_NE(("\n" + r.out).find(key), std::string::npos) << "missing " << key << r.out;
  }
  EXPECT_NE(r.out.find("spinner"), std::string::npos);
  EXPECT_NE(r.out.find("LSONPROC"), std::string::npos);
}

// ---- errors ---------------------------------------------------------------------------

TEST(LwpstatErrors, DaemonDownIsOneLineAndExit2) {
  const std::string bogus = "unix://" + g.dir + "/no-such.sock";
  for (const char* sub : {"ps", "cpus", "health"}) {
    Result r = lwpstat({sub}, bogus);
    EXPECT_EQ(r.code(), 2) << describe(r);
    EXPECT_TRUE(r.out.empty()) << r.out;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind("lwpstat: cannot reach lwpd at " + bogus + ": ", 0), 0u) << lines[0];
  }
  // --endpoint overrides $LWPD_ENDPOINT.
  Result r = lwpstat({"ps", "--endpoint", g.endpoint}, bogus);
  EXPECT_EQ(r.code(), 0) << describe(r);
}

TEST(LwpstatErrors, UnknownPidAndLid) {
  Result r = lwpstat({"lwps", "999999"});
  EXPECT_EQ(r.code(), 1) << describe(r);
  EXPECT_EQ(r.err, "lwpstat: no process 999999\n");
  r = lwpstat({"show", std::to_string(g.pid), "999999"});
  EXPECT_EQ(r.code(), 1) << describe(r);
  EXPECT_EQ(r.err, "lwpstat: no LWP 999999 in process " + std::to_string(g.pid) + "\n");
}

TEST(LwpstatErrors, BadArgumentsGetCli11sMessage) {
  for (auto args : std::vector<std::vector<std::string>>{
           {}, {"frob"}, {"lwps"}, {"lwps", "abc"}, {"show", "1"}, {"--json", "top"}}) {
    Result r = lwpstat(args);
    EXPECT_NE(r.code(), 0) << describe(r);
    EXPECT_FALSE(r.err.empty()) << describe(r);
  }
  EXPECT_EQ(lwpstat({"--help"}).code(), 0);
}

v1::ProcInfo proc_json() {
  Result r = lwpstat({"lwps", std::to_string(g.pid), "--json"});
  EXPECT_EQ(r.code(), 0) << describe(r);
  return parse_json<v1::ListLwpsReply>(r.out).proc();
}

// The state of LWP `lid` of the fixture now (LWP_STATE_UNSPECIFIED if it is gone).
v1::LwpState state_of(int lid) {
  const v1::ProcInfo p = proc_json();
  const v1::LwpInfo* l = find_lwp(p, lid);
  return l == nullptr ? v1::LWP_STATE_UNSPECIFIED : l->state();
}

// Polls `lwpstat lwps --json` until `ok` holds (states settle asynchronously).
bool eventually(const std::function<bool(const v1::ProcInfo&)>& ok) {
  const auto end = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < end) {
    if (ok(proc_json())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(LwpstatAdmin, SuspendAndResumeLwps) {
  auto kicks_direct = [] {
    Result r = lwpstat({"--json", "stats"});
    EXPECT_EQ(r.code(), 0) << describe(r);
    return parse_json<v1::StatsReply>(r.out).kicks_direct();
  };
  const uint64_t kicks0 = kicks_direct();
  // The spinner runs user code (kicked into the kernel); parker-1 sleeps interruptibly.
  for (int lid : {g.spinner, g.parker1}) {
    Result r = lwpstat({"suspend", std::to_string(g.pid), std::to_string(lid), "--json"});
    ASSERT_EQ(r.code(), 0) << describe(r);
    auto rep = parse_json<v1::AdminReply>(r.out);
    EXPECT_EQ(rep.error(), v1::ERRNO_OK);
    EXPECT_EQ(rep.state(), v1::LSSUSPENDED);  // the reply waits for the suspension
    EXPECT_EQ(rep.proc_state(), v1::SACTIVE);
    EXPECT_EQ(state_of(lid), v1::LSSUSPENDED);
  }
  // The spinner's kick: sent by the daemon to its thread itself under the shm transport,
  // as a Session event under gRPC.
  const char* want = std::getenv("LWPD_TRANSPORT");
  if (want != nullptr && std::string(want) == "grpc") {
    EXPECT_EQ(kicks_direct(), kicks0);
  } else {
    EXPECT_GT(kicks_direct(), kicks0);
  }
  // Again: already suspended, answered at once.
  Result r = lwpstat({"suspend", std::to_string(g.pid), std::to_string(g.parker1)});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_EQ(r.out, "pid " + std::to_string(g.pid) + " lid " + std::to_string(g.parker1) +
                       ": LSSUSPENDED (process SACTIVE)\n");
  for (int lid : {g.spinner, g.parker1}) {
    r = lwpstat({"resume", std::to_string(g.pid), std::to_string(lid), "--json"});
    ASSERT_EQ(r.code(), 0) << describe(r);
    EXPECT_EQ(parse_json<v1::AdminReply>(r.out).error(), v1::ERRNO_OK);
  }
  // Back to the fixture's steady state: spinning, and parked again.
  EXPECT_TRUE(eventually([](const v1::ProcInfo& p) { return settled(p); }));
}

TEST(LwpstatAdmin, StopContAndKill) {
  const std::string pid = std::to_string(g.pid);
  Result r = lwpstat({"stop", pid});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_EQ(r.out.rfind("pid " + pid + ": SIGSTOP sent (process ", 0), 0u) << r.out;
  EXPECT_TRUE(eventually([](const v1::ProcInfo& p) { return p.state() == v1::SSTOP; }));
  EXPECT_EQ(state_of(g.spinner), v1::LSSTOP);
  r = lwpstat({"cont", pid, "--json"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_EQ(parse_json<v1::AdminReply>(r.out).proc_state(), v1::SACTIVE);
  EXPECT_TRUE(eventually([](const v1::ProcInfo& p) { return settled(p); }));
  // Kill a process of its own (the shared fixture serves the later tests of this binary).
  Child fx;
  int victim = 0;
  ASSERT_NO_FATAL_FAILURE(start_watch_fixture(&fx, &victim));
  r = lwpstat({"kill", std::to_string(victim), "--json"});
  ASSERT_EQ(r.code(), 0) << describe(r);
  EXPECT_EQ(parse_json<v1::AdminReply>(r.out).error(), v1::ERRNO_OK);
  // The process goes away: lwps stops finding it.
  const auto end = Clock::now() + std::chrono::seconds(15);
  for (;;) {
    Result ps = lwpstat({"lwps", std::to_string(victim)});
    if (ps.code() == 1) break;
    ASSERT_LT(Clock::now(), end) << describe(ps);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST(LwpstatAdmin, SuspendThatCannotCompleteInTime) {
  const std::string pid = std::to_string(g.pid);
  ASSERT_EQ(lwpstat({"stop", pid}).code(), 0);
  EXPECT_TRUE(eventually([](const v1::ProcInfo& p) { return p.state() == v1::SSTOP; }));
  expect_one_line(lwpstat({"suspend", pid, std::to_string(g.main_lid), "--timeout-ms", "300"}), 1,
                  "lwpstat: suspend pid " + pid + " lid " + std::to_string(g.main_lid) +
                      ": not suspended within 300 ms (still requested)\n");
  EXPECT_EQ(state_of(g.main_lid), v1::LSSTOP);
  ASSERT_EQ(lwpstat({"cont", pid}).code(), 0);
  // Still in its wait, with the suspension pending (as NetBSD's LW_WSUSPEND).
  EXPECT_TRUE(eventually([](const v1::ProcInfo& p) { return settled(p); }));
}

TEST(LwpstatErrors, AdminTokenMissingUnreadableOrWrong) {
  const std::string pid = std::to_string(g.pid);
  expect_one_line(
      lwpstat({"stop", pid, "--admin-token-file", g.dir + "/none"}), 1,
      "lwpstat: cannot read admin token " + g.dir + "/none: No such file or directory\n");
  {
    std::ofstream(g.dir + "/wrong.token") << "not-the-token\n";
    expect_one_line(lwpstat({"suspend", pid, std::to_string(g.spinner), "--admin-token-file",
                             g.dir + "/wrong.token"}),
                    1, "lwpstat: lwpd at " + g.endpoint + " refused the admin token\n");
  }
  // $LWPD_ADMIN_TOKEN_FILE is used when the option is absent.
  setenv("LWPD_ADMIN_TOKEN_FILE", (g.dir + "/wrong.token").c_str(), 1);
  Result r = lwpstat({"kill", pid});
  unsetenv("LWPD_ADMIN_TOKEN_FILE");
  expect_one_line(r, 1, "lwpstat: lwpd at " + g.endpoint + " refused the admin token\n");
  // Nothing happened to the process.
  EXPECT_EQ(state_of(g.spinner), v1::LSONPROC);
}

TEST(LwpstatErrors, AdminBadPidLidAndDaemonDown) {
  expect_one_line(lwpstat({"stop", "999999"}), 1, "lwpstat: no process 999999\n");
  expect_one_line(lwpstat({"suspend", std::to_string(g.pid), "999"}), 1,
                  "lwpstat: suspend pid " + std::to_string(g.pid) + " lid 999: ESRCH\n");
  expect_one_line(lwpstat({"resume", std::to_string(g.pid), "999"}), 1,
                  "lwpstat: resume pid " + std::to_string(g.pid) + " lid 999: ESRCH\n");
  const std::string bogus = "unix://" + g.dir + "/no-such.sock";
  for (auto args : std::vector<std::vector<std::string>>{
           {"stop", "1", "--admin-token-file", g.dir + "/admin.token"}, {"watch"}}) {
    Result r = lwpstat(args, bogus);
    EXPECT_EQ(r.code(), 2) << describe(r);
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind("lwpstat: cannot reach lwpd at " + bogus + ": ", 0), 0u) << lines[0];
  }
  // The default token beside a socket that is not there: one line, exit 1.
  Result r = lwpstat({"cont", "1"}, "unix://" + g.dir + "/nodir/lwpd.sock");
  expect_one_line(r, 1,
                  "lwpstat: cannot read admin token " + g.dir +
                      "/nodir/admin.token: No such file or directory\n");
}

}  // namespace
