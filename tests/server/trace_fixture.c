/* server_trace_fixture: a real shim process for the Trace service tests, driven line by
 * line from stdin so the tests know which LWP events to expect and when.
 *
 * Attaches to $LWPD_ENDPOINT and prints "PID". Then, per line (each reply one line):
 *   "park N"   create N LWPs that park forever; prints their LIDs, oldest first
 *   "churn N"  N times: create an LWP that _lwp_exits at once, and _lwp_wait for it; "ok"
 *   "quit"     the parked LWPs exit (unparked and joined), then the process ends with
 *              exit status 0 in the kernel (lwpd_detach) and exits; prints nothing
 *   EOF        exit(0) without telling the kernel (the daemon sees a broken session)
 * While it reads stdin its main LWP is in user code, so a tracer can stop it any time. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
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

static atomic_int quitting;
static lwpid_t parked[64];
static char* parked_stack[64]; /* freed once its LWP is collected */
static int nparked;

static void parker(void* arg) {
  (void)arg;
  while (!atomic_load(&quitting)) _lwp_park(CLOCK_MONOTONIC, 0, NULL, 0, NULL, NULL);
  _lwp_exit();
}

static void quick(void* arg) {
  (void)arg;
  _lwp_exit();
}

static lwpid_t spawn(void (*fn)(void*), char* stack, size_t size) {
  ucontext_t uc;
  _lwp_makecontext(&uc, fn, NULL, NULL, stack, size);
  lwpid_t lid = 0;
  if (_lwp_create(&uc, 0, &lid) != 0) die("_lwp_create");
  return lid;
}

static char quick_stack[64 * 1024]; /* one churn LWP at a time */

/* One line from stdin, waiting in poll(2) first. Under ThreadSanitizer a signal that
 * arrives while the thread is blocked in a call TSan does not treat as blocking (read(),
 * stdio) waits until that call returns; in poll() TSan runs the handler at once. So the
 * shim's kick could not preempt this LWP while it waits for the test, and with its vCPU
 * held the other LWPs would starve. */
static int read_line(char* buf, size_t size) {
  size_t n = 0;
  char c;
  for (;;) {
    struct pollfd pfd = {0, POLLIN, 0};
    if (poll(&pfd, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return n > 0;
    if (c == '\n') break;
    if (n + 1 < size) buf[n++] = c;
  }
  buf[n] = '\0';
  return 1;
}

int main(void) {
  if (lwpd_attach(NULL) != 0) die("lwpd_attach");
  printf("%d\n", (int)lwpd_getpid());
  fflush(stdout);
  char line[128];
  while (read_line(line, sizeof line)) {
    int n = 0;
    if (sscanf(line, "park %d", &n) == 1) {
      for (int i = 0; i < n && nparked < 64; i++) {
        char* stack = malloc(64 * 1024);
        if (stack == NULL) die("malloc");
        parked_stack[nparked] = stack;
        parked[nparked] = spawn(parker, stack, 64 * 1024);
        printf(i == 0 ? "%d" : " %d", (int)parked[nparked++]);
      }
      printf("\n");
    } else if (sscanf(line, "churn %d", &n) == 1) {
      for (int i = 0; i < n; i++) {
        lwpid_t q = spawn(quick, quick_stack, sizeof quick_stack);
        if (_lwp_wait(q, NULL) != 0) die("_lwp_wait");
      }
      printf("ok\n");
    } else if (strncmp(line, "quit", 4) == 0) {
      atomic_store(&quitting, 1);
      for (int i = 0; i < nparked; i++) {
        if (_lwp_unpark(parked[i], NULL) != 0) die("_lwp_unpark");
        if (_lwp_wait(parked[i], NULL) != 0) die("_lwp_wait");
        free(parked_stack[i]);
      }
      if (lwpd_detach() != 0) die("lwpd_detach");
      return 0;
    } else {
      printf("?\n");
    }
    fflush(stdout);
  }
  return 0;
}
