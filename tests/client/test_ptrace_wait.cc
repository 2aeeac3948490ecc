// End-to-end ptrace through the shim (lwpd_ptrace / lwpd_waitpid) against a real lwpd:
// ports of NetBSD's t_ptrace_lwp_wait.h (attach_lwpinfoN, *_lwpstatus_pl_*, lwpnextN),
// t_ptrace_threads_wait.h (trace_thread_*, suspend_no_deadlock, resume) and
// t_ptrace_eventmask_wait.h (eventmask_preserved_*), semantics §7.3-§7.5.
//
// Tracer and tracee are separate forked host processes, each attached to the daemon. They
// share one MAP_SHARED page of atomics; a side that waits for the other polls it with
// short emulated sleeps (it must not hold a vCPU meanwhile).
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <string>

#include "client_test_util.h"

namespace lwpd::clienttest {
namespace {

constexpr int kMaxLwps = 8;

struct Shared {
  std::atomic<int> tracee_pid{0};
  std::atomic<int> go{0};       // tracer -> tracee: proceed
  std::atomic<int> named{0};    // LWPs that have named themselves
  std::atomic<int> release{0};  // tracer -> tracee threads: finish
  std::atomic<int> main_ticks{0};
  std::atomic<int> kid_ran{0};
  std::atomic<int> kid_lid{0};
  void* tls[kMaxLwps];  // private pointers of the tracee's LWPs
  int nthreads = 0;
  bool mask_sigtrap = false;
};

Shared* g_sh = nullptr;

void poll_until(const std::atomic<int>& v, int want) {
  const long end = now_ms() + 20000;
  while (v.load() < want) {
    C_CHECK(now_ms() < end);
    ksleep_ms(1);
  }
}

// Fork the tracee (attached, runs `tracee` with the shared page), then run `tracer` in a
// second child; returns the tracer's wait status and stores the tracee's.
int run_traced(void (*tracee)(Shared*), const std::function<void(Shared*, pid_t)>& tracer,
               int* tracee_status) {
  void* m =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  Shared* sh = new (m) Shared();
  fflush(stdout);
  fflush(stderr);
  pid_t host = fork();
  if (host == 0) {
    if (lwpd_attach(daemon().endpoint.c_str()) != 0) _exit(90);
    sh->tracee_pid = lwpd_getpid();
    tracee(sh);
    _lwp_exit();
  }
  int st = run_child(
      [&tracer, sh] {
        poll_until(sh->tracee_pid, 1);
        tracer(sh, sh->tracee_pid.load());
      },
      60);
  // The tracee ends by itself or by the tracer's PT_KILL; kill it if it did not.
  int tst = -1;
  for (long end = now_ms() + 30000; now_ms() < end;) {
    if (waitpid(host, &tst, WNOHANG) == host) break;
    tst = -1;
    usleep(10000);  // polling a host child's exit, not synchronising with the daemon
  }
  if (tst == -1) {
    kill(host, SIGKILL);
    waitpid(host, nullptr, 0);
  }
  *tracee_status = tst;
  munmap(m, sizeof(Shared));
  return st;
}

void expect_stop(pid_t pid, int sig) {
  int status = 0;
  C_EQ(lwpd_waitpid(pid, &status, 0), pid);
  C_CHECK(WIFSTOPPED(status));
  C_EQ(WSTOPSIG(status), sig);
}

void attach_and_collect(pid_t pid) {
  C_OK(lwpd_ptrace(PT_ATTACH, pid, nullptr, 0));
  expect_stop(pid, SIGSTOP);
  ptrace_siginfo_t psi;
  C_OK(lwpd_ptrace(PT_GET_SIGINFO, pid, &psi, sizeof psi));
  C_EQ(psi.psi_siginfo.si_signo, SIGSTOP);
  C_EQ(psi.psi_siginfo.si_code, SI_USER);
}

void kill_and_reap(pid_t pid) {
  C_OK(lwpd_ptrace(PT_KILL, pid, nullptr, 0));
  int status = 0;
  C_EQ(lwpd_waitpid(pid, &status, 0), pid);
  C_CHECK(WIFSIGNALED(status));
  C_EQ(WTERMSIG(status), SIGKILL);
}

// ---- §7.3 attach_lwpinfoN + lwpstatus / lwpnext ------------------------------------------

const int kBlocked[] = {SIGXCPU, SIGPIPE, SIGALRM, SIGURG};

void lwp_name_self() {
  char name[20];
  snprintf(name, sizeof name, "thread %d", _lwp_self());
  C_OK(_lwp_setname(0, name));
}

void lwpinfo_thread(void*) {
  lwp_name_self();
  g_sh->named++;
  poll_until(g_sh->release, 1);
}

void lwpinfo_tracee(Shared* sh) {
  g_sh = sh;
  lwp_name_self();
  _lwp_setprivate(&sh->tls[0]);
  sh->named++;
  poll_until(sh->go, 1);  // attached and its SIGSTOP collected
  for (int i = 0; i < sh->nthreads; i++) {
    ucontext_t uc;
    char* stack = static_cast<char*>(malloc(64 * 1024));
    _lwp_makecontext(&uc, lwpinfo_thread, nullptr, &sh->tls[i + 1], stack, 64 * 1024);
    sigemptyset(&uc.uc_sigmask);
    sigaddset(&uc.uc_sigmask, kBlocked[i]);
    lwpid_t lid = 0;
    C_OK(_lwp_create(&uc, LWP_DETACHED, &lid));
  }
  poll_until(sh->named, sh->nthreads + 1);
  C_OK(_lwp_kill(_lwp_self(), SIGINT));  // the shim's raise(SIGINT)
  poll_until(sh->release, 1);            // never: the tracer kills us
}

// The SIGINT stop: N+1 LWPs, PL_EVENT_SIGNAL only for psi_lwpid, then 0; each LWP's status.
void check_lwps(Shared* sh, pid_t pid, bool use_lwpnext) {
  ptrace_siginfo_t psi;
  C_OK(lwpd_ptrace(PT_GET_SIGINFO, pid, &psi, sizeof psi));
  C_EQ(psi.psi_siginfo.si_signo, SIGINT);
  C_EQ(psi.psi_siginfo.si_code, SI_LWP);
  C_EQ(psi.psi_lwpid, pid);
  std::set<lwpid_t> seen;
  struct ptrace_lwpinfo li = {0, 0};
  struct ptrace_lwpstatus ls;
  memset(&ls, 0, sizeof ls);
  for (;;) {
    lwpid_t lid;
    if (use_lwpnext) {
      C_OK(lwpd_ptrace(PT_LWPNEXT, pid, &ls, sizeof ls));
      lid = ls.pl_lwpid;
    } else {
      C_OK(lwpd_ptrace(PT_LWPINFO, pid, &li, sizeof li));
      lid = li.pl_lwpid;
      if (lid != 0) C_EQ(li.pl_event, lid == psi.psi_lwpid ? PL_EVENT_SIGNAL : PL_EVENT_NONE);
      ls.pl_lwpid = lid;
      if (lid != 0) C_OK(lwpd_ptrace(PT_LWPSTATUS, pid, &ls, sizeof ls));
    }
    if (lid == 0) break;
    C_CHECK(seen.insert(lid).second);
    char want[20];
    snprintf(want, sizeof want, "thread %d", lid);
    C_EQ(strcmp(ls.pl_name, want), 0);
    bool tls_ok = false;
    for (int i = 0; i <= sh->nthreads; i++) tls_ok |= ls.pl_private == &sh->tls[i];
    C_CHECK(tls_ok);
    if (lid != pid) {
      int blocked = 0;
      for (int i = 0; i < sh->nthreads; i++) blocked += sigismember(&ls.pl_sigmask, kBlocked[i]);
      C_EQ(blocked, 1);
    }
  }
  C_EQ(static_cast<int>(seen.size()), sh->nthreads + 1);
  if (use_lwpnext) {
    C_EQ(ls.pl_lwpid, 0);
    C_EQ(ls.pl_name[0], 0);
    C_CHECK(ls.pl_private == nullptr);
  }
}

int run_lwpinfo(int n, bool use_lwpnext, int* tst) {
  return run_traced(
      lwpinfo_tracee,
      [n, use_lwpnext](Shared* sh, pid_t pid) {
        attach_and_collect(pid);
        // Right after the attach: one LWP, its event is the (process-wide) SIGSTOP.
        struct ptrace_lwpinfo li = {0, 0};
        C_OK(lwpd_ptrace(PT_LWPINFO, pid, &li, sizeof li));
        C_EQ(li.pl_lwpid, pid);
        C_EQ(li.pl_event, PL_EVENT_SIGNAL);
        C_OK(lwpd_ptrace(PT_LWPINFO, pid, &li, sizeof li));
        C_EQ(li.pl_lwpid, 0);
        sh->nthreads = n;
        sh->go = 1;
        C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
        expect_stop(pid, SIGINT);
        check_lwps(sh, pid, use_lwpnext);
        kill_and_reap(pid);
      },
      tst);
}

#define EXPECT_TRACED_OK(st, tst, tracee_ok)                         \
  do {                                                               \
    EXPECT_TRUE((st) != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) \
        << "tracer: " << describe_status(st);                        \
    EXPECT_TRUE(tracee_ok) << "tracee: " << describe_status(tst);    \
  } while (0)

bool killed(int tst) { return tst != -1 && WIFSIGNALED(tst) && WTERMSIG(tst) == SIGKILL; }
bool exited0(int tst) { return tst != -1 && WIFEXITED(tst) && WEXITSTATUS(tst) == 0; }

class PtraceLwp : public ::testing::TestWithParam<int> {};

TEST_P(PtraceLwp, attach_lwpinfo_lwpstatus_pl_name_pl_private_pl_sigmask) {
  int tst = 0;
  int st = run_lwpinfo(GetParam(), false, &tst);
  EXPECT_TRACED_OK(st, tst, killed(tst));
}

TEST_P(PtraceLwp, attach_lwpnext_pl_name_pl_private_pl_sigmask) {
  int tst = 0;
  int st = run_lwpinfo(GetParam(), true, &tst);
  EXPECT_TRACED_OK(st, tst, killed(tst));
}

INSTANTIATE_TEST_SUITE_P(Extra, PtraceLwp, ::testing::Values(0, 1, 2, 3));

// ---- §7.4 trace_thread_* --------------------------------------------------------------

constexpr int kThreads = 100;

void noop_thread(void*) {}

void threads_tracee(Shared* sh) {
  poll_until(sh->go, 1);
  if (sh->mask_sigtrap) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTRAP);
    pthread_sigmask(SIG_BLOCK, &s, nullptr);
  }
  for (int i = 0; i < kThreads; i++) {
    ucontext_t uc;
    static char stack[64 * 1024];
    _lwp_makecontext(&uc, noop_thread, nullptr, nullptr, stack, sizeof stack);
    if (sh->mask_sigtrap) sigaddset(&uc.uc_sigmask, SIGTRAP);  // the daemon knows this mask
    lwpid_t lid = 0;
    C_OK(_lwp_create(&uc, 0, &lid));
    lwpid_t gone = 0;
    C_OK(_lwp_wait(lid, &gone));
    C_EQ(gone, lid);
  }
}

