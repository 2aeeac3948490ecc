// The kick signal cannot be blocked through the C library (client/src/sigmask.cc): an LWP
// that blocks every signal and spins is still suspended and preempted, reads back the
// mask it asked for, and sigwait() never takes the kick. An LWP that blocks the kick with
// the raw system call cannot answer at all: the daemon takes its vCPU back
// (--kick-timeout-ms), its process dies, and other processes run on.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client_test_util.h"

namespace lwpd::clienttest {
namespace {

std::atomic<int> g_stop{0};
std::atomic<long> g_count{0};
std::atomic<int> g_mask_ok{-1};

void spin_all_blocked(void*) {
  sigset_t all, got;
  sigfillset(&all);
  C_OK(pthread_sigmask(SIG_BLOCK, &all, nullptr));
  C_OK(pthread_sigmask(SIG_BLOCK, nullptr, &got));
  // What the program asked for: every signal, the kick signal included.
  g_mask_ok = sigismember(&got, SIGRTMIN + 3) == 1 && sigismember(&got, SIGUSR1) == 1;
  while (g_stop.load(std::memory_order_relaxed) == 0)
    g_count.fetch_add(1, std::memory_order_relaxed);
}

TEST(ClientSigmask, BlockingEverySignalStillLetsSuspendStopTheSpinner) {
  EXPECT_CHILD_OK([] {
    lwpid_t lid = spawn(spin_all_blocked, nullptr);
    while (g_count.load() == 0) ksleep_ms(1);
    C_EQ(g_mask_ok.load(), 1);
    C_OK(_lwp_suspend(lid));  // needs the spinner in the kernel: a kick it answered
    const long c1 = g_count.load();
    ksleep_ms(50);
    C_EQ(g_count.load(), c1);
    C_OK(_lwp_continue(lid));
    const long end = now_ms() + 10000;
    while (g_count.load() == c1 && now_ms() < end) ksleep_ms(1);
    C_CHECK(g_count.load() > c1);
    g_stop = 1;
    C_OK(_lwp_wait(lid, nullptr));
  });
}

TEST(ClientSigmask, SetmaskAndSigprocmaskReadBackWhatWasAsked) {
  EXPECT_CHILD_OK([] {
    sigset_t set, got;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 3);
    sigaddset(&set, SIGUSR2);
#if defined(__SANITIZE_THREAD__)
    // Under TSan SIG_SETMASK passes through (client/src/sigmask.cc): SIG_BLOCK here.
    C_OK(sigprocmask(SIG_BLOCK, &set, nullptr));
#else
    C_OK(sigprocmask(SIG_SETMASK, &set, nullptr));
#endif
    C_OK(sigprocmask(SIG_BLOCK, nullptr, &got));
    C_CHECK(sigismember(&got, SIGRTMIN + 3) == 1);
    C_CHECK(sigismember(&got, SIGUSR2) == 1);
    // The real mask, as the kernel holds it: the kick signal is not blocked.
    uint64_t raw = 0;
    C_OK(syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &raw, sizeof raw));
    C_CHECK((raw & (uint64_t{1} << (SIGRTMIN + 3 - 1))) == 0);
    C_CHECK((raw & (uint64_t{1} << (SIGUSR2 - 1))) != 0);
    C_OK(pthread_sigmask(SIG_UNBLOCK, &set, nullptr));
    C_OK(pthread_sigmask(SIG_BLOCK, nullptr, &got));
    C_CHECK(sigismember(&got, SIGRTMIN + 3) == 0);
    C_CHECK(sigismember(&got, SIGUSR2) == 0);
    C_CHECK(pthread_sigmask(12345, &set, nullptr) == EINVAL);
  });
}

std::atomic<int> g_waited{0};
std::atomic<int> g_in_wait{0};

void wait_for_usr1(void*) {
  sigset_t all;
  sigfillset(&all);
  C_OK(pthread_sigmask(SIG_BLOCK, &all, nullptr));
  g_in_wait = 1;
  int sig = 0;
  C_EQ(sigwait(&all, &sig), 0);  // kicks come and go meanwhile; only SIGUSR1 ends it
  g_waited = sig;
}

TEST(ClientSigmask, SigwaitNeverTakesTheKick) {
  EXPECT_CHILD_OK([] {
    lwpid_t lid = spawn(wait_for_usr1, nullptr);
    while (g_in_wait.load() == 0) ksleep_ms(1);
    // Suspending it needs a kick that its handler answers while the thread is in sigwait().
    C_OK(_lwp_suspend(lid));
    C_OK(_lwp_continue(lid));
    C_EQ(g_waited.load(), 0);
    C_OK(_lwp_kill(lid, SIGUSR1));
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_waited.load(), SIGUSR1);
  });
}

std::atomic<int> g_rtmax{0};
void on_rtmax(int) { g_rtmax = 1; }

// Signal numbers at the shim's API are the host's: 64 is Linux's SIGRTMAX (NetBSD's 63),
// a real signal; from _NSIG (65) up they are out of range, as NSIG and up are on NetBSD.
TEST(ClientSigmask, KillTakesHostSignalNumbers) {
  EXPECT_CHILD_OK([] {
    C_ERR(_lwp_kill(_lwp_self(), _NSIG), EINVAL);
    C_ERR(_lwp_kill(_lwp_self(), -1), EINVAL);
    struct sigaction sa = {};
    sa.sa_handler = on_rtmax;
    sigemptyset(&sa.sa_mask);
    C_OK(sigaction(SIGRTMAX, &sa, nullptr));
    C_EQ(SIGRTMAX, 64);
    C_OK(_lwp_kill(_lwp_self(), SIGRTMAX));
    const long end = now_ms() + 10000;
    while (g_rtmax.load() == 0 && now_ms() < end) ksleep_ms(1);
    C_EQ(g_rtmax.load(), 1);
  });
}

// Holds a vCPU with the kick signal blocked behind the C library's back.
void deaf_spin(void*) {
  uint64_t all = ~uint64_t{0};
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, nullptr, sizeof all);
  g_count.fetch_add(1);
  for (;;) asm volatile("");
}

// The test daemon has two vCPUs: two deaf LWPs hold both. Another process's calls run
// once the daemon has taken them back; the deaf process is killed (SIGKILL).
TEST(ClientSigmask, DeafSpinnersLoseTheirVcpusAndOthersRun) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t hog = start_child([&] {
    spawn(deaf_spin, nullptr);
    spawn(deaf_spin, nullptr);
    while (g_count.load() < 2) ksleep_ms(1);
    C_EQ(write(ready[1], "r", 1), 1);
    for (;;) ksleep_ms(1000);  // parked: the deaf LWPs keep both vCPUs
  });
  ASSERT_GT(hog, 0);
  close(ready[1]);
  struct pollfd pfd = {.fd = ready[0], .events = POLLIN, .revents = 0};
  ASSERT_EQ(poll(&pfd, 1, 30000), 1) << "the deaf LWPs never ran";
  close(ready[0]);
  const long t0 = now_ms();
  const int st = run_child([] {
    for (int i = 0; i < 200; i++) C_OK(_lwp_kill(_lwp_self(), 0));
  });
  EXPECT_EQ(st, 0) << describe_status(st);
  const int hog_st = finish_child(hog, 30);
  EXPECT_TRUE(WIFSIGNALED(hog_st) && WTERMSIG(hog_st) == SIGKILL) << describe_status(hog_st);
  EXPECT_LT(now_ms() - t0, 25000);
}

}  // namespace
}  // namespace lwpd::clienttest
