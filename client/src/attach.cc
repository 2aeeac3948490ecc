// Attaching and detaching: lwpd_attach() picks a transport (LWPD_TRANSPORT), makes the
// host process an emulated one and its calling thread the first LWP; lwpd_detach() undoes
// it. Also the per-thread set-up every LWP thread makes (alternate signal stack,
// deferred-kick timer), the LWP table's registration, the SA_RESTART mask, and the
// process's lwpctl mapping.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "netbsd_map.h"
#include "shim_internal.h"

namespace lwpd::client {

int g_kick_signal = 0;
__thread Lwp* t_self __attribute__((tls_model("initial-exec"))) = nullptr;
std::atomic<Process*> g_proc{nullptr};
std::mutex g_attach_mu;

// ---- per-thread set-up and registration ----------------------------------------------------

void setup_altstack(Lwp& l) {
  size_t sz = std::max<size_t>(65536, static_cast<size_t>(sysconf(_SC_SIGSTKSZ)));
  l.altstack = malloc(sz);
  if (l.altstack == nullptr) return;
  stack_t ss{};
  ss.ss_sp = l.altstack;
  ss.ss_size = sz;
  if (sigaltstack(&ss, nullptr) != 0) {
    free(l.altstack);
    l.altstack = nullptr;
  }
}

void setup_rekick(Lwp& l) {
  sigevent ev{};
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = g_kick_signal;
  ev._sigev_un._tid = gettid_();
  l.has_rekick = timer_create(CLOCK_MONOTONIC, &ev, &l.rekick) == 0;
}

void drop_rekick(Lwp& l) {
  if (l.has_rekick) timer_delete(l.rekick);
  l.has_rekick = false;
}

void drop_altstack(Lwp& l) {
  if (l.altstack == nullptr) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  free(l.altstack);
  l.altstack = nullptr;
}

void lwp_register(Process& p, const std::shared_ptr<Lwp>& l) {
  std::lock_guard g(p.mu);
  if (auto it = p.orphan_kicks.find(l->lid); it != p.orphan_kicks.end()) {
    l->kick_gen.store(it->second);
    p.orphan_kicks.erase(it);
  }
  if (auto it = p.orphan_sigs.find(l->lid); it != p.orphan_sigs.end()) {
    l->pend_sigs.fetch_or(it->second);
    p.orphan_sigs.erase(it);
  }
  p.lwps[l->lid] = l;
  p.nlive++;
}

void lwp_unregister(Process& p, lwpid_t lid) {
  std::lock_guard g(p.mu);
  p.lwps.erase(lid);
}

uint64_t g_sigaction_gen = 0;

// Scans the dispositions (64 system calls) only when one was set since the last scan: at
// attach, and at an _lwp_create after the program changed a handler. A disposition set
// without the shim's sigaction() (a raw system call) is seen at the next scan only.
void send_sigrestart(Process& p) {
  const uint64_t gen = __atomic_load_n(&g_sigaction_gen, __ATOMIC_ACQUIRE);
  {
    std::lock_guard g(p.sigrestart_mu);
    if (gen == p.sigrestart_gen) return;
  }
  uint64_t mask = 0;
  for (int h = 1; h < _NSIG; h++) {
    struct sigaction sa;
    if (h == g_kick_signal || sigaction(h, nullptr, &sa) != 0) continue;
    bool handler =
        (sa.sa_flags & SA_SIGINFO) ? true : (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    if (!handler || !(sa.sa_flags & SA_RESTART)) continue;
    if (int nb = nb_signo(h)) mask |= uint64_t{1} << (nb - 1);
  }
  std::lock_guard g(p.sigrestart_mu);
  p.sigrestart_gen = gen;
  if (mask == p.sigrestart) return;
  p.sigrestart = mask;
  p.transport->send_sigrestart(mask);
}

// ---- lwpctl ----------------------------------------------------------------------------

namespace {

std::string lwpctl_path(Process& p) {
  if (!p.lwpctl_path.empty()) return p.lwpctl_path;
  // Older daemons: ask the transport, then try the runtime directory.
  if (std::string path = p.transport->find_lwpctl_path(p.pid); !path.empty()) return path;
  if (const char* d = getenv("LWPD_RUNTIME_DIR"))
    return std::string(d) + "/lwpctl." + std::to_string(p.pid);
  return "";
}

}  // namespace

char* lwpctl_map(Process& p) {
  if (char* b = p.lwpctl_base.load(std::memory_order_acquire)) return b;
  std::lock_guard g(p.ctl_mu);
  if (char* b = p.lwpctl_base.load()) return b;
  std::string path = lwpctl_path(p);
  int fd = path.empty() ? -1 : open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  void* m = mmap(nullptr, kLwpctlSize, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return nullptr;
  p.lwpctl_base.store(static_cast<char*>(m), std::memory_order_release);
  return static_cast<char*>(m);
}

// ---- attach / detach -------------------------------------------------------------------

namespace {

// LWPD_TRANSPORT: unset or empty is the shared-memory transport where the daemon offers it
// and the gRPC transport elsewhere; "grpc" is gRPC only; "shm" is the shared-memory transport
// or nothing (lwpd_attach fails with its errno: EPROTONOSUPPORT for a TCP endpoint or a daemon
// that offers no region, EACCES when the daemon does not recognise the caller, ...).
// Anything else: EINVAL. Both failures say why on stderr.
struct TransportChoice {
  TransportKind kind = TransportKind::kShm;
  bool required = false;
};

int choose_transport(TransportChoice* out) {
  const char* v = getenv("LWPD_TRANSPORT");
  if (v == nullptr || *v == '\0') {
    *out = TransportChoice{TransportKind::kShm, false};
  } else if (strcmp(v, "grpc") == 0) {
    *out = TransportChoice{TransportKind::kGrpc, true};
  } else if (strcmp(v, "shm") == 0) {
    *out = TransportChoice{TransportKind::kShm, true};
  } else {
    fprintf(stderr, "liblwpclient: LWPD_TRANSPORT=%s: unknown transport (grpc or shm)\n", v);
    return EINVAL;
  }
  return 0;
}

std::unique_ptr<Transport> make_transport(const TransportChoice& c, const std::string& endpoint) {
  switch (c.kind) {
    case TransportKind::kGrpc:
      return make_grpc_transport(endpoint);
    case TransportKind::kShm:
      return make_shm_transport(endpoint, c.required);
  }
  return nullptr;
}

std::string resolve_endpoint(const char* ep) {
  std::string e = ep != nullptr ? ep : "";
  if (e.empty()) {
    if (const char* env = getenv("LWPD_ENDPOINT")) e = env;
  }
  if (e.empty()) {
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    e = std::string(xdg != nullptr && *xdg ? xdg : "/tmp") + "/lwpd/lwpd.sock";
  }
  if (e[0] == '/') e = "unix:" + e;
  return e;
}

std::string host_comm() {
  char buf[64] = {0};
  int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
  }
  return buf;
}

bool install_kick_handler() {
  g_kick_signal = SIGRTMIN + 3;
  find_runtime_code();
  struct sigaction sa {};
  sa.sa_sigaction = kick_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigfillset(&sa.sa_mask);
  return sigaction(g_kick_signal, &sa, nullptr) == 0;
}

// The helper threads, with every signal blocked: the transport's and the proxy.
void start_helpers(Process* p) {
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  p->transport->start([p](const Event& ev) { on_event(*p, ev); });
  p->proxy = std::thread([p] { proxy_main(p); });
  shim_sigmask(SIG_SETMASK, &old, nullptr);
}

void proxy_stop(Process& p) {
  p.proxy_seq.fetch_add(1);  // detaching is set: the proxy ends
  futex_wake(&p.proxy_seq);
  if (p.proxy.joinable()) p.proxy.join();
}

}  // namespace
}  // namespace lwpd::client

// =========================================================================================
// Public API
// =========================================================================================

using namespace lwpd::client;

extern "C" {

int lwpd_attach(const char* endpoint) {
  std::lock_guard g(g_attach_mu);
  if (proc() != nullptr) return fail(EBUSY);
  TransportChoice choice;
  if (int e = choose_transport(&choice)) return fail(e);
  if (g_kick_signal == 0 && !install_kick_handler()) return fail(EINVAL);

  auto* p = new Process;
  p->endpoint = resolve_endpoint(endpoint);
  p->transport = make_transport(choice, p->endpoint);
  if (p->transport == nullptr) {
    delete p;
    return fail(EPROTONOSUPPORT);
  }
  AttachReply rep;
  if (int e = p->transport->attach(AttachInfo{host_comm(), getpid()}, &rep)) {
    delete p;
    return fail(e);
  }
  p->pid = rep.pid;
  p->lwpctl_path = rep.lwpctl_path;
  p->ncpus = rep.ncpus;

  auto main_lwp = std::make_shared<Lwp>();
  main_lwp->lid = p->pid;
  lwp_register(*p, main_lwp);
  g_proc.store(p, std::memory_order_release);
  start_helpers(p);

  // Become the first LWP: wait for its first dispatch with signals blocked.
  Lwp& l = *main_lwp;
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  setup_altstack(l);
  setup_rekick(l);
  l.tid.store(gettid_());
  t_self = &l;
  l.ch = p->transport->open_channel(l.lid);
  l.kick_word.store(l.ch->kick_word());
  uint64_t gen = 0;
  if (ChannelEnd e = l.ch->start(&gen); !e.ok()) follow(e);  // RETURN_START
  send_sigrestart(*p);
  leave_kernel(l, gen);
  sigdelset(&old, g_kick_signal);
  deliver_pending(l);
  unblock(l, old);
  return 0;
}

pid_t lwpd_getpid(void) {
  Process* p = proc();
  return p != nullptr ? p->pid : -1;
}

int lwpd_detach(void) {
  std::lock_guard g(g_attach_mu);
  Process* p = proc();
  Lwp* l = t_self;
  if (p == nullptr || l == nullptr) return fail(EPERM);
  {
    std::lock_guard pg(p->mu);
    if (p->nlive != 1) return fail(EBUSY);
  }
  p->detaching.store(true);
  sigset_t all, old;
  sigfillset(&all);
  shim_sigmask(SIG_SETMASK, &all, &old);
  l->ustate.store(pack(0, kKernel));
  if (l->ch) l->ch->exit_for_detach();
  p->transport->stop();
  proxy_stop(*p);
  // The detaching thread may be a created LWP running on the user's stack: its
  // channel and record stay (leaked) so that its home context remains valid.
  if (!l->has_home) {
    l->kick_word.store(nullptr);
    if (l->ch) l->ch->close();
    drop_rekick(*l);
    drop_altstack(*l);
  }
  // The caller's own thread counts among lwp_threads if it is a created LWP (its epilogue
  // never runs). Read before the record goes: clearing the table may free `l`.
  const uint32_t mine = l->has_home ? 1 : 0;
  t_self = nullptr;
  g_proc.store(nullptr, std::memory_order_release);
  {
    std::lock_guard pg(p->mu);
    p->lwps.clear();
  }
  if (char* b = p->lwpctl_base.load()) munmap(b, kLwpctlSize);
  // Exited LWPs' threads finish their epilogue (bounded: a thread stuck elsewhere keeps
  // the record, leaked, rather than touching freed memory).
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (uint32_t n; (n = p->lwp_threads.load()) > mine;) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const long waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (waited_ms >= 2000) break;
    futex_wait_ms(&p->lwp_threads, n, 2000 - waited_ms);
  }
  if (p->lwp_threads.load() <= mine) delete p;
  shim_sigmask(SIG_SETMASK, &old, nullptr);
  return 0;
}

}  // extern "C"
