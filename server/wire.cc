#include "server/wire.h"

#include <cassert>
#include <type_traits>
#include <variant>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

namespace lwpd::server {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
namespace nb = ::lwpd::netbsd;

// The oneof member of Syscall that carries `case_number` (the case value is
// the field number).
const FieldDescriptor* syscall_field(int case_number) {
  const FieldDescriptor* f = v1::Syscall::descriptor()->FindFieldByNumber(case_number);
  assert(f != nullptr && f->message_type() != nullptr);
  return f;
}

// ---- wire -> emul, one overload per syscall ---------------------------------------

// Range audit: every 64-bit wire field lands in a 64-bit kernel value, so decoding never
// narrows (a value is passed on as sent and the kernel validates it: EINVAL, not a wrap).
// 32-bit wire fields (pids, LIDs, signals) are 32-bit in the kernel too; a wider value a
// client puts there is truncated by its protobuf library or by ours while parsing, before
// this code runs (README, "Unread streams, wire errors ...").
template <class Kernel, class Wire>
constexpr bool holds = sizeof(Kernel) >= sizeof(Wire) && std::is_signed_v<Kernel> ==
                                                            std::is_signed_v<Wire>;
static_assert(holds<decltype(emul::LwpCreateArgs::pc), uint64_t>);
static_assert(holds<decltype(emul::LwpCreateArgs::rflags), uint64_t>);
static_assert(holds<decltype(emul::LwpCreateArgs::sigmask), uint64_t>);
static_assert(holds<decltype(emul::LwpCreateArgs::tls_base), uint64_t>);
static_assert(holds<decltype(emul::LwpCreateArgs::flags), uint64_t>);
static_assert(holds<decltype(emul::LwpCreateArgs::uc_flags), uint32_t>);
static_assert(holds<decltype(emul::LwpSetprivateArgs::ptr), uint64_t>);
static_assert(holds<decltype(emul::LwpUnparkArgs::hint), uint64_t>);
static_assert(holds<decltype(emul::LwpUnparkAllArgs::ntargets), uint64_t>);
static_assert(holds<decltype(emul::LwpUnparkAllArgs::hint), uint64_t>);
static_assert(holds<decltype(emul::LwpGetnameArgs::len), uint64_t>);
static_assert(holds<decltype(emul::SchedSetaffinityArgs::mask), uint64_t>);
static_assert(holds<decltype(emul::LwpParkArgs::hint), uint64_t>);
static_assert(holds<decltype(emul::LwpParkArgs::unparkhint), uint64_t>);
static_assert(holds<decltype(emul::Timespec::tv_sec), int64_t>);
static_assert(holds<decltype(emul::Timespec::tv_nsec), int64_t>);

emul::ProcExitArgs decode(const v1::ProcExitArgs& w) { return {.status = w.status()}; }

emul::LwpCreateArgs decode(const v1::LwpCreateArgs& w) {
  emul::LwpCreateArgs a;
  a.uc_flags = w.uc_flags();
  a.pc = w.pc();
  // 0 is proto3's "unset": the usual user RFLAGS (IF and the must-be-one bit).
  a.rflags = w.rflags() != 0 ? w.rflags() : 0x202;
  a.sigmask = w.sigmask();
  a.tls_base = w.tls_base();
  a.flags = w.flags();
  a.lid_out_ok = !w.lid_out_fault();
  return a;
}

emul::LwpExitArgs decode(const v1::LwpExitArgs&) { return {}; }
emul::LwpSelfArgs decode(const v1::LwpSelfArgs&) { return {}; }
emul::LwpWaitArgs decode(const v1::LwpWaitArgs& w) { return {.wait_for = w.wait_for()}; }
emul::LwpSuspendArgs decode(const v1::LwpSuspendArgs& w) { return {.target = w.target()}; }
emul::LwpContinueArgs decode(const v1::LwpContinueArgs& w) { return {.target = w.target()}; }
emul::LwpWakeupArgs decode(const v1::LwpWakeupArgs& w) { return {.target = w.target()}; }
emul::LwpGetprivateArgs decode(const v1::LwpGetprivateArgs&) { return {}; }
emul::LwpSetprivateArgs decode(const v1::LwpSetprivateArgs& w) { return {.ptr = w.ptr()}; }
emul::LwpKillArgs decode(const v1::LwpKillArgs& w) {
  return {.target = w.target(), .signo = w.signo()};
}
emul::LwpDetachArgs decode(const v1::LwpDetachArgs& w) { return {.target = w.target()}; }
emul::LwpUnparkArgs decode(const v1::LwpUnparkArgs& w) {
  return {.target = w.target(), .hint = w.hint()};
}
emul::LwpUnparkAllArgs decode(const v1::LwpUnparkAllArgs& w) {
  emul::LwpUnparkAllArgs a;
  a.targets_null = w.targets_null();
  a.ntargets = w.ntargets();
  a.targets.assign(w.targets().begin(), w.targets().end());
  a.hint = w.hint();
  return a;
}
emul::LwpSetnameArgs decode(const v1::LwpSetnameArgs& w) {
  return {.target = w.target(), .name = w.name()};
}
emul::LwpGetnameArgs decode(const v1::LwpGetnameArgs& w) {
  return {.target = w.target(), .len = w.len()};
}
emul::LwpCtlArgs decode(const v1::LwpCtlArgs& w) { return {.features = w.features()}; }
emul::SchedSetparamArgs decode(const v1::SchedSetparamArgs& w) {
  return {.pid = w.pid(), .lid = w.lid(), .policy = w.policy(), .priority = w.priority()};
}
emul::SchedGetparamArgs decode(const v1::SchedGetparamArgs& w) {
  return {.pid = w.pid(), .lid = w.lid()};
}
emul::SchedSetaffinityArgs decode(const v1::SchedSetaffinityArgs& w) {
  return {.pid = w.pid(), .lid = w.lid(), .mask = w.mask()};
}
emul::SchedGetaffinityArgs decode(const v1::SchedGetaffinityArgs& w) {
  return {.pid = w.pid(), .lid = w.lid()};
}
emul::SchedYieldArgs decode(const v1::SchedYieldArgs&) { return {}; }
emul::LwpParkArgs decode(const v1::LwpParkArgs& w) {
  emul::LwpParkArgs a;
  a.clock_id = w.clock_id();
  a.flags = w.flags();
  if (w.has_ts()) a.ts = emul::Timespec{.tv_sec = w.ts().sec(), .tv_nsec = w.ts().nsec()};
  a.unpark = w.unpark();
  a.hint = w.hint();
  a.unparkhint = w.unparkhint();
  return a;
}

emul::PtraceArgs decode(const v1::PtraceArgs& w) {
  emul::PtraceArgs a;
  a.request = w.request();
  a.pid = w.pid();
  a.addr_is_one = !w.addr_not_one();
  a.data = w.data();
  a.in.event_mask = w.event_mask();
  a.in.lwpid = w.lwpid();
  return a;
}
emul::WaitArgs decode(const v1::WaitArgs& w) { return {.pid = w.pid(), .options = w.options()}; }

// ---- emul -> wire, one overload per syscall --------------------------------------

void encode(const emul::ProcExitArgs& a, v1::ProcExitArgs* w) { w->set_status(a.status); }
void encode(const emul::LwpCreateArgs& a, v1::LwpCreateArgs* w) {
  w->set_uc_flags(a.uc_flags);
  w->set_pc(a.pc);
  w->set_rflags(a.rflags);
  w->set_sigmask(a.sigmask);
  w->set_tls_base(a.tls_base);
  w->set_flags(a.flags);
  w->set_lid_out_fault(!a.lid_out_ok);
}
void encode(const emul::LwpExitArgs&, v1::LwpExitArgs*) {}
void encode(const emul::LwpSelfArgs&, v1::LwpSelfArgs*) {}
void encode(const emul::LwpWaitArgs& a, v1::LwpWaitArgs* w) { w->set_wait_for(a.wait_for); }
void encode(const emul::LwpSuspendArgs& a, v1::LwpSuspendArgs* w) { w->set_target(a.target); }
void encode(const emul::LwpContinueArgs& a, v1::LwpContinueArgs* w) { w->set_target(a.target); }
void encode(const emul::LwpWakeupArgs& a, v1::LwpWakeupArgs* w) { w->set_target(a.target); }
void encode(const emul::LwpGetprivateArgs&, v1::LwpGetprivateArgs*) {}
void encode(const emul::LwpSetprivateArgs& a, v1::LwpSetprivateArgs* w) { w->set_ptr(a.ptr); }
void encode(const emul::LwpKillArgs& a, v1::LwpKillArgs* w) {
  w->set_target(a.target);
  w->set_signo(a.signo);
}
void encode(const emul::LwpDetachArgs& a, v1::LwpDetachArgs* w) { w->set_target(a.target); }
void encode(const emul::LwpUnparkArgs& a, v1::LwpUnparkArgs* w) {
  w->set_target(a.target);
  w->set_hint(a.hint);
}
void encode(const emul::LwpUnparkAllArgs& a, v1::LwpUnparkAllArgs* w) {
  w->set_targets_null(a.targets_null);
  w->set_ntargets(a.ntargets);
  for (auto t : a.targets) w->add_targets(t);
  w->set_hint(a.hint);
}
void encode(const emul::LwpSetnameArgs& a, v1::LwpSetnameArgs* w) {
  w->set_target(a.target);
  w->set_name(a.name);
}
void encode(const emul::LwpGetnameArgs& a, v1::LwpGetnameArgs* w) {
  w->set_target(a.target);
  w->set_len(a.len);
}
void encode(const emul::LwpCtlArgs& a, v1::LwpCtlArgs* w) { w->set_features(a.features); }
void encode(const emul::SchedSetparamArgs& a, v1::SchedSetparamArgs* w) {
  w->set_pid(a.pid);
  w->set_lid(a.lid);
  w->set_policy(a.policy);
  w->set_priority(a.priority);
}
void encode(const emul::SchedGetparamArgs& a, v1::SchedGetparamArgs* w) {
  w->set_pid(a.pid);
  w->set_lid(a.lid);
}
void encode(const emul::SchedSetaffinityArgs& a, v1::SchedSetaffinityArgs* w) {
  w->set_pid(a.pid);
  w->set_lid(a.lid);
  w->set_mask(a.mask);
}
void encode(const emul::SchedGetaffinityArgs& a, v1::SchedGetaffinityArgs* w) {
  w->set_pid(a.pid);
  w->set_lid(a.lid);
}
void encode(const emul::SchedYieldArgs&, v1::SchedYieldArgs*) {}
void encode(const emul::LwpParkArgs& a, v1::LwpParkArgs* w) {
  w->set_clock_id(a.clock_id);
  w->set_flags(a.flags);
  if (a.ts) {
    w->mutable_ts()->set_sec(a.ts->tv_sec);
    w->mutable_ts()->set_nsec(a.ts->tv_nsec);
  }
  w->set_unpark(a.unpark);
  w->set_hint(a.hint);
  w->set_unparkhint(a.unparkhint);
}

void encode(const emul::PtraceArgs& a, v1::PtraceArgs* w) {
  w->set_request(a.request);
  w->set_pid(a.pid);
  w->set_addr_not_one(!a.addr_is_one);
  w->set_data(a.data);
  w->set_event_mask(a.in.event_mask);
  w->set_lwpid(a.in.lwpid);
}
void encode(const emul::WaitArgs& a, v1::WaitArgs* w) {
  w->set_pid(a.pid);
  w->set_options(a.options);
}

void ptrace_out_to_wire(const emul::PtraceOut& o, v1::PtraceOut* w) {
  w->set_event_mask(o.event_mask);
  w->set_report_event(o.report_event);
  w->set_report_lwp(o.pe_lwp);
  w->set_lwpid(o.lwpid);
  w->set_pl_event(o.pl_event);
  w->set_sigpend(o.sigpend);
  w->set_sigmask(o.sigmask);
  w->set_name(o.name);
  w->set_private_ptr(o.private_ptr);
  v1::SigInfo* si = w->mutable_siginfo();
  si->set_signo(o.stop_signo);
  si->set_code(o.stop_code);
  si->set_pid(o.stop_pid);
  si->set_uid(o.stop_uid);
  si->set_lid(o.psi_lwpid);
  w->set_psi_lwpid(o.psi_lwpid);
}

// emul argument struct -> its proto message and oneof case.
template <class T>
struct WireOf;
#define LWPD_WIRE_OF(name, num, str, fn)                                 \
  template <>                                                            \
  struct WireOf<emul::name##Args> {                                      \
    using type = v1::name##Args;                                         \
    static constexpr v1::Syscall::CallCase kCase = v1::Syscall::k##name; \
  };
