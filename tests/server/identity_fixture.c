/* server_identity_fixture [TARGET_PID]: a real shim process for the peer-identity tests,
 * meant to be run as different uids (setpriv).
 *
 * Attaches to $LWPD_ENDPOINT, maps its own lwpctl page, and with a TARGET_PID tries what
 * another uid must not do to that process. Prints one line of host errno values (0 for
 * success):
 *   "PID ctl=E"                                  without TARGET_PID
 *   "PID ctl=E ptrace=E setparam=E peek=E"       with it
 * where ptrace is PT_ATTACH of the target, setparam is _sched_setparam(SCHED_FIFO, 63) of
 * itself and peek is open(2) of the target's lwpctl file for reading. Then waits for EOF on
 * stdin and detaches (exit status 0 in the kernel). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lwpd/lwp.h>

/* Waits in poll(2), not read(2): under ThreadSanitizer a kick that arrives during a call
 * TSan does not treat as blocking waits until it returns (see trace_fixture.c). */
static void wait_for_eof(void) {
  char c;
  for (;;) {
    struct pollfd pfd = {0, POLLIN, 0};
    if (poll(&pfd, 1, -1) < 0 && errno == EINTR) continue;
    ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
  }
}

static int err_of(int r) { return r == 0 ? 0 : errno; }

int main(int argc, char** argv) {
  if (lwpd_attach(NULL) != 0) {
    perror("lwpd_attach");
    return 1;
  }
  struct lwpctl* lc = NULL;
  int ctl = err_of(_lwp_ctl(LWPCTL_FEATURE_CURCPU, &lc));
  printf("%d ctl=%d", (int)lwpd_getpid(), ctl);
  if (argc > 1) {
    pid_t target = (pid_t)atoi(argv[1]);
    int pt = err_of(lwpd_ptrace(PT_ATTACH, target, NULL, 0));
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    sp.sched_priority = 63;
    int sched = err_of(_sched_setparam(0, 0, SCHED_FIFO, &sp));
    const char* dir = getenv("LWPD_RUNTIME_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lwpctl.%d", dir != NULL ? dir : ".", (int)target);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int peek = fd >= 0 ? 0 : errno;
    if (fd >= 0) close(fd);
    printf(" ptrace=%d setparam=%d peek=%d", pt, sched, peek);
  }
  printf("\n");
  fflush(stdout);
  wait_for_eof();
  return lwpd_detach() == 0 ? 0 : 2;
}
