/* Builds against the installed <lwpd/lwp.h>; without a daemon, attach must fail cleanly. */
#include <errno.h>
#include <lwpd/lwp.h>
#include <stdio.h>

int main(void) {
  struct lwpctl lc = {LWPCTL_CPU_NONE, 0};
  lwpid_t lid = _lwp_self();
  if (lid != -1 || lc.lc_curcpu != -1 || LWP_DETACHED != 0x40 || LWP_SUSPENDED != 0x80) return 1;
  if (lwpd_attach("unix:///nonexistent/lwpd-consumer.sock") != -1 || errno != ECONNREFUSED) {
    fprintf(stderr, "lwpd_attach: expected ECONNREFUSED, got errno %d\n", errno);
    return 1;
  }
  puts("consumer ok");
  return 0;
}
