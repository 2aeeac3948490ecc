// Park/unpark/wakeup, kill, names, lwpctl (§7.2 and §7.8 5-11) and signal delivery through
// the shim against a real lwpd.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_test_util.h"

namespace lwpd::clienttest {
namespace {

std::atomic<int> g_flag{0};
std::atomic<int> g_result{0};
std::atomic<int> g_errno{0};
std::atomic<lwpid_t> g_seen{0};
std::atomic<int> g_stop{0};

int park_timeout_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  return _lwp_park(CLOCK_MONOTONIC, 0, &ts, 0, nullptr, nullptr);
}

// ---- §7.2 lwpctl_counter ------------------------------------------------------------------

TEST(ClientLwpctl, Counter) {
  EXPECT_CHILD_OK([] {
    struct lwpctl* lc = nullptr;
    C_OK(_lwp_ctl(LWPCTL_FEATURE_PCTR, &lc));
    C_CHECK(lc != nullptr);
    int c1 = lc->lc_pctr;
    C_CHECK(lc->lc_curcpu >= 0 && lc->lc_curcpu < 2);  // we are running
    // NetBSD's test sleeps with nanosleep(10 ms); host calls are not emulated, so the
    // emulated sleep is a timed park.
    C_ERR(park_timeout_ms(10), ETIMEDOUT);
    int c2 = lc->lc_pctr;
    C_CHECK(c1 != c2);
  });
}

// ---- §7.8.11 ----------------------------------------------------------------------------

std::atomic<struct lwpctl*> g_lc{nullptr};

void ctl_and_exit(void*) {
  struct lwpctl* lc;
  C_OK(_lwp_ctl(LWPCTL_FEATURE_CURCPU, &lc));
  g_lc = lc;
}

TEST(ClientLwpctl, FeaturesSamePointerAndExited) {
  EXPECT_CHILD_OK([] {
    struct lwpctl *a = nullptr, *b = nullptr;
    C_ERR(_lwp_ctl(0x4, &a), ENODEV);
    C_OK(_lwp_ctl(LWPCTL_FEATURE_CURCPU, &a));
    C_OK(_lwp_ctl(LWPCTL_FEATURE_CURCPU | LWPCTL_FEATURE_PCTR, &b));
    C_CHECK(a == b);
    lwpid_t lid = spawn(ctl_and_exit, nullptr);
    long end = now_ms() + 10000;
    while ((g_lc.load() == nullptr || g_lc.load()->lc_curcpu != LWPCTL_CPU_EXITED) &&
           now_ms() < end)
      park_timeout_ms(2);
    C_EQ(g_lc.load()->lc_curcpu, LWPCTL_CPU_EXITED);
    C_CHECK(g_lc.load() != a);
    // §7.8.9: a zombie is not found by _lwp_kill, but can still be collected.
    C_ERR(_lwp_kill(lid, 0), ESRCH);
    C_OK(_lwp_wait(lid, nullptr));
  });
}

// ---- §7.8.5-8 park / unpark / wakeup ----------------------------------------------------

TEST(ClientPark, UnparkBeforeParkIsOneToken) {
  EXPECT_CHILD_OK([] {
    C_OK(_lwp_unpark(_lwp_self(), nullptr));
    C_ERR(_lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr), EALREADY);
    C_ERR(park_timeout_ms(50), ETIMEDOUT);  // the token is spent: a second park blocks
    C_OK(_lwp_unpark(_lwp_self(), nullptr));
    C_OK(_lwp_unpark(_lwp_self(), nullptr));
    C_ERR(park_timeout_ms(50), EALREADY);
    C_ERR(park_timeout_ms(50), ETIMEDOUT);  // two unparks collapse into one
  });
}

// The parkers below record how their park ended and then set g_done. A test cannot see when
// the parker is asleep in the kernel, so it pokes (unpark, wakeup, signal) repeatedly until
// g_done: each poke either ends a park that sleeps or comes too early, and an early one must
// not change what a later park reports.
std::atomic<int> g_done{0};

void park_once(void*) {
  g_flag = 1;
  g_result = _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr);
  g_errno = errno;
  g_done = 1;
}