// Runs the tracee with `mask` and counts the LWP event stops.
void threads_tracer(Shared* sh, pid_t pid, int mask) {
  attach_and_collect(pid);
  ptrace_event_t ev = {mask};
  C_OK(lwpd_ptrace(PT_SET_EVENT_MASK, pid, &ev, sizeof ev));
  C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
  sh->go = 1;
  std::map<lwpid_t, int> created;
  int ncreate = 0, nexit = 0;
  for (;;) {
    int status = 0;
    C_EQ(lwpd_waitpid(pid, &status, 0), pid);
    if (!WIFSTOPPED(status)) {
      C_CHECK(WIFEXITED(status));
      C_EQ(WEXITSTATUS(status), 0);
      break;
    }
    C_EQ(WSTOPSIG(status), SIGTRAP);
    ptrace_siginfo_t psi;
    C_OK(lwpd_ptrace(PT_GET_SIGINFO, pid, &psi, sizeof psi));
    C_EQ(psi.psi_siginfo.si_code, TRAP_LWP);
    ptrace_state_t ps;
    C_OK(lwpd_ptrace(PT_GET_PROCESS_STATE, pid, &ps, sizeof ps));
    C_EQ(ps.pe_lwp, psi.psi_lwpid);
    if (ps.pe_report_event == PTRACE_LWP_CREATE) {
      ncreate++;
      created[ps.pe_lwp]++;
    } else {
      C_EQ(ps.pe_report_event, PTRACE_LWP_EXIT);
      nexit++;
      // Each exiting LID was reported created exactly once (when both are traced).
      if (mask & PTRACE_LWP_CREATE) C_EQ(created[ps.pe_lwp], 1);
      created.erase(ps.pe_lwp);
    }
    C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
  }
  C_EQ(ncreate, (mask & PTRACE_LWP_CREATE) ? kThreads : 0);
  C_EQ(nexit, (mask & PTRACE_LWP_EXIT) ? kThreads : 0);
}

