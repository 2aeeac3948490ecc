// End-to-end tests of lwpstat (label "lwpstat"): a private lwpd (own socket and
// runtime directory, --cpus 2) and lwpstat_fixture, an emulated process in a known
// steady state (see fixture.c), started once per test process by LwpstatEnv. The
// watch tests drive lwpstat_watch_fixture (watch_fixture.c) line by line, and read
// Inspect.Watch both raw (gRPC) and through `lwpstat watch`.
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

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "health.pb.h"
#include "lwpd/v1/kernel.grpc.pb.h"
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

// ---- watch and admin ------------------------------------------------------------------

// Reads one line from `fd` (without the newline); false on EOF or after `timeout_ms`.
bool read_line(int fd, int timeout_ms, std::string* line) {
  line->clear();
  const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
    pollfd pfd{fd, POLLIN, 0};
    if (left <= 0 || poll(&pfd, 1, static_cast<int>(left)) != 1) return false;
    char c;
    if (read(fd, &c, 1) != 1) return false;
    if (c == '\n') return true;
    *line += c;
  }
}

// A child with its stdin and stdout on pipes.
struct Child {
  pid_t pid = -1;
  int in = -1, out = -1;
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    close_in();
    if (out >= 0) close(out);
    stop(pid, SIGKILL);
  }
  void close_in() {
    if (in >= 0) close(in);
    in = -1;
  }
  void send(const std::string& line) const {
    std::string l = line + "\n";
    ASSERT_EQ(write(in, l.data(), l.size()), static_cast<ssize_t>(l.size()));
  }
  std::string reply(int timeout_ms = 30000) const {
    std::string l;
    EXPECT_TRUE(read_line(out, timeout_ms, &l)) << "no reply from child " << pid;
    return l;
  }
  // Waits for the child to exit; its exit code, or -1.
  int wait_exit() {
    int st = 0;
    if (!wait_pid(pid, 30000, &st)) return -1;
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
};

