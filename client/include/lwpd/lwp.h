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

#include <sched.h>  /* cpu_set_t, struct sched_param */
#include <signal.h> /* siginfo_t, sigset_t */
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
 * $LWPD_TRANSPORT picks the transport: unset, empty or "grpc" (the only one so far);
 * "shm" fails with EPROTONOSUPPORT ("shm transport not available" on stderr), any other
 * value with EINVAL.
 * Errors: EBUSY (already attached), ECONNREFUSED (daemon unreachable), EAGAIN
 * (a process limit of the caller's uid or of the daemon), EPROTO (the daemon refused
 * the session), EPROTONOSUPPORT / EINVAL ($LWPD_TRANSPORT, above). */
LWPD_API int lwpd_attach(const char* endpoint);
/* The emulated pid (== LID of the first LWP), or -1 when not attached. */
LWPD_API pid_t lwpd_getpid(void);
/* End the emulated process with status 0 and return to a plain host process.
 * Errors: EBUSY (other LWPs still alive), EPERM (not attached / not an LWP). */
LWPD_API int lwpd_detach(void);

/* ---- the LWP calls (NetBSD 10 signatures) ---- */

LWPD_API void _lwp_makecontext(ucontext_t* ucp, void (*start)(void*), void* arg, void* priv,
                               char* stack, size_t stack_size);
LWPD_API int _lwp_create(const ucontext_t* ucp, unsigned long flags, lwpid_t* new_lwp);
LWPD_API void _lwp_exit(void) __attribute__((__noreturn__));
LWPD_API lwpid_t _lwp_self(void);
LWPD_API int _lwp_wait(lwpid_t wait_for, lwpid_t* departed);
LWPD_API int _lwp_suspend(lwpid_t target);
LWPD_API int _lwp_continue(lwpid_t target);
LWPD_API int _lwp_wakeup(lwpid_t target);
LWPD_API int _lwp_detach(lwpid_t target);
LWPD_API int _lwp_kill(lwpid_t target, int signo);
LWPD_API void* _lwp_getprivate(void);
LWPD_API void _lwp_setprivate(void* ptr);
LWPD_API int _lwp_ctl(int features, struct lwpctl** address);
LWPD_API int _lwp_park(clockid_t clock_id, int flags, struct timespec* ts, lwpid_t unpark,
                       const void* hint, const void* unparkhint);
LWPD_API int _lwp_unpark(lwpid_t target, const void* hint);
LWPD_API ssize_t _lwp_unpark_all(const lwpid_t* targets, size_t ntargets, const void* hint);
LWPD_API int _lwp_setname(lwpid_t target, const char* name);
LWPD_API int _lwp_getname(lwpid_t target, char* name, size_t len);

LWPD_API int _sched_setparam(pid_t pid, lwpid_t lid, int policy, const struct sched_param* params);
LWPD_API int _sched_getparam(pid_t pid, lwpid_t lid, int* policy, struct sched_param* params);
/* Bit i of the set is vCPU i (at most 64 vCPUs). */
LWPD_API int _sched_setaffinity(pid_t pid, lwpid_t lid, size_t size, const cpu_set_t* set);
LWPD_API int _sched_getaffinity(pid_t pid, lwpid_t lid, size_t size, cpu_set_t* set);
/* sched_yield(2) of the emulated kernel. */
LWPD_API int lwpd_yield(void);

/* ---- tracing: NetBSD's ptrace(2) LWP interface (sys/ptrace.h) ----
 *
 * A tracer is an attached process; it PT_ATTACHes to another attached process
 * (same uid, or root) and collects its stops and exit with lwpd_waitpid().
 * Request codes and event bits are NetBSD's. They always exist as LWPD_PT_*;
 * the NetBSD names PT_* are defined too unless Linux's <sys/ptrace.h> (whose
 * PT_* have Linux's values) was included first or LWPD_NO_PT_NAMES is
 * defined. <sys/wait.h> and this header go together freely.
 * Signal numbers in `data`, in wait statuses and in psi_siginfo are the
 * host's; si_code values are NetBSD's (SI_USER 0, SI_LWP -5, TRAP_LWP 5). */