struct ThreadsCase {
  const char* name;
  int mask;
  bool masked;
};

class PtraceThreads : public ::testing::TestWithParam<ThreadsCase> {};

TEST_P(PtraceThreads, trace_thread) {
  const ThreadsCase c = GetParam();
  int tst = 0;
  int st = run_traced(
      threads_tracee,
      [c](Shared* sh, pid_t pid) {
        sh->mask_sigtrap = c.masked;
        threads_tracer(sh, pid, c.mask);
      },
      &tst);
  EXPECT_TRACED_OK(st, tst, exited0(tst));
}

INSTANTIATE_TEST_SUITE_P(
    Events, PtraceThreads,
    ::testing::Values(ThreadsCase{"nolwpevents", 0, false},
                      ThreadsCase{"lwpcreate", PTRACE_LWP_CREATE, false},
                      ThreadsCase{"lwpexit", PTRACE_LWP_EXIT, false},
                      ThreadsCase{"lwpcreate_and_exit", PTRACE_LWP_CREATE | PTRACE_LWP_EXIT, false},
                      ThreadsCase{"lwpcreate_masked_sigtrap", PTRACE_LWP_CREATE, true},
                      ThreadsCase{"lwpexit_masked_sigtrap", PTRACE_LWP_EXIT, true},
                      ThreadsCase{"lwpcreate_and_exit_masked_sigtrap",
                                  PTRACE_LWP_CREATE | PTRACE_LWP_EXIT, true}),
    [](const ::testing::TestParamInfo<ThreadsCase>& i) { return std::string(i.param.name); });

