// What the shim tells the sanitizers' runtimes, and the code they must not instrument.
#pragma once

// ThreadSanitizer keeps a shadow call stack per thread; a created LWP's thread switches
// between two stacks (home and the user's) with swapcontext(), which TSan does not follow.
// Each stack is therefore a TSan fiber, and every switch is announced (flag 0: the switch
// synchronises, as it does: both stacks run on one thread, one at a time).
#if defined(__SANITIZE_THREAD__)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#define LWPD_FIBER_CURRENT() __tsan_get_current_fiber()
#define LWPD_FIBER_CREATE() __tsan_create_fiber(0)
#define LWPD_FIBER_DESTROY(f) __tsan_destroy_fiber(f)
#define LWPD_FIBER_SWITCH(f) __tsan_switch_to_fiber((f), 0)
// LWPs synchronise through the daemon (_lwp_continue, _lwp_unpark, _lwp_wait, _lwp_create...),
// i.e. through another process, where TSan cannot follow. The daemon handles one process's
// kernel entries in an order (its process lock), so each entry is a release and each return
// an acquire of one per-process object: user code ordered by the emulated kernel is ordered
// for TSan too (over-approximating it as one lock, as NetBSD's p_lock mostly is). Every
// transport marks its entries and returns with these (transport.h).
namespace lwpd::client {
inline char g_tsan_kernel_order;
}
#define LWPD_KERNEL_ENTRY() __tsan_release(&::lwpd::client::g_tsan_kernel_order)
#define LWPD_KERNEL_RETURN() __tsan_acquire(&::lwpd::client::g_tsan_kernel_order)
#else
#define LWPD_FIBER_CURRENT() nullptr
#define LWPD_FIBER_CREATE() nullptr
#define LWPD_FIBER_DESTROY(f) ((void)(f))
#define LWPD_FIBER_SWITCH(f) ((void)(f))
#define LWPD_KERNEL_ENTRY() ((void)0)
#define LWPD_KERNEL_RETURN() ((void)0)
#endif

// Code that runs where a sanitizer's runtime does not expect instrumented code: the
// sigaction() interposer (the runtimes install their handlers through it while they
// initialise) and the signal trampoline up to the program's handler (under TSan, that is
// TSan's own handler, which must be the first instrumented code a signal reaches). Such
// code uses __atomic builtins, never std::atomic (whose out-of-line copies are instrumented).
#define LWPD_NO_SANITIZE __attribute__((no_sanitize("address", "thread", "undefined")))