#define LWPD_PT_TRACE_ME 0 /* not supported: lwpd processes have no parent (EPERM) */
#define LWPD_PT_CONTINUE 7
#define LWPD_PT_KILL 8
#define LWPD_PT_ATTACH 9
#define LWPD_PT_DETACH 10
#define LWPD_PT_LWPINFO 13
#define LWPD_PT_SET_EVENT_MASK 16
#define LWPD_PT_GET_EVENT_MASK 17
#define LWPD_PT_GET_PROCESS_STATE 18
#define LWPD_PT_GET_SIGINFO 20
#define LWPD_PT_RESUME 21
#define LWPD_PT_SUSPEND 22
#define LWPD_PT_STOP 23
#define LWPD_PT_LWPSTATUS 24
#define LWPD_PT_LWPNEXT 25
#if !defined(_SYS_PTRACE_H) && !defined(LWPD_NO_PT_NAMES)
#define PT_TRACE_ME LWPD_PT_TRACE_ME
#define PT_CONTINUE LWPD_PT_CONTINUE
#define PT_KILL LWPD_PT_KILL
#define PT_ATTACH LWPD_PT_ATTACH
#define PT_DETACH LWPD_PT_DETACH
#define PT_LWPINFO LWPD_PT_LWPINFO
#define PT_SET_EVENT_MASK LWPD_PT_SET_EVENT_MASK
#define PT_GET_EVENT_MASK LWPD_PT_GET_EVENT_MASK
#define PT_GET_PROCESS_STATE LWPD_PT_GET_PROCESS_STATE
#define PT_GET_SIGINFO LWPD_PT_GET_SIGINFO
#define PT_RESUME LWPD_PT_RESUME
#define PT_SUSPEND LWPD_PT_SUSPEND
#define PT_STOP LWPD_PT_STOP
#define PT_LWPSTATUS LWPD_PT_LWPSTATUS
#define PT_LWPNEXT LWPD_PT_LWPNEXT
#endif

/* Event bits of ptrace_event_t.pe_set_event / ptrace_state_t.pe_report_event.
 * Only the LWP events are generated (lwpd has no fork/spawn); all bits are kept. */
#define PTRACE_FORK 0x0001
#define PTRACE_VFORK 0x0002
#define PTRACE_VFORK_DONE 0x0004
#define PTRACE_LWP_CREATE 0x0008
#define PTRACE_LWP_EXIT 0x0010
#define PTRACE_POSIX_SPAWN 0x0020

/* struct ptrace_lwpinfo.pl_event */
#define PL_EVENT_NONE 0
#define PL_EVENT_SIGNAL 1
#define PL_EVENT_SUSPENDED 2

/* NetBSD si_code values that Linux lacks. */
#ifndef SI_LWP
#define SI_LWP (-5)
#endif
#ifndef TRAP_LWP
#define TRAP_LWP 5
#endif

typedef struct ptrace_event {
  int pe_set_event; /* PTRACE_* bits */
} ptrace_event_t;

typedef struct ptrace_state {
  int pe_report_event; /* PTRACE_LWP_CREATE or PTRACE_LWP_EXIT of the last event stop */
  union {
    pid_t _pe_other_pid;
    lwpid_t _pe_lwp; /* the LWP that reported it */
  } _option;
} ptrace_state_t;
#define pe_other_pid _option._pe_other_pid
#define pe_lwp _option._pe_lwp

struct ptrace_lwpinfo {
  lwpid_t pl_lwpid; /* in: previous LWP (0 = start); out: next one, 0 at the end */
  int pl_event;     /* PL_EVENT_* */
};

/* Host sigset_t (use sigismember() with host numbers), so the structure is
 * larger than NetBSD's; pass sizeof(struct ptrace_lwpstatus) as data. */
struct ptrace_lwpstatus {
  lwpid_t pl_lwpid;    /* in: the LWP (PT_LWPSTATUS) or the previous one (PT_LWPNEXT) */
  sigset_t pl_sigpend; /* its private pending signals */
  sigset_t pl_sigmask; /* its signal mask as the daemon knows it (see README) */
  char pl_name[20];    /* _lwp_setname() name, zero-filled if unnamed */
  void* pl_private;    /* _lwp_getprivate() value */
};

typedef struct ptrace_siginfo {
  siginfo_t psi_siginfo; /* si_signo (host number), si_code (NetBSD), si_pid, si_uid */
  lwpid_t psi_lwpid;     /* LWP the stop belongs to, 0 = the whole process */
} ptrace_siginfo_t;

/* NetBSD's ptrace(2) for the LWP requests above. `addr` points to the
 * request's structure; `data` is its size, a signal (PT_CONTINUE/PT_DETACH,
 * negative: resume only LWP -data) or a LID (PT_SUSPEND/PT_RESUME).
 * Returns 0, or -1 with errno: EINVAL (request, size, signal), EPERM (not
 * traced, other uid, PT_TRACE_ME), ESRCH (no such process or LWP), EBUSY
 * (traced by another, or not stopped-and-waited-for), EDEADLK (every LWP to
 * resume is suspended), EFAULT (addr NULL). */
LWPD_API int lwpd_ptrace(int request, pid_t pid, void* addr, int data);

/* waitpid() for the caller's tracees: pid > 0 or -1 (any tracee); options 0
 * or WNOHANG. The status decodes with <sys/wait.h>'s WIFSTOPPED/WSTOPSIG/
 * WIFEXITED/WEXITSTATUS/WIFSIGNALED/WTERMSIG. Returns the pid, 0 (WNOHANG,
 * nothing pending) or -1 with errno ECHILD (not a tracee), EINVAL, EINTR.
 * The calling LWP sleeps in the daemon without holding a vCPU. */
LWPD_API pid_t lwpd_waitpid(pid_t pid, int* status, int options);

#ifdef __cplusplus
}
#endif

#endif /* LWPD_LWP_H */
