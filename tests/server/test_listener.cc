// The daemon's own listener (server/listener.cc) and peer identity, against a real lwpd:
//   FloodBeyondFdLimitRecovers   half-open connections past a low fd limit; health and a
//                                full attach work again once they close
//   HalfOpenClosedAfterTimeout   no complete preface within --handshake-timeout-ms: closed
//   IdleConnectionClosedAfterTimeout  a connection that completed its preface and made no
//                                call for --idle-timeout-ms: closed; an attached process's is kept
//   PerUidCapRefusesOnlyThatUid  connections of one uid past --max-conns-per-uid are closed
//                                at once; root and other uids are unaffected; the count
//                                drops when that uid's connections close
//   SessionsGetTheKernelUid      a uid-65534 client is uid 65534 in the kernel, root is 0;
//                                the former cannot PT_ATTACH the latter or go SCHED_FIFO,
//                                nor read its lwpctl page
//   TcpSessionsAreNobody         a TCP session is uid 32767, or 0 with the admin token
//   ChurnKeepsIdentityAndCount   connections opened and closed from several threads while
//                                sessions attach: every session gets its peer's uid, and
//                                the live count falls back once gRPC has closed them
// Second-uid clients run under setpriv(1); the tests run as root (here and in CI).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "daemon.h"

#ifndef IDENTITY_FIXTURE_BINARY
#error "IDENTITY_FIXTURE_BINARY must name server_identity_fixture"
#endif

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kOtherUid = 65534;
const std::vector<std::string> kAsNobody = {"setpriv", "--reuid", "65534",
                                            "--regid", "65534",   "--clear-groups"};
const std::vector<std::string> kAsOther = {"setpriv", "--reuid", "65533",
                                           "--regid", "65533",   "--clear-groups"};

std::string sock_path(const DaemonProcess& d) { return d.dir() + "/lwpd.sock"; }

// A raw connection (no gRPC), connected without blocking; -1 if refused.
int raw_connect(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether the daemon has closed `fd` (EOF or reset), waiting at most `limit`.
bool closed_by_daemon(int fd, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count()))) > 0) {
      char c;
      ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
    }
    if (Clock::now() >= end) return false;
  }
}

