// NetBSD's t_lwp_create.c (§7.1), the _lwp_wait/_lwp_detach parts of t_join.c/t_detach.c
// (§7.6) and the derived checks 1-4, 12-14 of §7.8, through the shim against a real lwpd.
#include <sys/wait.h>
#include <unistd.h>

#include "client_test_util.h"

namespace lwpd::clienttest {
namespace {

std::atomic<lwpid_t> g_seen{0};
std::atomic<int> g_flag{0};
std::atomic<int> g_result{0};
std::atomic<int> g_errno{0};

// ---- §7.1 t_lwp_create.c ----------------------------------------------------------------

void store_self_and_exit(void*) {
  g_seen = _lwp_self();
  _lwp_exit();
}

TEST(ClientLwpCreate, LwpCreateWorks) {
  EXPECT_CHILD_OK([] {
    ucontext_t uc;
    constexpr size_t kStack = 16 * 1024;  // as the NetBSD test
    char* stack = static_cast<char*>(malloc(kStack));
    _lwp_makecontext(&uc, store_self_and_exit, nullptr, nullptr, stack, kStack);
    lwpid_t lid = 0;
    C_OK(_lwp_create(&uc, 0, &lid));
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_seen.load(), lid);
  });
}

TEST(ClientLwpCreate, FailNoUcCpu) {
  EXPECT_CHILD_OK([] {
    ucontext_t uc;
    char* stack = static_cast<char*>(malloc(16384));
    _lwp_makecontext(&uc, store_self_and_exit, nullptr, nullptr, stack, 16384);
    uc.uc_flags &= ~_UC_CPU;
    lwpid_t lid;
    C_ERR(_lwp_create(&uc, 0, &lid), EINVAL);
    // A bare getcontext() has no NetBSD flags at all.
    ucontext_t raw;
    getcontext(&raw);
    raw.uc_flags = 0;
    C_ERR(_lwp_create(&raw, 0, &lid), EINVAL);
  });
}

TEST(ClientLwpCreate, Amd64FailUntouchableRflags) {
  EXPECT_CHILD_OK([] {
    ucontext_t uc;
    char* stack = static_cast<char*>(malloc(16384));
    _lwp_makecontext(&uc, store_self_and_exit, nullptr, nullptr, stack, 16384);
    uc.uc_mcontext.gregs[REG_EFL] |= 0xffc08028;  // PSL_MBZ
    lwpid_t lid;
    C_ERR(_lwp_create(&uc, 0, &lid), EINVAL);
  });
}

TEST(ClientLwpCreate, Amd64FailPcTooHigh) {
  EXPECT_CHILD_OK([] {
    ucontext_t uc;
    char* stack = static_cast<char*>(malloc(16384));
    _lwp_makecontext(&uc, store_self_and_exit, nullptr, nullptr, stack, 16384);
    // lwpd's end of user space is Linux's, not NetBSD's 0x7f7fffffc000 (README, compatibility
    // notes): the LWPs' code lives in Linux processes whose libraries are mapped above it.
    uc.uc_mcontext.gregs[REG_RIP] = 0x00007ffffffff000LL;
    lwpid_t lid;
    C_ERR(_lwp_create(&uc, 0, &lid), EINVAL);
  });
}

// ---- §7.8.13 / 14 -----------------------------------------------------------------------

void set_flag(void*) { g_flag = 1; }

TEST(ClientLwpCreate, SuspendedThenContinueRuns) {
  EXPECT_CHILD_OK([] {
    lwpid_t lid = spawn(set_flag, nullptr, LWP_SUSPENDED);
    C_OK(_lwp_continue(lid));  // no lost continue
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_flag.load(), 1);
  });
}

TEST(ClientLwpCreate, MainLidIsPidAndNewLidIsFresh) {
  EXPECT_CHILD_OK([] {
    C_CHECK(lwpd_getpid() > 0);
    C_EQ(_lwp_self(), lwpd_getpid());
    g_seen = 0;
    lwpid_t lid = spawn(store_self_and_exit, nullptr);
    lwpid_t departed = 0;
    C_OK(_lwp_wait(0, &departed));
    C_EQ(departed, lid);
    C_EQ(g_seen.load(), lid);
    C_CHECK(lid > 0 && lid != lwpd_getpid());
  });
}

void with_private(void*) {
  g_seen = static_cast<lwpid_t>(reinterpret_cast<intptr_t>(_lwp_getprivate()));
}

TEST(ClientLwpCreate, PrivateFromMakecontext) {
  EXPECT_CHILD_OK([] {
    ucontext_t uc;
    char* stack = static_cast<char*>(malloc(65536));
    _lwp_makecontext(&uc, with_private, nullptr, reinterpret_cast<void*>(0x1234), stack, 65536);
    lwpid_t lid;
    C_OK(_lwp_create(&uc, 0, &lid));
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_seen.load(), 0x1234);
    _lwp_setprivate(reinterpret_cast<void*>(0x5678));
    C_EQ(reinterpret_cast<intptr_t>(_lwp_getprivate()), 0x5678);
  });
}

// ---- §7.6 t_join.c / t_detach.c (the _lwp_* layer under pthread_join/detach) ----------

void touch_stack(void* arg) {
  // Use a growing part of the stack, as t_join's threads do.
  size_t n = reinterpret_cast<size_t>(arg);
  volatile char buf[32 * 1024];
  for (size_t i = 0; i < n && i < sizeof buf; i += 512) buf[i] = static_cast<char>(i);
}

