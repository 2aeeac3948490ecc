// The execution model through the shim: LWPs spinning in pure user code (no calls) are
// stopped by kicks — _lwp_suspend, time-slice preemption — and vCPUs bound parallelism.
// Plus the example program.
#include <pthread.h>

#include <algorithm>
#include <vector>

#include "client_test_util.h"

namespace lwpd::clienttest {
namespace {

std::atomic<int> g_stop{0};
std::atomic<long> g_count[4];
std::atomic<struct lwpctl*> g_lc[4];
std::atomic<int> g_ready{0};

void spin_counting(void* arg) {
  int i = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  struct lwpctl* lc;
  C_OK(_lwp_ctl(LWPCTL_FEATURE_CURCPU, &lc));
  g_lc[i] = lc;
  g_ready.fetch_add(1);
  while (g_stop.load(std::memory_order_relaxed) == 0)
    g_count[i].fetch_add(1, std::memory_order_relaxed);
}

TEST(ClientSched, SuspendStopsASpinnerAndContinueRestartsIt) {
  EXPECT_CHILD_OK([] {
    lwpid_t lid = spawn(spin_counting, reinterpret_cast<void*>(0));
    while (g_count[0].load() == 0) ksleep_ms(1);
    C_OK(_lwp_suspend(lid));  // returns once the LWP is LSSUSPENDED
    long c1 = g_count[0].load();
    ksleep_ms(100);
    long c2 = g_count[0].load();
    C_EQ(c1, c2);
    C_CHECK(g_lc[0].load()->lc_curcpu == LWPCTL_CPU_NONE);
    C_OK(_lwp_continue(lid));
    const long end = now_ms() + 10000;  // it runs again (slowly under TSan)
    while (g_count[0].load() == c2 && now_ms() < end) ksleep_ms(1);
    C_CHECK(g_count[0].load() > c2);
    g_stop = 1;
    C_OK(_lwp_wait(lid, nullptr));
  });
}

// Observer: a plain host thread (not an LWP) sampling the four lwpctl slots. A sample
// counts only if two consecutive reads agree, so a vCPU caught between switching one LWP
// out and the next in is not mistaken for a third CPU.
std::atomic<int> g_max_on_cpu{0};
std::atomic<long> g_samples{0};

void* observe(void*) {
  while (g_stop.load() == 0) {
    int a[4], b[4];
    for (int i = 0; i < 4; i++) a[i] = g_lc[i].load()->lc_curcpu;
    for (int i = 0; i < 4; i++) b[i] = g_lc[i].load()->lc_curcpu;
    if (memcmp(a, b, sizeof a) != 0) continue;
    int n = 0;
    for (int i = 0; i < 4; i++) n += a[i] >= 0;
    if (n > g_max_on_cpu.load()) g_max_on_cpu = n;
    g_samples.fetch_add(1);
  }
  return nullptr;
}

TEST(ClientSched, FourSpinnersOnTwoVcpus) {
  EXPECT_CHILD_OK(
      [] {
        lwpid_t lids[4];
        for (int i = 0; i < 4; i++)
          lids[i] = spawn(spin_counting, reinterpret_cast<void*>(intptr_t(i)));
        while (g_ready.load() < 4) ksleep_ms(1);
        pthread_t obs;
        C_OK(pthread_create(&obs, nullptr, observe, nullptr));
        ksleep_ms(300);
        long before[4];
        for (int i = 0; i < 4; i++) before[i] = g_count[i].load();
        ksleep_ms(1000);  // quantum 20 ms: every spinner gets slices
        for (int i = 0; i < 4; i++) C_CHECK(g_count[i].load() > before[i]);
        g_stop = 1;
        pthread_join(obs, nullptr);
        for (int i = 0; i < 4; i++) C_OK(_lwp_wait(lids[i], nullptr));
        C_CHECK(g_samples.load() > 100);
        C_CHECK(g_max_on_cpu.load() <= 2);
        C_CHECK(g_max_on_cpu.load() >= 1);
      },
      60);
}

// Many LWPs at once, each mixing calls with user-mode spinning (so kicks, preemption and
// returns interleave), started suspended and released together.
std::atomic<int> g_done{0};

void mixed_worker(void* arg) {
  long spins = 2000 + 100 * reinterpret_cast<intptr_t>(arg);
  for (int round = 0; round < 10; round++) {
    for (long i = 0; i < spins; i++) asm volatile("" ::: "memory");
    C_OK(lwpd_yield());
    C_EQ(_lwp_unpark(_lwp_self(), nullptr), 0);
    C_ERR(_lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr), EALREADY);
  }
  g_done.fetch_add(1);
}

TEST(ClientSched, SixtyFourLwps) {
  EXPECT_CHILD_OK(
      [] {
        constexpr int kN = 64;
        lwpid_t lids[kN];
        for (int i = 0; i < kN; i++)
          lids[i] = spawn(mixed_worker, reinterpret_cast<void*>(intptr_t(i)), LWP_SUSPENDED);
        for (int i = 0; i < kN; i++) C_OK(_lwp_continue(lids[i]));
        for (int i = 0; i < kN; i++) {
          lwpid_t d = 0;
          C_OK(_lwp_wait(0, &d));
          C_CHECK(d != 0);
        }
        C_EQ(g_done.load(), kN);
        C_ERR(_lwp_wait(0, nullptr), ESRCH);
      },
      120);
}

// The race behind the 10,000-LWP stall (docs/PERFORMANCE.md, M5): a creator kicked while
// inside malloc holds the arena lock while it waits for a vCPU; the shim's gRPC threads need
// that lock to deliver its new LWPs' returns, and those LWPs hold the vCPUs. Several
// processes create parking LWPs while churning the heap, so kicks (preemption by the woken,
// kernel-priority LWPs) keep landing inside malloc; every process must finish.
void park_once(void*) {
  int e = _lwp_park(CLOCK_MONOTONIC, 0, nullptr, 0, nullptr, nullptr);
  C_CHECK(e == 0 || errno == EALREADY || errno == EINTR);
}

void churn_heap(int n) {
  void* blocks[32] = {};
  for (int i = 0; i < n; i++) {
    int k = i % 32;
    free(blocks[k]);
    blocks[k] = malloc(static_cast<size_t>(64 + (i * 7919) % 16384));
    C_CHECK(blocks[k] != nullptr);
  }
  for (void* b : blocks) free(b);
}

TEST(ClientSched, KickInsideMallocDoesNotStallTheDaemon) {
  constexpr int kProcs = 6, kLwps = 120, kTimeoutS = 100;
  std::vector<pid_t> kids;
  for (int i = 0; i < kProcs; i++) {
    pid_t pid = start_child([] {
      std::vector<lwpid_t> lids;
      for (int j = 0; j < kLwps; j++) {
        churn_heap(200);
        lids.push_back(spawn(park_once, nullptr, 0, 16 * 1024));
      }
      for (lwpid_t l : lids) {
        int e = _lwp_unpark(l, nullptr);
        C_CHECK(e == 0 || errno == ESRCH);
      }
      for (int j = 0; j < kLwps; j++) {
        churn_heap(50);
        C_OK(_lwp_wait(0, nullptr));
      }
    });
    ASSERT_GT(pid, 0);
    kids.push_back(pid);
  }
  // One deadline for all: they run at the same time.
  const long deadline = now_ms() + kTimeoutS * 1000L;
  int ok = 0;
  for (pid_t pid : kids) {
    int left_s = static_cast<int>(std::max(1L, (deadline - now_ms()) / 1000));
    int st = finish_child(pid, left_s);
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
  }
  EXPECT_EQ(ok, kProcs);
}

TEST(ClientExample, ProducerConsumer) {
  int st = run_program({LWP_PRODCONS_BINARY, "2000"});
  EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) << describe_status(st);
}

}  // namespace
}  // namespace lwpd::clienttest