LWPD_SYSCALLS(LWPD_WIRE_OF)
#undef LWPD_WIRE_OF

}  // namespace

std::optional<emul::SysArgs> syscall_from_wire(const v1::Syscall& s) {
  const Message& m = s;
  switch (s.call_case()) {
#define LWPD_WIRE_DECODE(name, num, str, fn)                        \
  case v1::Syscall::k##name:                                        \
    return emul::SysArgs{decode(static_cast<const v1::name##Args&>( \
        m.GetReflection()->GetMessage(m, syscall_field(v1::Syscall::k##name))))};
    LWPD_SYSCALLS(LWPD_WIRE_DECODE)
#undef LWPD_WIRE_DECODE
    case v1::Syscall::CALL_NOT_SET:
      return std::nullopt;
  }
  return std::nullopt;  // a case number this daemon does not know
}

emul::PtraceArgs ptrace_from_wire(const v1::PtraceArgs& w) { return decode(w); }
emul::WaitArgs wait_from_wire(const v1::WaitArgs& w) { return decode(w); }

v1::Syscall syscall_to_wire(const emul::SysArgs& a) {
  v1::Syscall s;
  std::visit(
      [&](const auto& args) {
        using T = std::decay_t<decltype(args)>;
        if constexpr (!std::is_same_v<T, std::monostate>) {
          Message& m = s;
          auto* w = m.GetReflection()->MutableMessage(&m, syscall_field(WireOf<T>::kCase));
          encode(args, static_cast<typename WireOf<T>::type*>(w));
        }
      },
      a);
  return s;
}

// One case per row of the shared table (common/netbsd_abi.h); a value outside it is EINVAL.
v1::Errno errno_to_wire(netbsd::Errno e) {
  switch (e) {
    case netbsd::Errno::kOk:
      return v1::ERRNO_OK;
#define LWPD_ERRNO_WIRE(name, num) \
  case netbsd::Errno::k##name:     \
    return v1::ERRNO_##name;
      LWPD_NETBSD_ERRNOS(LWPD_ERRNO_WIRE)
#undef LWPD_ERRNO_WIRE
    case netbsd::Errno::kERESTART:
      return v1::ERRNO_ERESTART;
    case netbsd::Errno::kEREISSUE:
      return v1::ERRNO_EREISSUE;
  }
  return v1::ERRNO_EINVAL;
}

void return_to_wire(const emul::SysReturn& r, uint64_t gen, v1::SyscallReturn* out) {
  switch (r.kind) {
    case emul::ReturnKind::kSyscall:
      out->set_kind(v1::RETURN_SYSCALL);
      break;
    case emul::ReturnKind::kStart:
      out->set_kind(v1::RETURN_START);
      break;
    case emul::ReturnKind::kResume:
      out->set_kind(v1::RETURN_RESUME);
      break;
  }
  out->set_error(errno_to_wire(r.error));
  out->set_retval(r.retval);
  if (!r.name.empty()) out->set_name(r.name);
  if (r.ts) {
    out->mutable_ts()->set_sec(r.ts->tv_sec);
    out->mutable_ts()->set_nsec(r.ts->tv_nsec);
  }
  out->set_policy(r.policy);
  out->set_priority(r.priority);
  out->set_mask(r.mask);
  out->set_lwpctl_slot(r.lwpctl_slot);
  out->set_gen(gen);
  // Only ptrace and wait fill these; an empty PtraceOut is not sent.
  if (!(r.trace == emul::PtraceOut{})) ptrace_out_to_wire(r.trace, out->mutable_ptrace());
  if (r.wait.kind != emul::WaitOut::kNone) {
    out->mutable_wait()->set_kind(static_cast<v1::WaitKind>(r.wait.kind));
    out->mutable_wait()->set_code(r.wait.code);
  }
}

void siginfo_to_wire(const emul::SigInfo& si, v1::SigInfo* out) {
  out->set_signo(si.signo);
  out->set_code(si.code);
  out->set_pid(si.pid);
  out->set_uid(si.uid);
  out->set_lid(si.lid);
}

void exit_status_to_wire(const emul::ExitStatus& st, v1::ExitStatus* out) {
  out->set_signaled(st.signaled);
  out->set_code(st.code);
}

void lwp_info_to_wire(const emul::LwpInfo& li, v1::LwpInfo* out) {
  out->set_lid(li.lid);
  out->set_state(static_cast<v1::LwpState>(static_cast<int>(li.stat)));
  out->set_flags(li.flag);
  out->set_cpu(li.cpu);
  out->set_priority(li.priority);
  out->set_policy(li.policy);
  out->set_name(li.name);
  out->set_wchan(li.wchan);
  out->set_detached(li.detached);
  out->set_in_kernel(li.in_kernel);
  out->set_switches(li.switches);
  out->set_lc_curcpu(li.lc_curcpu);
  out->set_lc_pctr(li.lc_pctr);
}

void proc_info_to_wire(const emul::ProcInfo& pi, bool with_lwps, v1::ProcInfo* out) {
  out->set_pid(pi.pid);
  out->set_uid(pi.uid);
  out->set_comm(pi.comm);
  out->set_state(static_cast<v1::ProcState>(static_cast<int>(pi.stat)));
  out->set_nlwps(pi.nlwps);
  out->set_nrlwps(pi.nrlwps);
  out->set_nzlwps(pi.nzlwps);
  out->set_ndlwps(pi.ndlwps);
  out->set_nlwpwait(pi.nlwpwait);
  out->set_lwpctl_path(pi.lwpctl_path);
  if (with_lwps)
    for (const auto& li : pi.lwps) lwp_info_to_wire(li, out->add_lwps());
}

void cpu_info_to_wire(const emul::CpuInfo& ci, v1::CpuInfo* out) {
  out->set_index(ci.index);
  out->set_host_cpu(ci.host_cpu);
  out->set_cur_pid(ci.cur_pid);
  out->set_cur_lid(ci.cur_lid);
  out->set_cur_priority(ci.cur_priority);
  out->set_runq_len(ci.runq_len);
  out->set_switches(ci.switches);
  out->set_steals(ci.steals);
  out->set_preemptions(ci.preemptions);
  out->set_busy_ns(ci.busy_ns);
  out->set_idle_ns(ci.idle_ns);
}

}  // namespace lwpd::server