// Parks again while a park ends in EALREADY: an unpark or _lwp_wakeup() that finds this LWP
// not asleep yet leaves a token for its next park instead (§3.5, §3.6).
void park_past_early_tokens(void*) {
  g_flag = 1;
  int r;
  while ((r = _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr)) == -1 &&
         errno == EALREADY) {
  }
  g_result = r;
  g_errno = errno;
  g_done = 1;
}

// Calls poke() every 2 ms until the parker is done (10 s at most). A poke may fail only with
// ESRCH, once the parker is done (it may have exited since the check).
template <class Poke>
void poke_until_done(Poke poke) {
  const long end = now_ms() + 10000;
  while (g_done.load() == 0 && now_ms() < end) {
    if (poke() != 0) C_CHECK(errno == ESRCH && g_done.load() == 1);
    park_timeout_ms(2);
  }
  C_EQ(g_done.load(), 1);
}

TEST(ClientPark, UnparkWakesParked) {
  EXPECT_CHILD_OK([] {
    lwpid_t lid = spawn(park_past_early_tokens, nullptr);
    while (g_flag.load() == 0) park_timeout_ms(1);
    poke_until_done([&] { return _lwp_unpark(lid, nullptr); });
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_result.load(), 0);
  });
}

TEST(ClientPark, UnparkAll) {
  EXPECT_CHILD_OK([] {
    C_EQ(_lwp_unpark_all(nullptr, 5, nullptr), 1024);
    lwpid_t t[2] = {_lwp_self(), 999999};
    C_ERR(_lwp_unpark_all(t, 0, nullptr), EINVAL);
    C_ERR(_lwp_unpark_all(t, 1025, nullptr), EINVAL);
    C_ERR(_lwp_unpark_all(t, 2, nullptr), ESRCH);
    C_ERR(park_timeout_ms(50), EALREADY);  // the good target was still unparked
  });
}

void spin_then_park(void*) {
  g_flag = 1;
  while (g_stop.load() == 0) {
  }
  g_result = _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr);
  g_errno = errno;
}

TEST(ClientPark, WakeupRunningIsEnodevThenEalready) {
  EXPECT_CHILD_OK([] {
    C_ERR(_lwp_wakeup(_lwp_self()), ENODEV);
    C_ERR(park_timeout_ms(50), EALREADY);
    lwpid_t lid = spawn(spin_then_park, nullptr);
    while (g_flag.load() == 0) park_timeout_ms(1);
    C_ERR(_lwp_wakeup(lid), ENODEV);  // running (or runnable), not sleeping
    g_stop = 1;
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_result.load(), -1);
    C_EQ(g_errno.load(), EALREADY);
  });
}

TEST(ClientPark, WakeupParkedIsEintr) {
  EXPECT_CHILD_OK([] {
    lwpid_t lid = spawn(park_past_early_tokens, nullptr);
    while (g_flag.load() == 0) park_timeout_ms(1);
    // Too early is ENODEV (not asleep); the one that finds the parker asleep succeeds.
    long end = now_ms() + 10000;
    int r;
    while ((r = _lwp_wakeup(lid)) == -1 && errno == ENODEV && now_ms() < end) park_timeout_ms(1);
    C_EQ(r == 0 ? 0 : errno, 0);  // a failure shows its errno
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_result.load(), -1);
    C_EQ(g_errno.load(), EINTR);
  });
}

TEST(ClientPark, Timeouts) {
  EXPECT_CHILD_OK([] {
    struct timespec ts = {0, 1000000000L};
    C_ERR(_lwp_park(CLOCK_MONOTONIC, 0, &ts, 0, nullptr, nullptr), EINVAL);
    struct timespec past;
    clock_gettime(CLOCK_REALTIME, &past);
    past.tv_sec -= 1;
    C_ERR(_lwp_park(CLOCK_REALTIME, TIMER_ABSTIME, &past, 0, nullptr, nullptr), ETIMEDOUT);
    struct timespec rel = {0, 100000000L};
    long t0 = now_ms();
    C_ERR(_lwp_park(CLOCK_MONOTONIC, 0, &rel, 0, nullptr, nullptr), ETIMEDOUT);
    C_CHECK(now_ms() - t0 >= 90);
    C_EQ(rel.tv_sec, 0);
    C_EQ(rel.tv_nsec, 0);
    C_ERR(_lwp_park(CLOCK_PROCESS_CPUTIME_ID + 100, 0, &rel, 0, nullptr, nullptr), EINVAL);
  });
}

