/* soak_churn NLWPS SECONDS: one emulated process that keeps NLWPS LWPs churning for
 * SECONDS: each LWP runs a few system calls and exits, the main LWP reaps any that
 * departed (_lwp_wait for any) and creates a new one in its slot, until the time is up;
 * then it reaps them all and detaches (exit status 0). Prints "PID CYCLES" at the end.
 * Used by scripts/soak.sh (many of these at once against one daemon). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <lwpd/lwp.h>

enum { kStack = 64 * 1024 };

static void die(const char* what) {
  perror(what);
  exit(1);
}

static void worker(void* arg) {
  (void)arg;
  for (int i = 0; i < 4; i++) {
    (void)_lwp_self();
    lwpd_yield();
  }
  _lwp_exit();
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: soak_churn NLWPS SECONDS\n");
    return 2;
  }
  const int n = atoi(argv[1]);
  const double seconds = atof(argv[2]);
  if (n < 1 || n > 10000) die("NLWPS");
  if (lwpd_attach(NULL) != 0) die("lwpd_attach");
  char* stacks = malloc((size_t)n * kStack);
  lwpid_t* lids = calloc((size_t)n, sizeof *lids);
  if (stacks == NULL || lids == NULL) die("malloc");

  unsigned long cycles = 0;
  const double end = now_s() + seconds;
  int live = 0;
  for (;;) {
    /* Fill every free slot (all of them at first, then the one just reaped). */
    if (now_s() < end) {
      for (int i = 0; i < n; i++) {
        if (lids[i] != 0) continue;
        ucontext_t uc;
        _lwp_makecontext(&uc, worker, NULL, NULL, stacks + (size_t)i * kStack, kStack);
        if (_lwp_create(&uc, 0, &lids[i]) != 0) die("_lwp_create");
        live++;
      }
    }
    if (live == 0) break;
    lwpid_t departed = 0;
    if (_lwp_wait(0, &departed) != 0) die("_lwp_wait");
    for (int i = 0; i < n; i++)
      if (lids[i] == departed) lids[i] = 0;
    live--;
    cycles++;
  }
  printf("%d %lu\n", (int)lwpd_getpid(), cycles);
  fflush(stdout);
  return lwpd_detach() == 0 ? 0 : 1;
}
