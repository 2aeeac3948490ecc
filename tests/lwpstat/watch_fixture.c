/* lwpstat_watch_fixture: an emulated process driven line by line from stdin, so the
 * watch tests know exactly which kernel events to expect and when.
 *
 * On start it attaches to $LWPD_ENDPOINT and prints "PID" on stdout. Then, per line:
 *   "spawn"     create LWP X, which parks without timeout and, once unparked, _lwp_exits;
 *               prints "X_LID"
 *   "unpark"    _lwp_unpark(X), then _lwp_wait(X); prints "reaped"
 *   "churn N"   N times: create an LWP that exits at once, and _lwp_wait for it; prints "ok"
 *   EOF         exit(0)
 * Every reply is one line, flushed. While it reads stdin, the main LWP is in user code. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lwpd/lwp.h>

static void die(const char* what) {
  perror(what);
  exit(1);
}

static void parker(void* arg) {
  (void)arg;
  /* One park: the test unparks it exactly once, after seeing it asleep. */
  _lwp_park(CLOCK_MONOTONIC, 0, NULL, 0, NULL, NULL);
  _lwp_exit();
}

static void quick(void* arg) {
  (void)arg;
  _lwp_exit();
}

/* One stack per kind: at most one LWP of each kind is alive at a time. */
static char parker_stack[64 * 1024], quick_stack[64 * 1024];

static lwpid_t spawn(void (*fn)(void*)) {
  ucontext_t uc;
  char* stack = fn == parker ? parker_stack : quick_stack;
  _lwp_makecontext(&uc, fn, NULL, NULL, stack, sizeof parker_stack);
  lwpid_t lid = 0;
  if (_lwp_create(&uc, 0, &lid) != 0) die("_lwp_create");
  return lid;
}

/* Waits in poll(2) until stdin has a line to read. Under ThreadSanitizer a signal that
 * arrives while the thread is blocked in a call TSan does not treat as blocking (stdio's
 * read) waits until that call returns; in poll() TSan runs the handler at once. Without this
 * the shim's kick could not preempt the main LWP while it waits for the test, and LWP X,
 * queued behind it on its vCPU, would starve. */
static void await_input(void) {
  struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
  while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {
  }
}

int main(void) {
  setvbuf(stdin, NULL, _IONBF, 0); /* no line read ahead of poll() */
  if (lwpd_attach(NULL) != 0) die("lwpd_attach");
  printf("%d\n", (int)lwpd_getpid());
  fflush(stdout);
  lwpid_t x = 0;
  char line[128];
  for (;;) {
    await_input();
    if (fgets(line, sizeof line, stdin) == NULL) break;
    int n = 0;
    if (strncmp(line, "spawn", 5) == 0) {
      x = spawn(parker);
      printf("%d\n", (int)x);
    } else if (strncmp(line, "unpark", 6) == 0) {
      if (_lwp_unpark(x, NULL) != 0) die("_lwp_unpark");
      if (_lwp_wait(x, NULL) != 0) die("_lwp_wait");
      printf("reaped\n");
    } else if (sscanf(line, "churn %d", &n) == 1) {
      for (int i = 0; i < n; i++) {
        lwpid_t q = spawn(quick);
        if (_lwp_wait(q, NULL) != 0) die("_lwp_wait");
      }
      printf("ok\n");
    } else {
      printf("?\n");
    }
    fflush(stdout);
  }
  return 0;
}