TEST(ClientLwpWait, JoinLike) {
  EXPECT_CHILD_OK([] {
    C_ERR(_lwp_wait(_lwp_self(), nullptr), EDEADLK);  // self-join
    lwpid_t lids[25];
    for (int i = 0; i < 25; i++)
      lids[i] = spawn(touch_stack, reinterpret_cast<void*>(size_t(i) * 1024), 0,
                      64 * 1024 + size_t(i) * 4096);
    for (int i = 0; i < 25; i++) {
      lwpid_t d = 0;
      C_OK(_lwp_wait(lids[i], &d));
      C_EQ(d, lids[i]);
    }
    C_ERR(_lwp_wait(lids[0], nullptr), ESRCH);  // second join
    C_ERR(_lwp_detach(lids[1]), ESRCH);         // detach after join
  });
}

void park_until_flag(void*) {
  while (g_flag.load() == 0) _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr);
}

TEST(ClientLwpWait, DetachLike) {
  EXPECT_CHILD_OK([] {
    lwpid_t d = spawn(park_until_flag, nullptr, LWP_DETACHED);
    C_ERR(_lwp_wait(d, nullptr), EINVAL);  // join a detached LWP
    C_ERR(_lwp_detach(d), EINVAL);         // already detached
    g_flag = 1;
    C_CHECK(_lwp_unpark(d, nullptr) == 0 || errno == ESRCH);  // it may have seen the flag
    // Once it has exited it is not found any more (t_detach's cancel -> ESRCH).
    long end = now_ms() + 10000;
    while (_lwp_kill(d, 0) == 0 && now_ms() < end) ksleep_ms(5);
    C_ERR(_lwp_kill(d, 0), ESRCH);
  });
}

// ---- §7.8 1-4, 12 -----------------------------------------------------------------------

TEST(ClientLwpWait, SelfAndOnlyLwp) {
  EXPECT_CHILD_OK([] {
    C_ERR(_lwp_wait(_lwp_self(), nullptr), EDEADLK);
    C_ERR(_lwp_wait(0, nullptr), ESRCH);
  });
}

std::atomic<lwpid_t> g_main{0};

void wait_for_main(void*) {
  g_flag = 1;
  lwpid_t d = 0;
  g_result = _lwp_wait(g_main.load(), &d);
  g_errno = errno;
  C_EQ(g_result.load(), 0);  // main exits; we collect it and are then the last LWP
  C_EQ(d, g_main.load());
}

TEST(ClientLwpWait, MutualWaitDeadlocks) {
  EXPECT_CHILD_OK([] {
    g_main = _lwp_self();
    lwpid_t b = spawn(wait_for_main, nullptr);
    while (g_flag.load() == 0) ksleep_ms(1);
    ksleep_ms(50);  // let B enter _lwp_wait
    C_ERR(_lwp_wait(b, nullptr), EDEADLK);
  });  // main's _lwp_exit lets B's wait succeed; B's exit ends the process with 0
}

void wait_any(void*) {
  g_flag = 1;
  lwpid_t d = 0;
  C_OK(_lwp_wait(0, &d));
  C_EQ(d, g_main.load());
}

TEST(ClientLwpWait, AllWaitingDeadlocks) {
  EXPECT_CHILD_OK([] {
    g_main = _lwp_self();
    spawn(wait_any, nullptr);
    while (g_flag.load() == 0) ksleep_ms(1);
    ksleep_ms(50);
    C_ERR(_lwp_wait(0, nullptr), EDEADLK);
  });
}

std::atomic<lwpid_t> g_target{0};
std::atomic<int> g_waiter_started{0};

// Not g_flag: that is what releases the target (park_until_flag); setting it here let the
// target exit before it was detached, and the waiter then reaped it (a flake seen in CI).
void wait_for_target(void*) {
  g_waiter_started = 1;
  int r = _lwp_wait(g_target.load(), nullptr);
  g_errno = errno;
  g_result = r;
}

TEST(ClientLwpWait, DetachWakesWaiterWithEinval) {
  EXPECT_CHILD_OK([] {
    lwpid_t c = spawn(park_until_flag, nullptr);  // g_flag stays 0 until the end
    g_target = c;
    lwpid_t b = spawn(wait_for_target, nullptr);
    while (g_waiter_started.load() == 0) ksleep_ms(1);
    ksleep_ms(50);  // most often b sleeps in _lwp_wait by now; if not, it gets EINVAL at once
    C_OK(_lwp_detach(c));
    C_OK(_lwp_wait(b, nullptr));
    C_EQ(g_result.load(), -1);
    C_EQ(g_errno.load(), EINVAL);
    C_ERR(_lwp_wait(c, nullptr), EINVAL);
    g_flag = 1;
    C_CHECK(_lwp_unpark(c, nullptr) == 0 || errno == ESRCH);
  });
}

void exit_last(void*) {
  while (_lwp_kill(g_main.load(), 0) == 0) ksleep_ms(2);  // until main is gone
  _lwp_exit();  // the last live LWP: the process exits with status 0
}

TEST(ClientLwpExit, LastLwpExitEndsProcessWithZero) {
  int st = run_child([] {
    g_main = _lwp_self();
    spawn(exit_last, nullptr, LWP_DETACHED);
  });
  EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << describe_status(st);
}

void spin_forever(void*) {
  g_flag = 1;
  for (;;) asm volatile("" ::: "memory");
}

TEST(ClientLwpExit, SigkillEndsProcessWithSpinningLwp) {
  int st = run_child([] {
    spawn(spin_forever, nullptr);
    while (g_flag.load() == 0) ksleep_ms(1);
    _lwp_kill(_lwp_self(), SIGKILL);
    ksleep_ms(10000);
    _exit(3);  // not reached: the process was killed
  });
  EXPECT_TRUE(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
}

}  // namespace
}  // namespace lwpd::clienttest