// suspend_no_deadlock: the only LWP PT_SUSPENDed -> PT_CONTINUE is EDEADLK; after
// PT_RESUME it succeeds and the tracee runs to its end.
void go_tracee(Shared* sh) { poll_until(sh->go, 1); }

TEST(PtraceThreads, suspend_no_deadlock) {
  int tst = 0;
  int st = run_traced(
      go_tracee,
      [](Shared* sh, pid_t pid) {
        attach_and_collect(pid);
        C_OK(lwpd_ptrace(PT_SUSPEND, pid, nullptr, pid));
        C_ERR(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0), EDEADLK);
        C_OK(lwpd_ptrace(PT_RESUME, pid, nullptr, pid));
        C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
        sh->go = 1;
        int status = 0;
        C_EQ(lwpd_waitpid(pid, &status, 0), pid);
        C_CHECK(WIFEXITED(status));
        C_EQ(WEXITSTATUS(status), 0);
      },
      &tst);
  EXPECT_TRACED_OK(st, tst, exited0(tst));
}

// resume: a thread raises SIGUSR1; the tracer PT_SUSPENDs it and continues: the main LWP
// runs, the thread does not and no stop is reported (WNOHANG -> 0); PT_STOP stops the
// process (SIGSTOP); after PT_RESUME + PT_CONTINUE the thread raises SIGUSR2.
void resume_kid(void*) {
  poll_until(g_sh->go, 1);
  C_OK(_lwp_kill(_lwp_self(), SIGUSR1));
  g_sh->kid_ran = 1;
  C_OK(_lwp_kill(_lwp_self(), SIGUSR2));
}

void resume_tracee(Shared* sh) {
  g_sh = sh;
  sh->kid_lid = spawn(resume_kid, nullptr);
  for (;;) {  // ticks until killed
    sh->main_ticks++;
    ksleep_ms(1);
  }
}

