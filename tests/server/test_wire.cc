// The wire mapping is driven by LWPD_SYSCALLS: every table entry must name a
// Syscall oneof member of the same message type, and every argument struct
// must survive emul -> wire -> emul.
#include <gtest/gtest.h>

#include "server/wire.h"

namespace lwpd::server {
namespace {

namespace nb = ::lwpd::netbsd;

TEST(Wire, EverySyscallHasItsOneofMember) {
  int n = 0;
#define CHECK_ONE(name, num, str, fn)                                                   \
  {                                                                                     \
    const auto* f = v1::Syscall::descriptor()->FindFieldByNumber(v1::Syscall::k##name); \
    ASSERT_NE(f, nullptr) << #name;                                                     \
    ASSERT_NE(f->message_type(), nullptr) << #name;                                     \
    EXPECT_EQ(f->message_type()->full_name(), "lwpd.v1." #name "Args");                 \
    EXPECT_EQ(emul::syscall_number(emul::SysArgs{emul::name##Args{}}), num);            \
    n++;                                                                                \
  }
  LWPD_SYSCALLS(CHECK_ONE)
#undef CHECK_ONE
  // And no oneof member the table lacks.
  EXPECT_EQ(v1::Syscall::descriptor()->oneof_decl(0)->field_count(), n);
}

TEST(Wire, RoundTrip) {
  emul::LwpCreateArgs c;
  c.uc_flags = nb::UC_CPU | nb::UC_TLSBASE;
  c.pc = 0x401000;
  c.rflags = 0x246;
  c.sigmask = 0x5;
  c.tls_base = 0x7000;
  c.flags = nb::LWP_DETACHED;
  c.lid_out_ok = false;
  auto back = syscall_from_wire(syscall_to_wire(c));
  ASSERT_TRUE(back.has_value());
  auto& c2 = std::get<emul::LwpCreateArgs>(*back);
  EXPECT_EQ(c2.uc_flags, c.uc_flags);
  EXPECT_EQ(c2.pc, c.pc);
  EXPECT_EQ(c2.rflags, c.rflags);
  EXPECT_EQ(c2.sigmask, c.sigmask);
  EXPECT_EQ(c2.tls_base, c.tls_base);
  EXPECT_EQ(c2.flags, c.flags);
  EXPECT_FALSE(c2.lid_out_ok);

  emul::LwpParkArgs p;
  p.clock_id = nb::NB_CLOCK_REALTIME;
  p.flags = nb::NB_TIMER_ABSTIME;
  p.ts = emul::Timespec{.tv_sec = 3, .tv_nsec = 4};
  p.unpark = 9;
  auto pb = syscall_from_wire(syscall_to_wire(p));
  ASSERT_TRUE(pb.has_value());
  auto& p2 = std::get<emul::LwpParkArgs>(*pb);
  EXPECT_EQ(p2.clock_id, p.clock_id);
  EXPECT_EQ(p2.flags, p.flags);
  ASSERT_TRUE(p2.ts.has_value());
  EXPECT_EQ(*p2.ts, *p.ts);
  EXPECT_EQ(p2.unpark, 9);
  // Absent ts is "NULL": no timeout.
  p.ts.reset();
  EXPECT_FALSE(std::get<emul::LwpParkArgs>(*syscall_from_wire(syscall_to_wire(p))).ts);

  emul::LwpUnparkAllArgs u;
  u.ntargets = 3;
  u.targets = {4, 5, 6};
  auto ub = std::get<emul::LwpUnparkAllArgs>(*syscall_from_wire(syscall_to_wire(u)));
  EXPECT_EQ(ub.ntargets, 3u);
  EXPECT_EQ(ub.targets, u.targets);

  EXPECT_FALSE(syscall_from_wire(v1::Syscall{}).has_value());
}

TEST(Wire, PtraceAndWaitRoundTrip) {
  emul::PtraceArgs a{.request = nb::PT_LWPSTATUS, .pid = 7, .addr_is_one = false, .data = 64};
  a.in = {.event_mask = nb::PTRACE_LWP_EXIT, .lwpid = 9};
  auto b = std::get<emul::PtraceArgs>(*syscall_from_wire(syscall_to_wire(a)));
  EXPECT_EQ(b.request, a.request);
  EXPECT_EQ(b.pid, 7);
  EXPECT_FALSE(b.addr_is_one);
  EXPECT_EQ(b.data, 64);
  EXPECT_EQ(b.in.event_mask, nb::PTRACE_LWP_EXIT);
  EXPECT_EQ(b.in.lwpid, 9);
  auto w = std::get<emul::WaitArgs>(
      *syscall_from_wire(syscall_to_wire(emul::WaitArgs{.pid = -1, .options = nb::NB_WNOHANG})));
  EXPECT_EQ(w.pid, -1);
  EXPECT_EQ(w.options, nb::NB_WNOHANG);

  emul::SysReturn r = emul::SysReturn::ok(7);
  r.wait = {.kind = emul::WaitOut::kStopped, .code = nb::NB_SIGTRAP};
  r.trace.report_event = nb::PTRACE_LWP_CREATE;
  r.trace.pe_lwp = 12;
  r.trace.name = "thread 12";
  v1::SyscallReturn out;
  return_to_wire(r, 1, &out);
  EXPECT_EQ(out.wait().kind(), v1::WAIT_STOPPED);
  EXPECT_EQ(out.wait().code(), nb::NB_SIGTRAP);
  EXPECT_EQ(out.ptrace().report_event(), nb::PTRACE_LWP_CREATE);
  EXPECT_EQ(out.ptrace().report_lwp(), 12);
  EXPECT_EQ(out.ptrace().name(), "thread 12");
  // Other calls carry neither.
  v1::SyscallReturn plain;
  return_to_wire(emul::SysReturn::ok(1), 1, &plain);
  EXPECT_FALSE(plain.has_ptrace());
  EXPECT_FALSE(plain.has_wait());
  EXPECT_EQ(errno_to_wire(nb::Errno::kECHILD), v1::ERRNO_ECHILD);
  EXPECT_EQ(errno_to_wire(nb::Errno::kEREISSUE), v1::ERRNO_EREISSUE);
}

TEST(Wire, ZeroRflagsMeansTheDefault) {
  v1::Syscall s;
  s.mutable_lwp_create()->set_uc_flags(nb::UC_CPU);
  auto a = std::get<emul::LwpCreateArgs>(*syscall_from_wire(s));
  EXPECT_EQ(a.rflags, 0x202u);
}

TEST(Wire, ReturnAndErrno) {
  emul::SysReturn r = emul::SysReturn::err(nb::Errno::kEAGAIN);
  r.name = "abc";
  r.ts = emul::Timespec{1, 2};
  v1::SyscallReturn w;
  return_to_wire(r, 42, &w);
  EXPECT_EQ(w.error(), v1::ERRNO_EAGAIN);
  EXPECT_EQ(w.gen(), 42u);
  EXPECT_EQ(w.name(), "abc");
  EXPECT_EQ(w.ts().sec(), 1);
  EXPECT_EQ(errno_to_wire(nb::Errno::kERESTART), v1::ERRNO_ERESTART);
  EXPECT_EQ(errno_to_wire(nb::Errno::kENAMETOOLONG), v1::ERRNO_ENAMETOOLONG);
}

// The shared table (common/netbsd_abi.h) has a row for every wire errno: proto/'s
// static_asserts check the rows against the wire, this checks the other direction.
TEST(Wire, EveryWireErrnoHasATableRow) {
  int rows = 3;  // OK, ERESTART, EREISSUE
#define LWPD_COUNT_ROW(name, num) rows++;
  LWPD_NETBSD_ERRNOS(LWPD_COUNT_ROW)
#undef LWPD_COUNT_ROW
  const auto* d = v1::Errno_descriptor();
  EXPECT_EQ(d->value_count(), rows);
  for (int i = 0; i < d->value_count(); i++) {
    const auto e = static_cast<nb::Errno>(d->value(i)->number());
    EXPECT_EQ(errno_to_wire(e), d->value(i)->number()) << d->value(i)->name();
    if (e != nb::Errno::kOk) {
      EXPECT_EQ("ERRNO_" + std::string(nb::errno_name(e)), d->value(i)->name());
    }
  }
}

}  // namespace
}  // namespace lwpd::server