void spawn(Child* c, const std::vector<std::string>& args) {
  int in[2], out[2];
  // Close-on-exec: a later child must not hold this one's stdin open (no EOF then).
  ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  c->pid = fork();
  ASSERT_GE(c->pid, 0);
  if (c->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    setenv("LWPD_ENDPOINT", g.endpoint.c_str(), 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  c->in = in[1];
  c->out = out[0];
}

// lwpstat_watch_fixture (watch_fixture.c), attached; `*epid` is its emulated pid.
void start_watch_fixture(Child* fx, int* epid) {
  spawn(fx, {LWPSTAT_WATCH_FIXTURE_BINARY});
  *epid = std::atoi(fx->reply(15000).c_str());
  ASSERT_GT(*epid, 0);
}

std::unique_ptr<v1::Inspect::Stub> inspect_stub(const grpc::ChannelArguments& args = {}) {
  return v1::Inspect::NewStub(
      grpc::CreateCustomChannel(g.endpoint, grpc::InsecureChannelCredentials(), args));
}

using Events = std::vector<v1::WatchEvent>;

// X's life in the scripted scenario: created, started, parked, unparked, exited, reaped.
void expect_lifecycle(const Events& evs, int pid, int x) {
  struct Want {
    v1::WatchEventKind kind;
    v1::LwpState from, to;
  };
  const Want want[] = {
      {v1::WATCH_LWP_CREATE, v1::LWP_STATE_UNSPECIFIED, v1::LSIDL},
      {v1::WATCH_LWP_STATE, v1::LSIDL, v1::LSRUN},
      {v1::WATCH_LWP_STATE, v1::LSRUN, v1::LSONPROC},
      {v1::WATCH_LWP_STATE, v1::LSONPROC, v1::LSSLEEP},
      {v1::WATCH_LWP_STATE, v1::LSSLEEP, v1::LSRUN},
      {v1::WATCH_LWP_STATE, v1::LSRUN, v1::LSONPROC},
      {v1::WATCH_LWP_STATE, v1::LSONPROC, v1::LSZOMB},
      {v1::WATCH_LWP_FREE, v1::LSZOMB, v1::LWP_STATE_UNSPECIFIED},
  };
  std::vector<const v1::WatchEvent*> mine;
  uint64_t last_seq = 0;
  for (const auto& e : evs) {
    EXPECT_EQ(e.pid(), pid) << e.DebugString();
    EXPECT_GT(e.seq(), last_seq) << "out of order: " << e.DebugString();
    last_seq = e.seq();
    EXPECT_NE(e.kind(), v1::WATCH_DROPPED);
    if (e.lid() == x) mine.push_back(&e);
  }
  // A preemption (ONPROC -> RUN, then RUN -> ONPROC) may interleave anywhere X runs: the
  // fixture's main LWP and the shared fixture's spinner compete for the two vCPUs. Such
  // pairs are real transitions, in order; drop them before comparing with the script.
  for (size_t i = 0; i + 1 < mine.size();) {
    const bool pair = mine[i]->from() == v1::LSONPROC && mine[i]->to() == v1::LSRUN &&
                      mine[i + 1]->from() == v1::LSRUN && mine[i + 1]->to() == v1::LSONPROC;
    if (pair)
      mine.erase(mine.begin() + static_cast<long>(i), mine.begin() + static_cast<long>(i) + 2);
    else
      i++;
  }
  std::string dump;
  for (const auto* e : mine)
    dump += v1::WatchEventKind_Name(e->kind()) + " " + v1::LwpState_Name(e->from()) + "->" +
            v1::LwpState_Name(e->to()) + "\n";
  ASSERT_EQ(mine.size(), std::size(want)) << "events of LWP " << x << ":\n" << dump;
  for (size_t i = 0; i < mine.size(); i++) {
    EXPECT_EQ(mine[i]->kind(), want[i].kind) << i << ": " << mine[i]->DebugString();
    EXPECT_EQ(mine[i]->from(), want[i].from) << i << ": " << mine[i]->DebugString();
    EXPECT_EQ(mine[i]->to(), want[i].to) << i << ": " << mine[i]->DebugString();
  }
  // A switch in names the vCPU.
  EXPECT_GE(mine[2]->cpu(), 0);
  EXPECT_LT(mine[2]->cpu(), 2);
  ASSERT_FALSE(evs.empty());
  EXPECT_EQ(evs.back().kind(), v1::WATCH_PROC_EXIT);
}

// Drives the scenario: `next` yields the watcher's events one by one (false: stream
// ended). Returns every event after WATCH_SUBSCRIBED up to the process's exit event.
Events run_scenario(Child* fx, int pid, int* x, const std::function<bool(v1::WatchEvent*)>& next) {
  Events evs;
  v1::WatchEvent e;
  EXPECT_TRUE(next(&e));
  EXPECT_EQ(e.kind(), v1::WATCH_SUBSCRIBED) << e.DebugString();
  fx->send("spawn");
  *x = std::atoi(fx->reply().c_str());
  EXPECT_GT(*x, 0);
  // Unpark only once X is seen asleep, so the park really sleeps.
  while (next(&e)) {
    evs.push_back(e);
    if (e.lid() == *x && e.to() == v1::LSSLEEP) break;
  }
  fx->send("unpark");
  EXPECT_EQ(fx->reply(), "reaped");
  fx->close_in();  // the fixture exits
  EXPECT_EQ(fx->wait_exit(), 0);
  while (evs.empty() || evs.back().kind() != v1::WATCH_PROC_EXIT) {
    if (!next(&e)) break;
    evs.push_back(e);
  }
  (void)pid;
  return evs;
}

// A raw gRPC watcher: reads WatchReply messages and hands out their events one by one.
class RawWatch {
 public:
  RawWatch(int pid, uint32_t buffer, const grpc::ChannelArguments& args = {})
      : stub_(inspect_stub(args)) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
    v1::WatchRequest req;
    req.set_pid(pid);
    req.set_buffer(buffer);
    reader_ = stub_->Watch(&ctx_, req);
  }
  ~RawWatch() {
    ctx_.TryCancel();
    (void)reader_->Finish();
  }
  bool next(v1::WatchEvent* e) {
    while (at_ >= rep_.events_size()) {
      if (!reader_->Read(&rep_)) return false;
      at_ = 0;
    }
    *e = rep_.events(at_++);
    return true;
  }

 private:
  std::unique_ptr<v1::Inspect::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchReply>> reader_;
  v1::WatchReply rep_;
  int at_ = 0;
};

v1::StatsReply stats() {
  Result r = lwpstat({"stats", "--json"});
  EXPECT_EQ(r.code(), 0) << describe(r);
  return parse_json<v1::StatsReply>(r.out);
}

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

void expect_one_line(const Result& r, int code, const std::string& err) {
  EXPECT_EQ(r.code(), code) << describe(r);
  EXPECT_EQ(r.err, err) << describe(r);
}

// A stopped LWP whose sleep goes on (_lwp_wait with nothing to collect) suspends only once
// its sleep ends: the reply does not come within the deadline, and lwpstat says so.
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
