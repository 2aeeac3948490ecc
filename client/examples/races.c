/* races: two classic thread races on the NetBSD LWP calls, for lwpd-explore (README,
 * "Finding races"). Attaches to $LWPD_ENDPOINT (or the default socket).
 *
 *   races lost-update [--fixed]   four LWPs each add 1 to a shared counter 20 times, with a
 *                                 system call between reading and writing it; exits 1 if an
 *                                 update was lost (--fixed: an atomic add)
 *   races lost-wakeup [--fixed]   a condition variable made of _lwp_park/_lwp_unpark whose
 *                                 waiter checks the condition before it says it waits, so a
 *                                 signal in between is lost; exits 1 if the waiter slept
 *                                 through it (a 1 s park: on lwpd's virtual clock in
 *                                 deterministic mode) (--fixed: say it waits first)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lwpd/lwp.h>

#define NWORKERS 4
#define NADDS 20

static char stacks[NWORKERS][64 * 1024];
static int fixed;

/* ---- lost update ---- */
static volatile int counter;

static void adder(void* arg) {
  (void)arg;
  for (int i = 0; i < NADDS; i++) {
    if (fixed) {
      __atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST);
      _lwp_kill(_lwp_self(), 0);
    } else {
      int seen = counter;
      _lwp_kill(_lwp_self(), 0); /* any system call: the kernel may switch LWPs here */
      counter = seen + 1;
    }
  }
  _lwp_exit();
}

static int lost_update(void) {
  ucontext_t uc[NWORKERS];
  lwpid_t lid[NWORKERS];
  for (int i = 0; i < NWORKERS; i++) {
    _lwp_makecontext(&uc[i], adder, NULL, NULL, stacks[i], sizeof stacks[i]);
    if (_lwp_create(&uc[i], 0, &lid[i]) != 0) {
      perror("_lwp_create");
      return 2;
    }
  }
  for (int i = 0; i < NWORKERS; i++) {
    lwpid_t gone;
    while (_lwp_wait(lid[i], &gone) != 0 && errno == EINTR) {
    }
  }
  printf("counter %d of %d\n", counter, NWORKERS * NADDS);
  return counter == NWORKERS * NADDS ? 0 : 1;
}

/* ---- lost wake-up ---- */
static volatile int ready;         /* the condition */
static volatile lwpid_t sleeper;   /* who waits for it (0: nobody) */
static volatile int slept_through; /* the waiter's park timed out */

static void waiter(void* arg) {
  (void)arg;
  struct timespec one_second = {1, 0};
  if (fixed) {
    sleeper = _lwp_self(); /* say it first: a signal after this reaches us */
    if (!ready && _lwp_park(CLOCK_MONOTONIC, 0, &one_second, 0, NULL, NULL) != 0 &&
        errno == ETIMEDOUT && !ready)
      slept_through = 1;
  } else if (!ready) {
    _lwp_kill(_lwp_self(), 0); /* the window: the signaller may run here */
    sleeper = _lwp_self();
    if (_lwp_park(CLOCK_MONOTONIC, 0, &one_second, 0, NULL, NULL) != 0 && errno == ETIMEDOUT)
      slept_through = 1;
  }
  _lwp_exit();
}

static void signaller(void* arg) {
  (void)arg;
  ready = 1;
  lwpid_t w = sleeper;
  if (w != 0) _lwp_unpark(w, NULL);
  _lwp_exit();
}

static int lost_wakeup(void) {
  ucontext_t uc[2];
  lwpid_t lid[2];
  void (*fn[2])(void*) = {waiter, signaller};
  for (int i = 0; i < 2; i++) {
    _lwp_makecontext(&uc[i], fn[i], NULL, NULL, stacks[i], sizeof stacks[i]);
    if (_lwp_create(&uc[i], 0, &lid[i]) != 0) {
      perror("_lwp_create");
      return 2;
    }
  }
  for (int i = 0; i < 2; i++) {
    lwpid_t gone;
    while (_lwp_wait(lid[i], &gone) != 0 && errno == EINTR) {
    }
  }
  printf("%s\n", slept_through ? "the waiter slept through the signal" : "woken");
  return slept_through ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc < 2 || (strcmp(argv[1], "lost-update") != 0 && strcmp(argv[1], "lost-wakeup") != 0)) {
    fprintf(stderr, "usage: races lost-update|lost-wakeup [--fixed]\n");
    return 2;
  }
  fixed = argc > 2 && strcmp(argv[2], "--fixed") == 0;
  if (lwpd_attach(NULL) != 0) {
    perror("lwpd_attach");
    return 2;
  }
  int rc = strcmp(argv[1], "lost-update") == 0 ? lost_update() : lost_wakeup();
  lwpd_detach();
  return rc;
}
