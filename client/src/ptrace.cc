// lwpd_ptrace() and lwpd_waitpid(): NetBSD's ptrace(2) and wait(2) for tracers, with their
// structures translated between the host's layout (<lwpd/lwp.h>) and the wire's values
// (host signal numbers and sets in, NetBSD's out, and back).
#include <signal.h>

#include <algorithm>
#include <cstring>

#include "netbsd_map.h"
#include "shim_internal.h"

using namespace lwpd::client;

namespace {

constexpr int kNbLwpstatusSize = nb::PTRACE_LWPSTATUS_SIZE;  // LP64

// The size NetBSD would see for a caller's `data` bytes of our (larger)
// struct ptrace_lwpstatus: the whole struct is NetBSD's whole struct.
int nb_lwpstatus_size(int data) {
  if (data < static_cast<int>(sizeof(lwpid_t))) return data;
  if (data > static_cast<int>(sizeof(struct ptrace_lwpstatus))) return kNbLwpstatusSize + 1;
  return kNbLwpstatusSize;
}

bool needs_addr(int req) {
  switch (req) {
    case LWPD_PT_SET_EVENT_MASK:
    case LWPD_PT_GET_EVENT_MASK:
    case LWPD_PT_GET_PROCESS_STATE:
    case LWPD_PT_GET_SIGINFO:
    case LWPD_PT_LWPINFO:
    case LWPD_PT_LWPSTATUS:
    case LWPD_PT_LWPNEXT:
      return true;
    default:
      return false;
  }
}

// Build the request: host signal numbers in `data` become NetBSD's, the
// input fields of `addr` travel by value. false: no NetBSD signal (EINVAL).
bool ptrace_call(int req, pid_t pid, void* addr, int data, PtraceReq* a) {
  a->request = req;
  a->pid = pid;
  a->addr_not_one = addr != reinterpret_cast<void*>(1);
  if ((req == LWPD_PT_CONTINUE || req == LWPD_PT_DETACH) && data > 0) {
    if (data >= _NSIG) {
      data = nb::NB_NSIG;  // out of range there too: EINVAL from the kernel
    } else if ((data = nb_signo(data)) == 0) {
      return false;
    }
  }
  if (req == LWPD_PT_LWPSTATUS || req == LWPD_PT_LWPNEXT) data = nb_lwpstatus_size(data);
  a->data = data;
  if (req == LWPD_PT_SET_EVENT_MASK) a->event_mask = static_cast<ptrace_event_t*>(addr)->pe_set_event;
  if (req == LWPD_PT_LWPINFO) a->lwpid = static_cast<struct ptrace_lwpinfo*>(addr)->pl_lwpid;
  if (req == LWPD_PT_LWPSTATUS || req == LWPD_PT_LWPNEXT)
    a->lwpid = static_cast<struct ptrace_lwpstatus*>(addr)->pl_lwpid;
  return true;
}

void lwpstatus_out(const PtraceOut& o, void* addr, int data) {
  struct ptrace_lwpstatus st;
  memset(&st, 0, sizeof st);
  st.pl_lwpid = o.lwpid;
  host_sigset(o.sigpend, &st.pl_sigpend);
  host_sigset(o.sigmask, &st.pl_sigmask);
  memcpy(st.pl_name, o.name.data, std::min<size_t>(o.name.len, sizeof st.pl_name - 1));
  st.pl_private = reinterpret_cast<void*>(o.private_ptr);
  memcpy(addr, &st, std::min(static_cast<size_t>(data), sizeof st));
}

void siginfo_out(const PtraceOut& o, void* addr) {
  auto* psi = static_cast<ptrace_siginfo_t*>(addr);
  memset(psi, 0, sizeof *psi);
  psi->psi_siginfo.si_signo = host_signo(o.siginfo.signo);
  psi->psi_siginfo.si_code = o.siginfo.code;
  psi->psi_siginfo.si_pid = o.siginfo.pid;
  psi->psi_siginfo.si_uid = o.siginfo.uid;
  psi->psi_lwpid = o.psi_lwpid;
}

// Copy the request's results out to `addr`.
void ptrace_out(int req, const PtraceOut& o, void* addr, int data) {
  switch (req) {
    case LWPD_PT_GET_EVENT_MASK:
      static_cast<ptrace_event_t*>(addr)->pe_set_event = o.event_mask;
      break;
    case LWPD_PT_GET_PROCESS_STATE: {
      auto* ps = static_cast<ptrace_state_t*>(addr);
      ps->pe_report_event = o.report_event;
      ps->pe_lwp = o.report_lwp;
      break;
    }
    case LWPD_PT_GET_SIGINFO:
      siginfo_out(o, addr);
      break;
    case LWPD_PT_LWPINFO: {
      auto* li = static_cast<struct ptrace_lwpinfo*>(addr);
      li->pl_lwpid = o.lwpid;
      li->pl_event = o.pl_event;
      break;
    }
    case LWPD_PT_LWPSTATUS:
    case LWPD_PT_LWPNEXT:
      lwpstatus_out(o, addr, data);
      break;
    default:
      break;
  }
}

// A Linux wait status from what the daemon collected.
int wait_status(const WaitOut& w) {
  switch (w.kind) {
    case WaitKind::kStopped:
      return (host_signo(w.code) << 8) | 0x7f;
    case WaitKind::kExited:
      return (w.code & 0xff) << 8;
    case WaitKind::kSignaled:
      return host_signo(w.code) & 0x7f;
    default:
      return 0;
  }
}

}  // namespace

int lwpd_ptrace(int request, pid_t pid, void* addr, int data) {
  return lwp_call(int{-1}, [&](Lwp& l) -> int {
    if (needs_addr(request) && addr == nullptr) return fail(EFAULT);
    PtraceReq a;
    if (!ptrace_call(request, pid, addr, data, &a)) return fail(EINVAL);
    SysReply r = sys(l, a);
    if (r.error == nb::Errno::kOk) ptrace_out(request, r.ptrace, addr, data);
    return result(r);
  });
}

pid_t lwpd_waitpid(pid_t pid, int* status, int options) {
  return lwp_call(pid_t{-1}, [&](Lwp& l) -> pid_t {
    // WNOHANG is 1 on both systems; any other bit is passed on (EINVAL there).
    SysReply r = sys(l, WaitReq{pid, options});
    if (r.error != nb::Errno::kOk) return result(r);
    if (status != nullptr && r.retval != 0) *status = wait_status(r.wait);
    return static_cast<pid_t>(r.retval);
  });
}