bool poll_until(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

v1::StatsReply stats(const DaemonProcess& d) {
  auto stub = v1::Inspect::NewStub(d.channel());
  auto ctx = call_ctx("");
  v1::StatsReply r;
  EXPECT_TRUE(stub->Stats(ctx.get(), {}, &r).ok());
  return r;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// A child process with its stdin and stdout on pipes; SIGKILLed if still running at the end.
class Spawned {
 public:
  Spawned(const std::vector<std::string>& argv, const DaemonProcess& d) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    std::vector<std::string> args = argv;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::setenv("LWPD_ENDPOINT", d.address().c_str(), 1);
      ::setenv("LWPD_RUNTIME_DIR", d.runtime_dir().c_str(), 1);
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      ::execvp(av[0], av.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = in[1];
    out_ = out[0];
  }
  ~Spawned() {
    close_in();
    if (out_ >= 0) ::close(out_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // One line of output ("" after 30 s without one, or at EOF).
  std::string line() {
    std::string l;
    const auto end = Clock::now() + 30s;
    char c;
    while (Clock::now() < end) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      if (::read(out_, &c, 1) != 1) break;
      if (c == '\n') return l;
      l += c;
    }
    return l;
  }
  void close_in() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  // The wait status once it exits (bounded), else nullopt.
  std::optional<int> exit_status(std::chrono::milliseconds limit = 20s) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return st;
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
};

// "key=value" fields of a fixture line, the leading pid under "pid".
std::map<std::string, int> fields(const std::string& line) {
  std::map<std::string, int> f;
  size_t pos = 0;
  bool first = true;
  while (pos < line.size()) {
    size_t sp = line.find(' ', pos);
    std::string w = line.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
    size_t eq = w.find('=');
    if (first) f["pid"] = std::atoi(w.c_str());
    if (!first && eq != std::string::npos) f[w.substr(0, eq)] = std::atoi(w.c_str() + eq + 1);
    first = false;
    if (sp == std::string::npos) break;
    pos = sp + 1;
  }
  return f;
}

// `server_tests --child-conns` run as another uid: "open N refused M".
std::pair<int, int> conns_as(Spawned& c) {
  int open = -1, refused = -1;
  std::string l = c.line();
  if (std::sscanf(l.c_str(), "open %d refused %d", &open, &refused) != 2)
    ADD_FAILURE() << "child-conns said '" << l << "'";
  return {open, refused};
}

TEST(Listener, FloodBeyondFdLimitRecovers) {
  DaemonProcess d(2, {"--handshake-timeout-ms", "60000"}, /*nofile=*/64);
  ASSERT_TRUE(d.ready()) << d.log();
  // More half-open connections than the daemon has fds: it holds what it can (their
  // handshake time is a minute) and closes what waits in the backlog once it is out of fds.
  std::vector<int> flood;
  int closed = 0;  // connections the daemon shed (some already before our first bytes)
  for (int i = 0; i < 150; i++) {
    int fd = raw_connect(sock_path(d));
    if (fd < 0) continue;
    if (::send(fd, "PRI * HTT", 9, MSG_NOSIGNAL) != 9) {  // closed by the daemon already
      ::close(fd);
      closed++;
      continue;
    }
    flood.push_back(fd);
  }
  ASSERT_GT(flood.size() + closed, 64u);
  const auto end = Clock::now() + 20s;
  while (closed == 0 && Clock::now() < end) {
    for (int fd : flood) closed += closed_by_daemon(fd, 0ms) ? 1 : 0;
    if (closed == 0) std::this_thread::sleep_for(10ms);  // polling, with a deadline
  }
  EXPECT_GT(closed, 0) << "no connection refused while out of fds";
  EXPECT_FALSE(flood.empty()) << "the daemon held none";
  // (Whether a health check fails now depends on when gRPC closes the fds of connections
  // that ended before the flood, so the counters below are what proves the fds ran out.)
  for (int fd : flood) ::close(fd);
  // Once they are gone it serves again, and a whole session works.
  EXPECT_TRUE(poll_until([&] { return d.serving(); }, 30s)) << d.log();
  Proc p(d.channel(), "after-flood");
  EXPECT_TRUE(p.ok());
  v1::StatsReply s = stats(d);
  EXPECT_GE(s.accept_errors(), 1u);
  EXPECT_GE(s.conns_refused_fd_limit(), 1u);
  EXPECT_GE(s.conns_accepted(), 40u);
  EXPECT_NE(d.log().find("Too many open files"), std::string::npos);
  EXPECT_EQ(d.terminate(20s), std::optional<int>(0)) << d.log();
}

TEST(Listener, HalfOpenClosedAfterTimeout) {
  DaemonProcess d(2, {"--handshake-timeout-ms", "300"});
  ASSERT_TRUE(d.ready()) << d.log();
  const auto t0 = Clock::now();
  int partial = raw_connect(sock_path(d));  // 9 bytes of the preface, then nothing
  int silent = raw_connect(sock_path(d));   // not a byte
  ASSERT_GE(partial, 0);
  ASSERT_GE(silent, 0);
  ASSERT_EQ(::send(partial, "PRI * HTT", 9, MSG_NOSIGNAL), 9);
  EXPECT_TRUE(closed_by_daemon(partial, 20s));
  EXPECT_TRUE(closed_by_daemon(silent, 20s));
  EXPECT_GE(Clock::now() - t0, 290ms) << "closed before the handshake timeout";
  // Not an HTTP/2 client at all: closed without waiting for the timeout (counted apart).
  int garbage = raw_connect(sock_path(d));
  ASSERT_GE(garbage, 0);
  ASSERT_EQ(::send(garbage, "GET / HTTP/1.1\r\n\r\n", 18, MSG_NOSIGNAL), 18);
  EXPECT_TRUE(closed_by_daemon(garbage, 20s));
  for (int fd : {partial, silent, garbage}) ::close(fd);
  // A real client is not affected by the timeout: its calls outlive it.
  Proc p(d.channel(), "slow");
  ASSERT_TRUE(p.ok());
  // Not a synchronisation: time must pass (two handshake timeouts) with the session idle.
  std::this_thread::sleep_for(600ms);
  v1::SyscallReturn r;
  EXPECT_TRUE(p.start(p.pid(), &r).ok());
  v1::StatsReply s = stats(d);
  EXPECT_GE(s.conns_closed_half_open(), 2u);
  EXPECT_GE(s.conns_closed_bad_preface(), 1u);
  EXPECT_TRUE(d.serving());
}

// After the preface: a connection that completes the HTTP/2 handshake and never makes a
// call is closed after --idle-timeout-ms (gRPC's max_connection_idle); an attached process,
// whose Session stream is a call in progress, keeps its connection however long it waits.
TEST(Listener, IdleConnectionClosedAfterTimeout) {
  DaemonProcess d(2, {"--idle-timeout-ms", "300"});
  ASSERT_TRUE(d.ready()) << d.log();
  Proc p(d.channel(), "attached");
  ASSERT_TRUE(p.ok());
  const auto t0 = Clock::now();
  int idle = raw_connect(sock_path(d));
  ASSERT_GE(idle, 0);
  // The client's connection preface: the magic string and an empty SETTINGS frame.
  static const char kMagic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  static const unsigned char kSettings[9] = {0, 0, 0, 0x4, 0, 0, 0, 0, 0};
  ASSERT_EQ(::send(idle, kMagic, 24, MSG_NOSIGNAL), 24);
  ASSERT_EQ(::send(idle, kSettings, sizeof kSettings, MSG_NOSIGNAL), 9);
  EXPECT_TRUE(closed_by_daemon(idle, 20s)) << "an idle connection was kept";
  EXPECT_GE(Clock::now() - t0, 290ms) << "closed before the idle timeout";
  ::close(idle);
  // The attached process waited through that timeout with its Session open: still served.
  v1::SyscallReturn r;
  EXPECT_TRUE(p.start(p.pid(), &r).ok());
  EXPECT_TRUE(d.serving());
}

TEST(Listener, PerUidCapRefusesOnlyThatUid) {
  DaemonProcess d(2, {"--max-conns-per-uid", "4"});
  ASSERT_TRUE(d.ready()) << d.log();
  auto argv = [&](const std::vector<std::string>& as, int n) {
    std::vector<std::string> a = as;
    for (auto s : {self_exe(), std::string("--child-conns"), sock_path(d), std::to_string(n)})
      a.push_back(s);
    return a;
  };
  auto nobody = std::make_unique<Spawned>(argv(kAsNobody, 6), d);
  EXPECT_EQ(conns_as(*nobody), std::make_pair(4, 2));
  // Root is exempt, another uid has its own count.
  Proc root(d.channel(), "root");
  EXPECT_TRUE(root.ok());
  Spawned other(argv(kAsOther, 3), d);
  EXPECT_EQ(conns_as(other), std::make_pair(3, 0));
  EXPECT_GE(stats(d).conns_refused_over_cap(), 2u);
  // When that uid's connections close (gRPC closes them, the listener learns it by
  // fstat), it may connect again up to the cap.
  nobody->close_in();
  ASSERT_EQ(nobody->exit_status(), std::optional<int>(0));
  nobody.reset();
  int reopened = 0;
  EXPECT_TRUE(poll_until(
      [&] {
        Spawned again(argv(kAsNobody, 4), d);
        reopened = conns_as(again).first;
        return reopened == 4;
      },
      30s))
      << "reopened " << reopened;
  EXPECT_TRUE(d.serving());
}

TEST(Listener, SessionsGetTheKernelUid) {
  DaemonProcess d(2);
  ASSERT_TRUE(d.ready()) << d.log();
  Spawned root({IDENTITY_FIXTURE_BINARY}, d);
  auto rf = fields(root.line());
  ASSERT_GT(rf["pid"], 0);
  EXPECT_EQ(rf["ctl"], 0);
  std::vector<std::string> av = kAsNobody;
  av.push_back(IDENTITY_FIXTURE_BINARY);
  av.push_back(std::to_string(rf["pid"]));
  Spawned nobody(av, d);
  auto nf = fields(nobody.line());
  ASSERT_GT(nf["pid"], 0);
  EXPECT_EQ(nf["ctl"], 0) << "uid 65534 cannot map its own lwpctl page";
  EXPECT_EQ(nf["ptrace"], EPERM);
  EXPECT_EQ(nf["setparam"], EPERM);
  EXPECT_EQ(nf["peek"], EACCES) << "another uid's lwpctl page is readable";

  auto inspect = v1::Inspect::NewStub(d.channel());
  auto ctx = call_ctx("");
  v1::ListProcsReply procs;
  ASSERT_TRUE(inspect->ListProcs(ctx.get(), {}, &procs).ok());
  std::map<int32_t, uint32_t> uid_of;
  for (const auto& p : procs.procs()) uid_of[p.pid()] = p.uid();
  EXPECT_EQ(uid_of.at(rf["pid"]), 0u);
  EXPECT_EQ(uid_of.at(nf["pid"]), kOtherUid);

  // The lwpctl page belongs to its process's uid, readable only by it.
  struct stat st {};
  ASSERT_EQ(::stat((d.runtime_dir() + "/lwpctl." + std::to_string(nf["pid"])).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kOtherUid);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  // The daemon logged the kernel's pid of the peer (this test's child: setpriv execs).
  EXPECT_NE(d.log().find("attached as uid 65534 (comm 'server_identity', peer uid 65534 pid " +
                         std::to_string(nobody.pid())),
            std::string::npos)
      << d.log();

  for (Spawned* s : {&nobody, &root}) {
    s->close_in();
    auto st2 = s->exit_status();
    ASSERT_TRUE(st2.has_value());
    EXPECT_TRUE(WIFEXITED(*st2) && WEXITSTATUS(*st2) == 0) << *st2;
  }
}

// A free TCP port on 127.0.0.1 (bound and released: another process could take it first,
// which would fail the test loudly, not wrongly).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  ::close(fd);
  return port;
}

// The uid the kernel gives a session opened on `ch`, with the admin token if not empty.
uint32_t session_uid(std::shared_ptr<grpc::Channel> ch, const std::string& admin_token) {
  auto kernel = v1::Kernel::NewStub(ch);
  grpc::ClientContext ctx;
  if (!admin_token.empty()) ctx.AddMetadata("lwpd-admin-token", admin_token);
  auto session = kernel->Session(&ctx);
  v1::SessionRequest req;
  req.mutable_attach()->set_comm("tcp");
  v1::SessionEvent ev;
  uint32_t uid = ~0u;
  if (session->Write(req) && session->Read(&ev) && ev.has_attached()) {
    auto inspect = v1::Inspect::NewStub(ch);
    auto lctx = call_ctx("");
    v1::ListProcsReply procs;
    if (inspect->ListProcs(lctx.get(), {}, &procs).ok())
      for (const auto& p : procs.procs())
        if (p.pid() == ev.attached().pid()) uid = p.uid();
  }
  ctx.TryCancel();
  session->Finish().IgnoreError();
  return uid;
}

TEST(Listener, TcpSessionsAreNobody) {
  const std::string tcp = "127.0.0.1:" + std::to_string(free_port());
  DaemonProcess d(2, {"--listen", tcp});
  ASSERT_TRUE(d.ready()) << d.log();
  auto ch = grpc::CreateChannel(tcp, grpc::InsecureChannelCredentials());
  EXPECT_EQ(session_uid(ch, ""), 32767u);
  std::string token;
  std::ifstream(d.runtime_dir() + "/admin.token") >> token;
  ASSERT_EQ(token.size(), 32u);
  EXPECT_EQ(session_uid(ch, token), 0u);
  EXPECT_EQ(session_uid(ch, std::string(32, '0')), 32767u);  // a forged token is no token
  EXPECT_EQ(session_uid(d.channel(), ""), 0u);               // this test's own uid: root
}

TEST(Listener, ChurnKeepsIdentityAndCount) {
  DaemonProcess d(2);
  ASSERT_TRUE(d.ready()) << d.log();
  constexpr int kThreads = 4, kRounds = 25;
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&] {
      // A fresh connection each round (DaemonProcess::channel uses no shared subchannel):
      // fds are closed by gRPC and reused by the listener all the time.
      for (int i = 0; i < kRounds; i++)
        if (session_uid(d.channel(), "") != 0) wrong++;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(wrong.load(), 0);
  // Of the 100 connections only the one asking is left (one channel: polling must not add
  // connections), and perhaps one more gRPC has not closed yet (seen under TSan, where it
  // stayed for over 20 s; the daemon-side lifetime of a connection is gRPC's). Without the
  // fstat check every connection ever handed over would still count.
  auto inspect = v1::Inspect::NewStub(d.channel());
  v1::StatsReply s;
  EXPECT_TRUE(poll_until(
      [&] {
        auto ctx = call_ctx("");
        return inspect->Stats(ctx.get(), {}, &s).ok() && s.conns_live() <= 2;
      },
      20s))
      << s.conns_live();
  EXPECT_GE(s.conns_accepted(), uint64_t{kThreads * kRounds});
}

// ---- the shared-memory fast path's hello (common/region_abi.h) -----------------------------

std::map<int32_t, std::string> transports(const DaemonProcess& d) {
  auto inspect = v1::Inspect::NewStub(d.channel());
  auto ctx = call_ctx("");
  v1::ListProcsReply procs;
  EXPECT_TRUE(inspect->ListProcs(ctx.get(), {}, &procs).ok());
  std::map<int32_t, std::string> out;
  for (const auto& p : procs.procs()) out[p.pid()] = p.transport();
  return out;
}

// Each real shim process gets the transport it asked for (or the default: shm on a Unix
// socket), another uid's included, and inspection says which.
TEST(Listener, RegionHelloGivesEachProcessItsTransport) {
  DaemonProcess d(2);
  ASSERT_TRUE(d.ready()) << d.log();
  Spawned shm({"env", "LWPD_TRANSPORT=shm", IDENTITY_FIXTURE_BINARY}, d);
  Spawned grpc({"env", "LWPD_TRANSPORT=grpc", IDENTITY_FIXTURE_BINARY}, d);
  std::vector<std::string> av = kAsNobody;
  av.push_back(IDENTITY_FIXTURE_BINARY);  // the default: shm where offered
  Spawned nobody(av, d);
  const int shm_pid = fields(shm.line())["pid"];
  const int grpc_pid = fields(grpc.line())["pid"];
  const int nobody_pid = fields(nobody.line())["pid"];
  ASSERT_GT(shm_pid, 0);
  ASSERT_GT(grpc_pid, 0);
  ASSERT_GT(nobody_pid, 0);
  auto t = transports(d);
  EXPECT_EQ(t[shm_pid], "shm");
  EXPECT_EQ(t[grpc_pid], "grpc");
  EXPECT_EQ(t[nobody_pid], "shm");
  for (Spawned* s : {&shm, &grpc, &nobody}) {
    s->close_in();
    auto st = s->exit_status();
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
  }
  EXPECT_EQ(stats(d).conns_region_hellos(), 2u);
}

// A daemon started with --no-shm offers no region: a client that insists cannot attach (and
// says why), the default falls back to gRPC.
TEST(Listener, NoShmDaemonOffersNoRegion) {
  DaemonProcess d(2, {"--no-shm"});
  ASSERT_TRUE(d.ready()) << d.log();
  Spawned forced({"env", "LWPD_TRANSPORT=shm", IDENTITY_FIXTURE_BINARY}, d);
  auto st = forced.exit_status();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << *st;
  EXPECT_NE(d.log().find("refused: Protocol not supported"), std::string::npos) << d.log();
  Spawned dflt({IDENTITY_FIXTURE_BINARY}, d);
  const int pid = fields(dflt.line())["pid"];
  ASSERT_GT(pid, 0);
  EXPECT_EQ(transports(d)[pid], "grpc");
  dflt.close_in();
  st = dflt.exit_status();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
}

}  // namespace

// `server_tests --child-conns PATH N`: open N raw connections that send the HTTP/2
// preface and an empty SETTINGS frame; a connection is open when the server's SETTINGS
// come back, refused when the daemon closes it. Prints "open X refused Y", then holds
// them until stdin ends.
int child_conns(const char* path, int n) {
  static const char kHello[] =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
      "\x00\x00\x00\x04\x00\x00\x00\x00\x00";  // SETTINGS, no parameters
  std::vector<int> fds;
  int open = 0, refused = 0;
  for (int i = 0; i < n; i++) {
    int fd = raw_connect(path);
    if (fd < 0 || ::send(fd, kHello, sizeof kHello - 1, MSG_NOSIGNAL) < 0) {
      refused++;
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    char c;
    if (::poll(&p, 1, 20000) == 1 && ::recv(fd, &c, 1, MSG_PEEK) == 1) {
      open++;
    } else {
      refused++;
    }
    fds.push_back(fd);
  }
  std::printf("open %d refused %d\n", open, refused);
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  for (int fd : fds) ::close(fd);
  return 0;
}

}  // namespace lwpd::test
