// _lwp_* calls made from signal handlers (client/src/shim_internal.h, "Calls from signal handlers"):
// NetBSD's calls are system calls, safe in any handler; the shim runs a handler's call on a
// proxy worker so that the interrupted code's locks (a malloc arena) do not matter.
#include <link.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "client_test_util.h"

namespace lwpd::clienttest {
namespace {

std::atomic<int> g_ready{0};
std::atomic<int> g_stop{0};
std::atomic<int> g_handled{0};
std::atomic<int> g_kick_blocked{-1};

int park_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  return _lwp_park(CLOCK_MONOTONIC, 0, &ts, 0, nullptr, nullptr);
}

// Waits (parked, with a deadline) until `v` differs from `old`; false on timeout.
bool await_change(const std::atomic<int>& v, int old, long ms = 10000) {
  const long end = now_ms() + ms;
  while (v.load() == old) {
    if (now_ms() > end) return false;
    park_ms(1);
  }
  return true;
}

void on_usr2_calls(int) {
  const int saved = errno;
  char name[16];
  if (_lwp_getname(0, name, sizeof name) == 0 && strcmp(name, "mallocer") == 0 && lwpd_yield() == 0)
    g_handled.fetch_add(1);
  errno = saved;
}

// Spends most of its time inside malloc/free with an arena lock held: 4000 bytes is above
// glibc's per-thread cache, so every call takes the arena's lock.
void malloc_until_stop(void*) {
  C_OK(_lwp_setname(0, "mallocer"));
  g_ready = 1;
  while (g_stop.load() == 0) {
    void* blocks[8];
    for (auto& b : blocks) b = malloc(4000);
    for (auto& b : blocks) free(b);
  }
}

// Sends SIGUSR2 to `lid` n times, each once the previous one's handler ran (so none coalesce).
void signal_one_at_a_time(lwpid_t lid, int n) {
  for (int i = 0; i < n; i++) {
    const int before = g_handled.load();
    C_OK(_lwp_kill(lid, SIGUSR2));
    C_CHECK(await_change(g_handled, before));
  }
}

// Before the proxy, a handler that interrupted malloc and then called into the shim deadlocked
// on the arena lock its own thread held (gRPC allocates): the first few signals hung it.
TEST(ClientSignalCalls, HandlerInterruptingMallocMakesCalls) {
  EXPECT_CHILD_OK([] {
    struct sigaction sa = {};
    sa.sa_handler = on_usr2_calls;
    sigemptyset(&sa.sa_mask);
    C_OK(sigaction(SIGUSR2, &sa, nullptr));
    lwpid_t lid = spawn(malloc_until_stop, nullptr);
    C_CHECK(await_change(g_ready, 0));
    signal_one_at_a_time(lid, 50);
    g_stop = 1;
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_handled.load(), 50);
  });
}

// ---- handlers never run inside the C runtime -------------------------------------------

uintptr_t g_libc_lo = 0, g_libc_hi = 0;  // libc's code
std::atomic<int> g_in_libc{0};

void find_libc() {
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) {
        const char* base = info->dlpi_name != nullptr ? strrchr(info->dlpi_name, '/') : nullptr;
        if (base == nullptr || strncmp(base + 1, "libc.so", 7) != 0) return 0;
        for (int i = 0; i < info->dlpi_phnum; i++) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          g_libc_lo = info->dlpi_addr + ph.p_vaddr;
          g_libc_hi = g_libc_lo + ph.p_memsz;
        }
        return 1;
      },
      nullptr);
}

// Counts deliveries that interrupted libc other than at a system call (where the thread holds
// none of libc's locks).
void on_usr2_where(int, siginfo_t*, void* uctx) {
  const auto pc =
      static_cast<uintptr_t>(static_cast<ucontext_t*>(uctx)->uc_mcontext.gregs[REG_RIP]);
  if (pc >= g_libc_lo + 2 && pc < g_libc_hi) {
    uint16_t before;
    memcpy(&before, reinterpret_cast<const void*>(pc - 2), 2);
    if (before != 0x050f) g_in_libc.fetch_add(1);
  }
  g_handled.fetch_add(1);
}

TEST(ClientSignalCalls, HandlersNeverRunInsideTheCRuntime) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan runs handlers itself, later, with the context saved at the signal";
#endif
  EXPECT_CHILD_OK([] {
    find_libc();
    C_CHECK(g_libc_lo != 0);
    struct sigaction sa = {};
    sa.sa_sigaction = on_usr2_where;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    C_OK(sigaction(SIGUSR2, &sa, nullptr));
    lwpid_t lid = spawn(malloc_until_stop, nullptr);
    C_CHECK(await_change(g_ready, 0));
    signal_one_at_a_time(lid, 50);
    g_stop = 1;
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_handled.load(), 50);
    C_EQ(g_in_libc.load(), 0);
  });
}

// raise() delivers inside libc, at the return of its system call; POSIX runs the handler
// before raise() returns, and the deferral must not change that.
std::atomic<int> g_raised{0};
void on_usr1_raised(int) { g_raised.fetch_add(1); }

