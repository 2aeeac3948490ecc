/*
 * <lwpd/lwp.h> -- NetBSD's LWP system calls on Linux, served by the lwpd daemon.
 *
 * A program calls lwpd_attach() once; from then on the process is an emulated
 * NetBSD process, the calling thread is its first LWP (LID == lwpd_getpid()),
 * and every LWP runs user code only while the daemon has it on a virtual CPU.
 *
 * Conventions (as NetBSD's libc stubs):
 *   - calls return 0 (or a value) on success, -1 with errno set on failure;
 *   - errno holds the *host's* value of the NetBSD error (ETIMEDOUT is 110 here,
 *     EALREADY 114, EDEADLK 35, EAGAIN 11);
 *   - signal numbers, clock ids and policies are the host's (SIGUSR1,
 *     CLOCK_MONOTONIC, SCHED_FIFO ...); the shim translates them;
 *   - ucontext_t is Linux's: build it with _lwp_makecontext().
 *
 * Calls made before lwpd_attach(), or from a host thread that is not an LWP,
 * fail with EPERM (_lwp_self() returns -1 there).
 */
#ifndef LWPD_LWP_H
#define LWPD_LWP_H

#include <sched.h> /* cpu_set_t, struct sched_param */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <ucontext.h>

#if defined(__GNUC__)
#define LWPD_API __attribute__((__visibility__("default")))
#else
#define LWPD_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t lwpid_t;

/* _lwp_create() flags (NetBSD sys/lwp.h). */
#define LWP_DETACHED 0x00000040
#define LWP_SUSPENDED 0x00000080

/* uc_flags bits of a context made by _lwp_makecontext() (NetBSD sys/ucontext.h,
 * amd64 _UC_TLSBASE). _lwp_create() requires _UC_CPU, like NetBSD. */
#ifndef _UC_SIGMASK
#define _UC_SIGMASK 0x01
#endif
#ifndef _UC_STACK
#define _UC_STACK 0x02
#endif
#ifndef _UC_CPU
#define _UC_CPU 0x04
#endif
#ifndef _UC_TLSBASE
#define _UC_TLSBASE 0x00080000
#endif

/* lwpctl (NetBSD sys/lwpctl.h): written by the daemon, read-only for users. */
struct lwpctl {
  volatile int lc_curcpu; /* vCPU index, LWPCTL_CPU_NONE or LWPCTL_CPU_EXITED */
  volatile int lc_pctr;   /* incremented on every switch to the LWP */
};
#define LWPCTL_CPU_NONE (-1)
#define LWPCTL_CPU_EXITED (-2)
#define LWPCTL_FEATURE_CURCPU 0x00000001
#define LWPCTL_FEATURE_PCTR 0x00000002

/* ---- lwpd process management ---- */

/* Connect to the daemon at `endpoint` ("unix:/path", "unix:///path" or a plain
 * absolute socket path; NULL = $LWPD_ENDPOINT, else the default socket
 * $XDG_RUNTIME_DIR/lwpd/lwpd.sock or /tmp/lwpd/lwpd.sock) and become an emulated
 * process whose only LWP is the calling thread.
 * Errors: EBUSY (already attached), ECONNREFUSED (daemon unreachable), EPROTO
 * (the daemon refused the session). */
LWPD_API int lwpd_attach(const char *endpoint);
/* The emulated pid (== LID of the first LWP), or -1 when not attached. */
LWPD_API pid_t lwpd_getpid(void);
/* End the emulated process with status 0 and return to a plain host process.
 * Errors: EBUSY (other LWPs still alive), EPERM (not attached / not an LWP). */
LWPD_API int lwpd_detach(void);

/* ---- the LWP calls (NetBSD 10 signatures) ---- */

LWPD_API void _lwp_makecontext(ucontext_t *ucp, void (*start)(void *), void *arg, void *priv,
                               char *stack, size_t stack_size);
LWPD_API int _lwp_create(const ucontext_t *ucp, unsigned long flags, lwpid_t *new_lwp);
LWPD_API void _lwp_exit(void) __attribute__((__noreturn__));
LWPD_API lwpid_t _lwp_self(void);
LWPD_API int _lwp_wait(lwpid_t wait_for, lwpid_t *departed);
LWPD_API int _lwp_suspend(lwpid_t target);
LWPD_API int _lwp_continue(lwpid_t target);
LWPD_API int _lwp_wakeup(lwpid_t target);
LWPD_API int _lwp_detach(lwpid_t target);
LWPD_API int _lwp_kill(lwpid_t target, int signo);
LWPD_API void *_lwp_getprivate(void);
LWPD_API void _lwp_setprivate(void *ptr);
LWPD_API int _lwp_ctl(int features, struct lwpctl **address);
LWPD_API int _lwp_park(clockid_t clock_id, int flags, struct timespec *ts, lwpid_t unpark,
                       const void *hint, const void *unparkhint);
LWPD_API int _lwp_unpark(lwpid_t target, const void *hint);
LWPD_API ssize_t _lwp_unpark_all(const lwpid_t *targets, size_t ntargets, const void *hint);
LWPD_API int _lwp_setname(lwpid_t target, const char *name);
LWPD_API int _lwp_getname(lwpid_t target, char *name, size_t len);

LWPD_API int _sched_setparam(pid_t pid, lwpid_t lid, int policy,
                             const struct sched_param *params);
LWPD_API int _sched_getparam(pid_t pid, lwpid_t lid, int *policy, struct sched_param *params);
/* Bit i of the set is vCPU i (at most 64 vCPUs). */
LWPD_API int _sched_setaffinity(pid_t pid, lwpid_t lid, size_t size, const cpu_set_t *set);
LWPD_API int _sched_getaffinity(pid_t pid, lwpid_t lid, size_t size, cpu_set_t *set);
/* sched_yield(2) of the emulated kernel. */
LWPD_API int lwpd_yield(void);

#ifdef __cplusplus
}
#endif

#endif /* LWPD_LWP_H */
