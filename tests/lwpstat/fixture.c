/* lwpstat_fixture: an emulated process in a known, steady state for the lwpstat tests.
 *
 *   LWP       name      state                 how
 *   main      "main"    LSSLEEP "lwpwait"     _lwp_wait for the spinner, forever
 *   parker 1  "parker-1" LSSLEEP "parked"     _lwp_park without timeout, forever
 *   parker 2  "parker-2" LSSLEEP "parked"
 *   spinner   "spinner" LSONPROC, lc_pctr > 0  _lwp_ctl, one short sleep (a second
 *                                             switch-in), then spins in user code
 *
 * Attaches to $LWPD_ENDPOINT. Once every LWP has been created and the spinner is
 * spinning it prints one line on stdout, "PID MAIN PARKER1 PARKER2 SPINNER", and
 * closes stdout; the LWPs may still be on their way to sleep (the test polls
 * lwpstat until the states settle). It never exits: the test kills it, and lwpd
 * tears the process down when its session breaks. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lwpd/lwp.h>

static atomic_int spinning;
static atomic_ulong spins;

static void die(const char* what) {
  perror(what);
  exit(1);
}

static void parker(void* arg) {
  if (_lwp_setname(0, (const char*)arg) != 0) die("_lwp_setname");
  for (;;) _lwp_park(CLOCK_MONOTONIC, 0, NULL, 0, NULL, NULL); /* EINTR: park again */
}

static void spinner(void* arg) {
  (void)arg;
  struct lwpctl* lc;
  if (_lwp_setname(0, "spinner") != 0) die("_lwp_setname");
  if (_lwp_ctl(LWPCTL_FEATURE_CURCPU | LWPCTL_FEATURE_PCTR, &lc) != 0) die("_lwp_ctl");
  /* Switched in again after the sleep: lc_pctr counts it. */
  struct timespec ts = {0, 2 * 1000 * 1000};
  _lwp_park(CLOCK_MONOTONIC, 0, &ts, 0, NULL, NULL);
  /* Pure user code. The relaxed atomic counter is for ThreadSanitizer builds: TSan runs a
     signal's handler (the shim's kick) when the thread next enters its runtime, and an
     atomic operation does. */
  for (;;) {
    if (atomic_fetch_add_explicit(&spins, 1, memory_order_relaxed) == 1000)
      atomic_store(&spinning, 1);
  }
}

static lwpid_t spawn(void (*fn)(void*), void* arg) {
  const size_t size = 64 * 1024;
  char* stack = malloc(size);
  if (stack == NULL) die("malloc");
  ucontext_t uc;
  _lwp_makecontext(&uc, fn, arg, NULL, stack, size);
  lwpid_t lid = 0;
  if (_lwp_create(&uc, 0, &lid) != 0) die("_lwp_create");
  return lid;
}

int main(void) {
  if (lwpd_attach(NULL) != 0) die("lwpd_attach");
  if (_lwp_setname(0, "main") != 0) die("_lwp_setname");
  lwpid_t p1 = spawn(parker, "parker-1");
  lwpid_t p2 = spawn(parker, "parker-2");
  lwpid_t sp = spawn(spinner, NULL);
  while (!atomic_load(&spinning)) {
    struct timespec ts = {0, 1000 * 1000};
    _lwp_park(CLOCK_MONOTONIC, 0, &ts, 0, NULL, NULL);
  }
  printf("%d %d %d %d %d\n", (int)lwpd_getpid(), (int)_lwp_self(), (int)p1, (int)p2, (int)sp);
  fflush(stdout);
  fclose(stdout);
  for (;;) _lwp_wait(sp, NULL);
}