// ---- §7.8.9-10 kill, names --------------------------------------------------------------

TEST(ClientMisc, KillBadSignal) {
  EXPECT_CHILD_OK([] {
    C_ERR(_lwp_kill(_lwp_self(), NSIG), EINVAL);
    C_ERR(_lwp_kill(_lwp_self(), -1), EINVAL);
    C_OK(_lwp_kill(_lwp_self(), 0));
    C_ERR(_lwp_kill(999999, 0), ESRCH);
  });
}

TEST(ClientMisc, Names) {
  EXPECT_CHILD_OK([] {
    const char* forty = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
    C_OK(_lwp_setname(0, forty));
    char buf[64];
    memset(buf, 'x', sizeof buf);
    C_OK(_lwp_getname(_lwp_self(), buf, sizeof buf));
    C_CHECK(strcmp(buf, "0123456789abcde") == 0);
    char small[4];
    C_ERR(_lwp_getname(0, small, sizeof small), ENAMETOOLONG);
    C_CHECK(memcmp(small, "0123", 4) == 0);
    C_ERR(_lwp_getname(999999, buf, sizeof buf), ESRCH);
  });
}

TEST(ClientMisc, SchedParamAndAffinity) {
  EXPECT_CHILD_OK([] {
    int policy = -5;
    struct sched_param sp = {};
    C_OK(_sched_getparam(0, _lwp_self(), &policy, &sp));
    C_EQ(policy, SCHED_OTHER);
    sp.sched_priority = 5;
    C_ERR(_sched_setparam(0, _lwp_self(), SCHED_OTHER, &sp), EINVAL);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(1, &set);
    C_OK(_sched_setaffinity(0, _lwp_self(), sizeof set, &set));
    cpu_set_t got;
    CPU_ZERO(&got);
    C_OK(_sched_getaffinity(0, _lwp_self(), sizeof got, &got));
    C_CHECK(CPU_ISSET(1, &got) && !CPU_ISSET(0, &got));
    C_OK(lwpd_yield());
    struct lwpctl* lc;
    C_OK(_lwp_ctl(LWPCTL_FEATURE_CURCPU, &lc));
    C_EQ(lc->lc_curcpu, 1);  // we run on our only allowed vCPU
    CPU_ZERO(&set);
    C_OK(_sched_setaffinity(0, _lwp_self(), sizeof set, &set));  // empty: clear
  });
}

// ---- signals ----------------------------------------------------------------------------

void on_usr1(int) { g_seen = _lwp_self(); }

void spin_until_seen(void*) {
  g_flag = 1;
  while (g_seen.load() == 0) {
  }
}

TEST(ClientSignal, KillRunsHandlerOnTargetLwp) {
  EXPECT_CHILD_OK([] {
    struct sigaction sa = {};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    C_OK(sigaction(SIGUSR1, &sa, nullptr));
    lwpid_t lid = spawn(spin_until_seen, nullptr);
    while (g_flag.load() == 0) park_timeout_ms(1);
    C_OK(_lwp_kill(lid, SIGUSR1));
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_seen.load(), lid);
  });
}

TEST(ClientSignal, SignalInterruptsPark) {
  EXPECT_CHILD_OK([] {
    struct sigaction sa = {};
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    C_OK(sigaction(SIGUSR1, &sa, nullptr));
    lwpid_t lid = spawn(park_once, nullptr);
    while (g_flag.load() == 0) park_timeout_ms(1);
    // A signal that comes before the park runs the handler in user mode and is gone.
    poke_until_done([&] { return _lwp_kill(lid, SIGUSR1); });
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_result.load(), -1);
    C_EQ(g_errno.load(), EINTR);
    C_EQ(g_seen.load(), lid);
  });
}

