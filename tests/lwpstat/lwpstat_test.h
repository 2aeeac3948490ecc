// What the lwpstat end-to-end tests share (test_lwpstat.cc: --json, tables, errors and
// admin; test_lwpstat_watch.cc: watch; test_lwpstat_top_trace.cc: top and trace): the
// private daemon and fixture (LwpstatEnv, registered once, in test_lwpstat.cc), running
// lwpstat and parsing what it prints, driving a child process line by line.
//
// End-to-end tests of lwpstat (label "lwpstat"): a private lwpd (own socket and
// runtime directory, --cpus 2) and lwpstat_fixture, an emulated process in a known
// steady state (see fixture.c), started once per test process by LwpstatEnv. The
// watch tests drive lwpstat_watch_fixture (watch_fixture.c) line by line, and read
// Inspect.Watch both raw (gRPC) and through `lwpstat watch`.
//
// --json output is parsed with protobuf's own JSON parser into the reply messages
// of the wire contract, with unknown fields rejected, so a field name that drifts
// from the .proto fails here. `top` is checked on a real terminal under tmux.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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

namespace lwpstat_test {

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
inline World g;  // one for the test process (every test file)

inline bool wait_pid(pid_t pid, int timeout_ms, int* status) {
  const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if ((r < 0 && errno != EINTR) || Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

inline void stop(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  int st;
  if (!wait_pid(pid, 10000, &st)) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
}

inline std::string slurp(const std::string& path) {
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
inline Result lwpstat(const std::vector<std::string>& args,
                      const std::string& endpoint = g.endpoint) {
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

inline std::string describe(const Result& r) {
  return "exit " + std::to_string(r.code()) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

template <class M>
inline M parse_json(const std::string& json) {
  M m;
  google::protobuf::util::JsonParseOptions opt;
  opt.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, &m, opt);
  EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << json;
  return m;
}

inline const v1::LwpInfo* find_lwp(const v1::ProcInfo& p, int lid) {
  for (const auto& l : p.lwps())
    if (l.lid() == lid) return &l;
  return nullptr;
}

// The fixture's steady state (fixture.c's table) has been reached.
inline bool settled(const v1::ProcInfo& p) {
  auto is = [&](int lid, v1::LwpState st, const char* wchan) {
    const v1::LwpInfo* l = find_lwp(p, lid);
    return l != nullptr && l->state() == st && (wchan == nullptr || l->wchan() == wchan);
  };
  const v1::LwpInfo* sp = find_lwp(p, g.spinner);
  return p.lwps_size() == 4 && is(g.main_lid, v1::LSSLEEP, "lwpwait") &&
         is(g.parker1, v1::LSSLEEP, "parked") && is(g.parker2, v1::LSSLEEP, "parked") &&
         is(g.spinner, v1::LSONPROC, nullptr) && sp->lc_pctr() > 0;
}

inline void start_lwpd() {
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

inline void start_fixture() {
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

inline void wait_settled() {
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
    if (!::testing::Test::HasFatalFailure()) start_fixture();
    if (!::testing::Test::HasFatalFailure()) wait_settled();
    // GoogleTest reports the tests of a failed environment as skipped, and ctest counts a
    // skip as a pass: end the program failed instead, so a broken set-up cannot look green.
    if (::testing::Test::HasFatalFailure()) {
      std::fprintf(stderr, "lwpstat tests: set-up failed (above); no test ran\n");
      TearDown();
      std::_Exit(1);
    }
  }
  void TearDown() override {
    stop(g.fixture, SIGKILL);
    stop(g.lwpd, SIGTERM);
    if (!g.dir.empty()) (void)!std::system(("rm -rf '" + g.dir + "'").c_str());
  }
};

inline std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

inline std::vector<std::string> tokens(const std::string& line) {
  std::vector<std::string> v;
  std::istringstream in(line);
  for (std::string w; in >> w;) v.push_back(w);
  return v;
}

// Every word of `headers` appears in `line`, in that order.
inline void expect_headers(const std::string& line, const std::vector<std::string>& headers) {
  size_t at = 0;
  for (const auto& h : headers) {
    size_t p = line.find(h, at);
    ASSERT_NE(p, std::string::npos) << "no column " << h << " in: " << line;
    at = p + h.size();
  }
}

// ---- watch and admin ------------------------------------------------------------------

// Reads one line from `fd` (without the newline); false on EOF or after `timeout_ms`.
inline bool read_line(int fd, int timeout_ms, std::string* line) {
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

inline void spawn(Child* c, const std::vector<std::string>& args) {
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
inline void start_watch_fixture(Child* fx, int* epid) {
  spawn(fx, {LWPSTAT_WATCH_FIXTURE_BINARY});
  *epid = std::atoi(fx->reply(15000).c_str());
  ASSERT_GT(*epid, 0);
}

inline std::unique_ptr<v1::Inspect::Stub> inspect_stub(const grpc::ChannelArguments& args = {}) {
  return v1::Inspect::NewStub(
      grpc::CreateCustomChannel(g.endpoint, grpc::InsecureChannelCredentials(), args));
}

using Events = std::vector<v1::WatchEvent>;

// X's life in the scripted scenario: created, started, parked, unparked, exited, reaped.
inline void expect_lifecycle(const Events& evs, int pid, int x) {
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
inline Events run_scenario(Child* fx, int pid, int* x,
                           const std::function<bool(v1::WatchEvent*)>& next) {
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

inline v1::StatsReply stats() {
  Result r = lwpstat({"stats", "--json"});
  EXPECT_EQ(r.code(), 0) << describe(r);
  return parse_json<v1::StatsReply>(r.out);
}

inline void expect_one_line(const Result& r, int code, const std::string& err) {
  EXPECT_EQ(r.code(), code) << describe(r);
  EXPECT_EQ(r.err, err) << describe(r);
}

// A stopped LWP whose sleep goes on (_lwp_wait with nothing to collect) suspends only once
// its sleep ends: the reply does not come within the deadline, and lwpstat says so.

}  // namespace lwpstat_test
