// The lwpd.v1 wire form of kernel_call.h's values, for both transports (wire_codec.h).
#include "wire_codec.h"

#include <string>
#include <variant>

namespace lwpd::client {
namespace {

void encode(const ProcExitReq& a, pb::Syscall* s) {
  s->mutable_proc_exit()->set_status(a.status);
}
void encode(const LwpCreateReq& a, pb::Syscall* s) {
  auto* w = s->mutable_lwp_create();
  w->set_uc_flags(a.uc_flags);
  w->set_pc(a.pc);
  w->set_tls_base(a.tls_base);
  w->set_rflags(a.rflags);
  w->set_sigmask(a.sigmask);
  w->set_flags(a.flags);
  w->set_lid_out_fault(a.lid_out_fault);
}
void encode(const LwpExitReq&, pb::Syscall* s) { s->mutable_lwp_exit(); }
void encode(const LwpWaitReq& a, pb::Syscall* s) {
  s->mutable_lwp_wait()->set_wait_for(a.wait_for);
}
void encode(const LwpSuspendReq& a, pb::Syscall* s) {
  s->mutable_lwp_suspend()->set_target(a.target);
}
void encode(const LwpContinueReq& a, pb::Syscall* s) {
  s->mutable_lwp_continue()->set_target(a.target);
}
void encode(const LwpWakeupReq& a, pb::Syscall* s) {
  s->mutable_lwp_wakeup()->set_target(a.target);
}
void encode(const LwpGetprivateReq&, pb::Syscall* s) { s->mutable_lwp_getprivate(); }
void encode(const LwpSetprivateReq& a, pb::Syscall* s) {
  s->mutable_lwp_setprivate()->set_ptr(a.ptr);
}
void encode(const LwpKillReq& a, pb::Syscall* s) {
  s->mutable_lwp_kill()->set_target(a.target);
  s->mutable_lwp_kill()->set_signo(a.signo);
}
void encode(const LwpDetachReq& a, pb::Syscall* s) {
  s->mutable_lwp_detach()->set_target(a.target);
}
void encode(const LwpUnparkReq& a, pb::Syscall* s) {
  s->mutable_lwp_unpark()->set_target(a.target);
  s->mutable_lwp_unpark()->set_hint(a.hint);
}
void encode(const LwpUnparkAllReq& a, pb::Syscall* s) {
  auto* w = s->mutable_lwp_unpark_all();
  w->set_targets_null(a.targets_null);
  w->set_ntargets(a.ntargets);
  w->set_hint(a.hint);
  for (size_t i = 0; i < a.ncopy; i++) w->add_targets(a.targets[i]);
}
void encode(const LwpSetnameReq& a, pb::Syscall* s) {
  s->mutable_lwp_setname()->set_target(a.target);
  s->mutable_lwp_setname()->set_name(std::string(a.name.data, a.name.len));
}
void encode(const LwpGetnameReq& a, pb::Syscall* s) {
  s->mutable_lwp_getname()->set_target(a.target);
  s->mutable_lwp_getname()->set_len(a.len);
}
void encode(const LwpCtlReq& a, pb::Syscall* s) { s->mutable_lwp_ctl()->set_features(a.features); }
void encode(const SchedSetparamReq& a, pb::Syscall* s) {
  auto* w = s->mutable_sched_setparam();
  w->set_pid(a.pid);
  w->set_lid(a.lid);
  w->set_policy(a.policy);
  w->set_priority(a.priority);
}
void encode(const SchedGetparamReq& a, pb::Syscall* s) {
  s->mutable_sched_getparam()->set_pid(a.pid);
  s->mutable_sched_getparam()->set_lid(a.lid);
}
void encode(const SchedSetaffinityReq& a, pb::Syscall* s) {
  auto* w = s->mutable_sched_setaffinity();
  w->set_pid(a.pid);
  w->set_lid(a.lid);
  w->set_mask(a.mask);
}
void encode(const SchedGetaffinityReq& a, pb::Syscall* s) {
  s->mutable_sched_getaffinity()->set_pid(a.pid);
  s->mutable_sched_getaffinity()->set_lid(a.lid);
}
void encode(const SchedYieldReq&, pb::Syscall* s) { s->mutable_sched_yield(); }
void encode(const LwpParkReq& a, pb::Syscall* s) {
  auto* w = s->mutable_lwp_park();
  w->set_clock_id(a.clock_id);
  w->set_flags(a.flags);
  if (a.has_ts) {
    w->mutable_ts()->set_sec(a.ts_sec);
    w->mutable_ts()->set_nsec(a.ts_nsec);
  }
  w->set_unpark(a.unpark);
  w->set_hint(a.hint);
  w->set_unparkhint(a.unparkhint);
}
void encode(const PtraceReq& a, pb::Syscall* s) {
  auto* w = s->mutable_ptrace();
  w->set_request(a.request);
  w->set_pid(a.pid);
  w->set_addr_not_one(a.addr_not_one);
  w->set_data(a.data);
  w->set_event_mask(a.event_mask);
  w->set_lwpid(a.lwpid);
}
void encode(const WaitReq& a, pb::Syscall* s) {
  s->mutable_wait()->set_pid(a.pid);
  s->mutable_wait()->set_options(a.options);
}

void decode_bytes(const std::string& s, ShortBytes* out) { out->assign(s.data(), s.size()); }

void decode_ptrace(const pb::PtraceOut& o, PtraceOut* out) {
  out->event_mask = o.event_mask();
  out->report_event = o.report_event();
  out->report_lwp = o.report_lwp();
  out->lwpid = o.lwpid();
  out->pl_event = o.pl_event();
  out->sigpend = o.sigpend();
  out->sigmask = o.sigmask();
  decode_bytes(o.name(), &out->name);
  out->private_ptr = o.private_ptr();
  out->siginfo.signo = o.siginfo().signo();
  out->siginfo.code = o.siginfo().code();
  out->siginfo.pid = o.siginfo().pid();
  out->siginfo.uid = o.siginfo().uid();
  out->psi_lwpid = o.psi_lwpid();
}

WaitKind decode_wait_kind(pb::WaitKind k) {
  switch (k) {
    case pb::WAIT_STOPPED:
      return WaitKind::kStopped;
    case pb::WAIT_EXITED:
      return WaitKind::kExited;
    case pb::WAIT_SIGNALED:
      return WaitKind::kSignaled;
    default:
      return WaitKind::kNone;
  }
}

ReturnKind decode_kind(pb::ReturnKind k) {
  switch (k) {
    case pb::RETURN_START:
      return ReturnKind::kStart;
    case pb::RETURN_RESUME:
      return ReturnKind::kResume;
    default:
      return ReturnKind::kSyscall;
  }
}

}  // namespace

void encode_request(const SysRequest& rq, pb::Syscall* out) {
  std::visit([out](const auto& a) { encode(a, out); }, rq);
}

// The wire's Errno has NetBSD's numbers (checked against common/netbsd_abi.h by
// proto/netbsd_abi_check.cc).
void decode_return(const pb::SyscallReturn& r, SysReply* out) {
  *out = SysReply{};
  out->kind = decode_kind(r.kind());
  out->error = static_cast<nb::Errno>(r.error());
  out->retval = r.retval();
  out->gen = r.gen();
  decode_bytes(r.name(), &out->name);
  out->has_ts = r.has_ts();
  out->ts_sec = r.ts().sec();
  out->ts_nsec = r.ts().nsec();
  out->policy = r.policy();
  out->priority = r.priority();
  out->mask = r.mask();
  out->lwpctl_slot = r.lwpctl_slot();
  if (r.has_ptrace()) decode_ptrace(r.ptrace(), &out->ptrace);
  out->wait.kind = decode_wait_kind(r.wait().kind());
  out->wait.code = r.wait().code();
}

ExitStatus decode_exit(const pb::ExitStatus& st) { return ExitStatus{st.signaled(), st.code()}; }


}  // namespace lwpd::client