TEST(PtraceThreads, resume) {
  int tst = 0;
  int st = run_traced(
      resume_tracee,
      [](Shared* sh, pid_t pid) {
        poll_until(sh->kid_lid, 1);
        attach_and_collect(pid);
        C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
        sh->go = 1;
        expect_stop(pid, SIGUSR1);
        ptrace_siginfo_t psi;
        C_OK(lwpd_ptrace(PT_GET_SIGINFO, pid, &psi, sizeof psi));
        C_EQ(psi.psi_lwpid, sh->kid_lid.load());
        C_EQ(psi.psi_siginfo.si_code, SI_LWP);
        C_OK(lwpd_ptrace(PT_SUSPEND, pid, nullptr, psi.psi_lwpid));
        C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
        // The main LWP keeps running while the suspended thread stays put.
        poll_until(sh->main_ticks, sh->main_ticks.load() + 50);
        int status = 0;
        C_EQ(lwpd_waitpid(pid, &status, WNOHANG), 0);
        C_EQ(sh->kid_ran.load(), 0);
        C_OK(lwpd_ptrace(PT_STOP, pid, nullptr, 0));
        expect_stop(pid, SIGSTOP);
        C_OK(lwpd_ptrace(PT_RESUME, pid, nullptr, psi.psi_lwpid));
        C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
        expect_stop(pid, SIGUSR2);
        C_EQ(sh->kid_ran.load(), 1);
        kill_and_reap(pid);
      },
      &tst);
  EXPECT_TRACED_OK(st, tst, killed(tst));
}

// ---- §7.5 eventmask_preserved_* -----------------------------------------------------------

class PtraceEventmask : public ::testing::TestWithParam<int> {};

TEST_P(PtraceEventmask, eventmask_preserved) {
  const int bit = GetParam();
  int tst = 0;
  int st = run_traced(
      go_tracee,
      [bit](Shared* sh, pid_t pid) {
        attach_and_collect(pid);
        ptrace_event_t set = {bit}, get = {-1};
        C_OK(lwpd_ptrace(PT_SET_EVENT_MASK, pid, &set, sizeof set));
        C_OK(lwpd_ptrace(PT_GET_EVENT_MASK, pid, &get, sizeof get));
        C_EQ(memcmp(&set, &get, sizeof set), 0);
        C_ERR(lwpd_ptrace(PT_GET_EVENT_MASK, pid, &get, sizeof get + 1), EINVAL);
        C_OK(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0));
        sh->go = 1;
        int status = 0;
        C_EQ(lwpd_waitpid(-1, &status, 0), pid);
        C_CHECK(WIFEXITED(status));
        C_ERR(lwpd_waitpid(pid, &status, 0), ECHILD);
      },
      &tst);
  EXPECT_TRACED_OK(st, tst, exited0(tst));
}

INSTANTIATE_TEST_SUITE_P(Bits, PtraceEventmask,
                         ::testing::Values(0, PTRACE_FORK, PTRACE_VFORK, PTRACE_VFORK_DONE,
                                           PTRACE_LWP_CREATE, PTRACE_LWP_EXIT, PTRACE_POSIX_SPAWN));

// Error paths seen from the shim: host errno values of the NetBSD errors.
TEST(Ptrace, ErrorsThroughShim) {
  int tst = 0;
  int st = run_traced(
      go_tracee,
      [](Shared* sh, pid_t pid) {
        C_ERR(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), 0), EPERM);
        C_ERR(lwpd_ptrace(PT_ATTACH, lwpd_getpid(), nullptr, 0), EINVAL);
        C_ERR(lwpd_ptrace(PT_TRACE_ME, 0, nullptr, 0), EPERM);
        C_ERR(lwpd_waitpid(-1, nullptr, WNOHANG), ECHILD);
        C_ERR(lwpd_ptrace(12345, pid, nullptr, 0), EINVAL);
        attach_and_collect(pid);
        C_ERR(lwpd_ptrace(PT_GET_SIGINFO, pid, nullptr, sizeof(ptrace_siginfo_t)), EFAULT);
        C_ERR(lwpd_ptrace(PT_CONTINUE, pid, reinterpret_cast<void*>(1), SIGSTKFLT), EINVAL);
        C_OK(lwpd_ptrace(PT_DETACH, pid, reinterpret_cast<void*>(1), 0));
        C_ERR(lwpd_waitpid(pid, nullptr, 0), ECHILD);
        sh->go = 1;
      },
      &tst);
  EXPECT_TRACED_OK(st, tst, exited0(tst));
}

}  // namespace
}  // namespace lwpd::clienttest