void raise_in_lwp(void*) {
  for (int i = 1; i <= 100; i++) {
    C_OK(raise(SIGUSR1));
    C_EQ(g_raised.load(), i);
  }
}

TEST(ClientSignalCalls, RaiseRunsTheHandlerBeforeItReturns) {
  EXPECT_CHILD_OK([] {
    struct sigaction sa = {};
    sa.sa_handler = on_usr1_raised;
    sigemptyset(&sa.sa_mask);
    C_OK(sigaction(SIGUSR1, &sa, nullptr));
    C_OK(raise(SIGUSR1));  // the first LWP
    C_EQ(g_raised.load(), 1);
    g_raised = 0;
    lwpid_t lid = spawn(raise_in_lwp, nullptr);  // a created LWP
    C_OK(_lwp_wait(lid, nullptr));
    C_EQ(g_raised.load(), 100);
  });
}

// ---- the mechanism: the kick signal is blocked in handlers, invisible to the program ----

void on_usr1_mask(int) {
  const int saved = errno;
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, nullptr, &cur);
  g_kick_blocked = sigismember(&cur, SIGRTMIN + 3);
  errno = saved;
}

void note_usr1(int) {}

TEST(ClientSignalCalls, HandlersRunWithTheKickSignalBlockedAndDoNotShowIt) {
  EXPECT_CHILD_OK([] {
    struct sigaction sa = {}, got = {};
    sa.sa_handler = on_usr1_mask;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGHUP);
    C_OK(sigaction(SIGUSR1, &sa, nullptr));
    C_OK(sigaction(SIGUSR1, nullptr, &got));
    C_CHECK(got.sa_handler == on_usr1_mask);
    C_CHECK(sigismember(&got.sa_mask, SIGHUP) == 1);
    C_CHECK(sigismember(&got.sa_mask, SIGRTMIN + 3) == 0);  // what the program asked for

    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, nullptr, &cur);
    C_CHECK(sigismember(&cur, SIGRTMIN + 3) == 0);  // user code: kicks reach it
    C_OK(_lwp_kill(_lwp_self(), SIGUSR1));
    C_CHECK(await_change(g_kick_blocked, -1));
    C_EQ(g_kick_blocked.load(), 1);

    // signal(): BSD semantics, the previous handler back.
    C_CHECK(signal(SIGUSR1, note_usr1) == on_usr1_mask);
    C_OK(sigaction(SIGUSR1, nullptr, &got));
    C_CHECK(got.sa_handler == note_usr1);
#if !defined(__SANITIZE_THREAD__)  // TSan's signal() interceptor comes first: its flags, mask
    C_CHECK(got.sa_flags & SA_RESTART);
    C_CHECK(sigismember(&got.sa_mask, SIGRTMIN + 3) == 0);
#endif
    C_CHECK(signal(SIGUSR1, SIG_DFL) == note_usr1);
    C_CHECK(signal(-1, note_usr1) == SIG_ERR && errno == EINVAL);
  });
}

// ---- handlers' calls run side by side --------------------------------------------------

std::atomic<lwpid_t> g_sleeper{0};
std::atomic<int> g_parked{0};
std::atomic<int> g_unparked{0};

// The sleeper's handler parks until the waker's handler unparks it: both handlers' calls
// are in flight at once, so they must not queue behind each other.
void on_usr1_park(int) {
  const int saved = errno;
  g_parked = 1;
  while (g_unparked.load() == 0) _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr);
  errno = saved;
}

void on_usr2_unpark(int) {
  const int saved = errno;
  C_CHECK(await_change(g_parked, 0));
  g_unparked = 1;
  C_OK(_lwp_unpark(g_sleeper.load(), nullptr));
  errno = saved;
}

// Spins in user code. The atomic load matters under TSan, which runs a signal's handler
// when the thread next enters its runtime (an interceptor or an atomic operation).
void spin_until_stop(void*) {
  g_ready.fetch_add(1);
  while (g_stop.load() == 0) {
    for (int i = 0; i < 100; i++) asm volatile("");
  }
}

TEST(ClientSignalCalls, HandlersCallsDoNotWaitForEachOther) {
  EXPECT_CHILD_OK([] {
    struct sigaction sa = {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_usr1_park;
    C_OK(sigaction(SIGUSR1, &sa, nullptr));
    sa.sa_handler = on_usr2_unpark;
    C_OK(sigaction(SIGUSR2, &sa, nullptr));
    lwpid_t sleeper = spawn(spin_until_stop, nullptr);
    lwpid_t waker = spawn(spin_until_stop, nullptr);
    g_sleeper = sleeper;
    const long end = now_ms() + 10000;
    while (g_ready.load() < 2 && now_ms() < end) park_ms(1);
    C_EQ(g_ready.load(), 2);
    C_OK(_lwp_kill(sleeper, SIGUSR1));
    C_CHECK(await_change(g_parked, 0));
    C_OK(_lwp_kill(waker, SIGUSR2));
    C_CHECK(await_change(g_unparked, 0));
    g_stop = 1;
    C_OK(_lwp_wait(sleeper, nullptr));
    C_OK(_lwp_wait(waker, nullptr));
  });
}

}  // namespace
}  // namespace lwpd::clienttest