// A handler that itself makes calls, interrupting an LWP that is busy making calls: the
// nested calls must not disturb the interrupted one (each has its own context).
std::atomic<int> g_handled{0};

void on_usr2(int) {
  int saved = errno;
  char name[16];
  if (_lwp_getname(0, name, sizeof name) == 0 && lwpd_yield() == 0) g_handled.fetch_add(1);
  errno = saved;
}

void yield_until_stop(void*) {
  C_OK(_lwp_setname(0, "busy"));
  g_flag = 1;
  while (g_stop.load() == 0) {
    C_OK(lwpd_yield());
    char name[16];
    C_OK(_lwp_getname(0, name, sizeof name));
    C_CHECK(strcmp(name, "busy") == 0);
  }
}

TEST(ClientSignal, HandlerMakingCallsInterruptsCalls) {
  EXPECT_CHILD_OK([] {
    struct sigaction sa = {};
    sa.sa_handler = on_usr2;
    sigemptyset(&sa.sa_mask);
    C_OK(sigaction(SIGUSR2, &sa, nullptr));
    lwpid_t lid = spawn(yield_until_stop, nullptr);
    while (g_flag.load() == 0) park_timeout_ms(1);
    for (int i = 0; i < 20; i++) {
      C_OK(_lwp_kill(lid, SIGUSR2));
      park_timeout_ms(3);
    }
    long end = now_ms() + 10000;
    while (g_handled.load() == 0 && now_ms() < end) park_timeout_ms(2);
    g_stop = 1;
    C_OK(_lwp_wait(lid, nullptr));
    C_CHECK(g_handled.load() >= 1);
  });
}

// ---- attach / detach --------------------------------------------------------------------

void park_until_stop(void*) {
  while (g_stop.load() == 0) _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr);
}

TEST(ClientAttach, DetachAndReattach) {
  EXPECT_CHILD_OK([] {
    C_ERR(lwpd_attach(daemon().endpoint.c_str()), EBUSY);
    lwpid_t lid = spawn(park_until_stop, nullptr);
    C_ERR(lwpd_detach(), EBUSY);  // another LWP is alive
    g_stop = 1;
    C_CHECK(_lwp_unpark(lid, nullptr) == 0 || errno == ESRCH);
    C_OK(_lwp_wait(lid, nullptr));
    pid_t old = lwpd_getpid();
    C_OK(lwpd_detach());
    C_EQ(lwpd_getpid(), -1);
    C_EQ(_lwp_self(), -1);
    C_ERR(_lwp_wait(0, nullptr), EPERM);
    C_OK(lwpd_attach(daemon().endpoint.c_str()));
    C_CHECK(lwpd_getpid() > 0 && lwpd_getpid() != old);
    C_EQ(_lwp_self(), lwpd_getpid());
  });
}

TEST(ClientAttach, UnreachableDaemon) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    C_ERR(lwpd_attach("unix:///nonexistent/lwpd.sock"), ECONNREFUSED);
    C_EQ(lwpd_getpid(), -1);
    C_ERR(_lwp_unpark(1, nullptr), EPERM);
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << describe_status(st);
}

// LWPD_TRANSPORT (client/src/attach.cc): shm and grpc by name, the default (shm where the
// daemon offers it, as this test's daemon does), anything else is no transport at all; each
// attach works and each detach leaves the next attach possible.
TEST(ClientAttach, TransportChoice) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setenv("LWPD_TRANSPORT", "carrier-pigeon", 1);
    C_ERR(lwpd_attach(daemon().endpoint.c_str()), EINVAL);
    C_EQ(lwpd_getpid(), -1);
    for (const char* t : {"shm", "grpc", ""}) {
      setenv("LWPD_TRANSPORT", t, 1);
      C_OK(lwpd_attach(daemon().endpoint.c_str()));
      C_EQ(_lwp_kill(_lwp_self(), 0), 0);
      C_OK(lwpd_detach());
    }
    unsetenv("LWPD_TRANSPORT");
    C_OK(lwpd_attach(daemon().endpoint.c_str()));
    C_OK(lwpd_detach());
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << describe_status(st);
}

}  // namespace
}  // namespace lwpd::clienttest
