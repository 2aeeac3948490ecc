// End-to-end tests of lwpstat (label "lwpstat"): a private lwpd (own socket and
// runtime directory, --cpus 2) and lwpstat_fixture, an emulated process in a known
// steady state (see fixture.c), started once per test process by LwpstatEnv.
//
// --json output is parsed with protobuf's own JSON parser into the reply messages
// of the wire contract, with unknown fields rejected, so a field name that drifts
// from the .proto fails here. `top` is checked on a real terminal under tmux.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "health.pb.h"
#include "lwpd/v1/kernel.pb.h"

namespace {

namespace v1 = ::lwpd::v1;
using Clock = std::chrono::steady_clock;

// ---- processes ----------------------------------------------------------------------

struct World {
  std::string dir;       // mkdtemp'd: socket, lwpctl files, captured output, tmux socket
  std::string endpoint;  // unix://<dir>/lwpd.sock
  pid_t lwpd = -1;
  pid_t fixture = -1;  // host pid of lwpstat_fixture
  int pid = 0;         // its emulated pid, then the LIDs it reported
  int main_lid = 0, parker1 = 0, parker2 = 0, spinner = 0;
};
World g;

bool wait_pid(pid_t pid, int timeout_ms, int* status) {
  const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if ((r < 0 && errno != EINTR) || Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void stop(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  int st;
  if (!wait_pid(pid, 10000, &st)) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Result {
  int status = -1;  // wait status, -1 on timeout
  std::string out, err;
  int code() const { return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// Runs lwpstat with `args` and LWPD_ENDPOINT set to `endpoint`; captures both streams.
Result lwpstat(const std::vector<std::string>& args, const std::string& endpoint = g.endpoint) {
  static int n = 0;
  const std::string out = g.dir + "/out." + std::to_string(n),
                    err = g.dir + "/err." + std::to_string(n);
  n++;
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    setenv("LWPD_ENDPOINT", endpoint.c_str(), 1);
    std::vector<char*> argv{const_cast<char*>(LWPSTAT_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  Result r;
  if (!wait_pid(pid, 30000, &r.status)) {
    stop(pid, SIGKILL);
    r.status = -1;
  }
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

std::string describe(const Result& r) {
  return "exit " + std::to_string(r.code()) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

template <class M>
M parse_json(const std::string& json) {
  M m;
  google::protobuf::util::JsonParseOptions opt;
  opt.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, &m, opt);
  EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << json;
  return m;
}

const v1::LwpInfo* find_lwp(const v1::ProcInfo& p, int lid) {
  for (const auto& l : p.lwps())
    if (l.lid() == lid) return &l;
  return nullptr;
}

// The fixture's steady state (fixture.c's table) has been reached.
bool settled(const v1::ProcInfo& p) {
  auto is = [&](int lid, v1::LwpState st, const char* wchan) {
    const v1::LwpInfo* l = find_lwp(p, lid);
    return l != nullptr && l->state() == st && (wchan == nullptr || l->wchan() == wchan);
  };
  const v1::LwpInfo* sp = find_lwp(p, g.spinner);
  return p.lwps_size() == 4 && is(g.main_lid, v1::LSSLEEP, "lwpwait") &&
         is(g.parker1, v1::LSSLEEP, "parked") && is(g.parker2, v1::LSSLEEP, "parked") &&
         is(g.spinner, v1::LSONPROC, nullptr) && sp->lc_pctr() > 0;
}

void start_lwpd() {
  g.endpoint = "unix://" + g.dir + "/lwpd.sock";
  g.lwpd = fork();
  ASSERT_GE(g.lwpd, 0);
  if (g.lwpd == 0) {
    execl(LWPD_BINARY, "lwpd", "--listen", g.endpoint.c_str(), "--runtime-dir", g.dir.c_str(),
          "--cpus", "2", "--quantum-ms", "20", "--log-level", "warn", static_cast<char*>(nullptr));
    _exit(127);
  }
  // Serving once `lwpstat health` says so (this also proves `health` on a live daemon).
  const auto end = Clock::now() + std::chrono::seconds(15);
  while (lwpstat({"health"}).code() != 0) {
    ASSERT_LT(Clock::now(), end) << "lwpd did not start serving";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void start_fixture() {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  g.fixture = fork();
  ASSERT_GE(g.fixture, 0);
  if (g.fixture == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    setenv("LWPD_ENDPOINT", g.endpoint.c_str(), 1);
    execl(LWPSTAT_FIXTURE_BINARY, "lwpstat_fixture", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string line;
  pollfd pfd{fds[0], POLLIN, 0};
  char c;
  while (poll(&pfd, 1, 15000) == 1 && read(fds[0], &c, 1) == 1 && c != '\n') line += c;
  close(fds[0]);
  ASSERT_EQ(std::sscanf(line.c_str(), "%d %d %d %d %d", &g.pid, &g.main_lid, &g.parker1, &g.parker2,
                        &g.spinner),
            5)
      << "fixture said '" << line << "'";
}

void wait_settled() {
  const auto end = Clock::now() + std::chrono::seconds(15);
  std::string last;
  for (;;) {
    Result r = lwpstat({"lwps", std::to_string(g.pid), "--json"});
    last = describe(r);
    if (r.code() == 0 && settled(parse_json<v1::ListLwpsReply>(r.out).proc())) return;
    ASSERT_LT(Clock::now(), end) << "fixture did not settle; last:\n" << last;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class LwpstatEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/lwpstat-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
    g.dir = tmpl;
    start_lwpd();
    start_fixture();
    wait_settled();
  }
  void TearDown() override {
    stop(g.fixture, SIGKILL);
    stop(g.lwpd, SIGTERM);
    if (!g.dir.empty()) (void)!std::system(("rm -rf '" + g.dir + "'").c_str());
  }
};

const auto* g_env = ::testing::AddGlobalTestEnvironment(new LwpstatEnv);

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

std::vector<std::string> tokens(const std::string& line) {
  std::vector<std::string> v;
  std::istringstream in(line);
  for (std::string w; in >> w;) v.push_back(w);
  return v;
}

// Every word of `headers` appears in `line`, in that order.
void expect_headers(const std::string& line, const std::vector<std::string>& headers) {
  size_t at = 0;
  for (const auto& h : headers) {
    size_t p = line.find(h, at);
    ASSERT_NE(p, std::string::npos) << "no column " << h << " in: " << line;
    at = p + h.size();
  }
}

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
  expect_headers(
      lines[0], {"PID", "UID", "STATE", "NLWPS", "NRLWPS", "NZLWPS", "NDLWPS", "NLWPWAIT", "COMM"});
  EXPECT_NE(r.out.find("lwpstat_fixture"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SACTIVE"), std::string::npos) << r.out;
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

}  // namespace
