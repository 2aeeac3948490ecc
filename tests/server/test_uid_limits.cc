// Per-uid limits end to end: shim processes run as uid 65534 (setpriv) meet
// --maxproc-per-uid and --maxlwp-per-uid with EAGAIN, while root still attaches and
// creates LWPs; `Stats` shows what each uid holds.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "daemon.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kNobody = 65534;

// server_trace_fixture (attach, then "park N" lines) as `uid`, stdin/stdout on pipes.
class Client {
 public:
  Client(const std::string& address, uint32_t uid) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    host_ = fork();
    if (host_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(out[1], 2);  // errors ("lwpd_attach: ...") come back as the reply
      setenv("LWPD_ENDPOINT", address.c_str(), 1);
      const std::string id = std::to_string(uid);
      execlp("setpriv", "setpriv", "--reuid", id.c_str(), "--regid", id.c_str(),
             "--clear-groups", TRACE_FIXTURE_BINARY, static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = out[0];
  }
  ~Client() {
    if (in_ >= 0) close(in_);
    if (out_ >= 0) close(out_);
    if (host_ > 0) {
      kill(host_, SIGKILL);
      waitpid(host_, nullptr, 0);
    }
  }
  void send(const std::string& line) {
    std::string l = line + "\n";
    ASSERT_EQ(write(in_, l.data(), l.size()), static_cast<ssize_t>(l.size()));
  }
  // One line of output ("" at EOF or after 30 s).
  std::string reply() {
    std::string l;
    const auto end = Clock::now() + 30s;
    char c;
    while (Clock::now() < end) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      if (read(out_, &c, 1) != 1) break;
      if (c == '\n') {
        if (l.rfind("==", 0) == 0) {  // a sanitizer's own note on stderr (ASan build)
          l.clear();
          continue;
        }
        return l;
      }
      l += c;
    }
    return l;
  }

 private:
  pid_t host_ = -1;
  int in_ = -1, out_ = -1;
};

bool is_pid(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

v1::StatsReply stats(DaemonProcess& d) {
  auto inspect = v1::Inspect::NewStub(d.channel());
  grpc::ClientContext ctx;
  v1::StatsReply s;
  EXPECT_TRUE(inspect->Stats(&ctx, {}, &s).ok());
  return s;
}

const v1::UidUsage* usage(const v1::StatsReply& s, uint32_t uid) {
  for (const auto& u : s.uids())
    if (u.uid() == uid) return &u;
  return nullptr;
}

TEST(UidLimits, PerUidProcessesAndLwpsHoldWhileOtherUidsAttach) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run clients as another uid";
  DaemonProcess d(2, {"--maxproc-per-uid", "2", "--maxlwp-per-uid", "3"});
  ASSERT_TRUE(d.ready()) << d.log();

  Client a(d.address(), kNobody), b(d.address(), kNobody);
  const std::string ra = a.reply(), rb = b.reply();
  ASSERT_TRUE(is_pid(ra)) << ra << "\n" << d.log();
  ASSERT_TRUE(is_pid(rb)) << rb << "\n" << d.log();
  Client c(d.address(), kNobody);  // a third process for uid 65534: over RLIMIT_NPROC
  const std::string refused = c.reply();
  EXPECT_NE(refused.find("lwpd_attach"), std::string::npos) << refused;
  EXPECT_NE(refused.find("Resource temporarily unavailable"), std::string::npos) << refused;

  Client root(d.address(), 0);  // another uid is not held back
  const std::string rr = root.reply();
  ASSERT_TRUE(is_pid(rr)) << rr << "\n" << d.log();

  // RLIMIT_NTHR counts every LWP of the uid but each process's first: 2 + 1, then EAGAIN.
  a.send("park 2");
  const std::string lids = a.reply();
  EXPECT_EQ(std::count(lids.begin(), lids.end(), ' '), 1) << lids;
  b.send("park 2");
  const std::string over = b.reply();
  EXPECT_NE(over.find("_lwp_create: Resource temporarily unavailable"), std::string::npos)
      << over;
  root.send("park 5");  // root is exempt
  const std::string root_lids = root.reply();
  EXPECT_EQ(std::count(root_lids.begin(), root_lids.end(), ' '), 4) << root_lids;

  // b died: its process and LWP are given back; a's two LWPs remain.
  const auto end = Clock::now() + 20s;
  v1::StatsReply s = stats(d);
  while (usage(s, kNobody) == nullptr || usage(s, kNobody)->nprocs() != 1) {
    ASSERT_LT(Clock::now(), end) << s.DebugString();
    std::this_thread::sleep_for(10ms);  // polling the daemon's view, not synchronising
    s = stats(d);
  }
  EXPECT_EQ(s.maxproc_per_uid(), 2);
  EXPECT_EQ(s.maxlwp_per_uid(), 3);
  EXPECT_EQ(usage(s, kNobody)->nlwps(), 2);
  ASSERT_NE(usage(s, 0), nullptr);
  EXPECT_EQ(usage(s, 0)->nprocs(), 1);
  EXPECT_EQ(usage(s, 0)->nlwps(), 5);
}

}  // namespace
}  // namespace lwpd::test
