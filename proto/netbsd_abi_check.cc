// The wire contract's enums mirror the NetBSD tables of common/netbsd_abi.h: every row of
// those tables is checked here against the generated enum, at compile time. Compiled into
// lwpd::proto, so a change to either side that breaks the mirror breaks the build of
// everything that speaks the wire contract (the daemon, the shim, lwpstat). The mirror is
// what lets the daemon and lwpstat convert between the two with a cast or a lookup.
#include "common/netbsd_abi.h"
#include "lwpd/v1/kernel.pb.h"

namespace lwpd::netbsd {
namespace {

namespace v1 = ::lwpd::v1;

template <typename A, typename B>
constexpr bool same(A a, B b) {
  return static_cast<int>(a) == static_cast<int>(b);
}

// Errno: every NetBSD errno the emulation returns, plus the two kernel-internal ones.
#define LWPD_CHECK_ERRNO(name, num) \
  static_assert(same(Errno::k##name, v1::ERRNO_##name), "lwpd.v1.Errno: ERRNO_" #name);
LWPD_NETBSD_ERRNOS(LWPD_CHECK_ERRNO)
#undef LWPD_CHECK_ERRNO
static_assert(same(Errno::kOk, v1::ERRNO_OK));
static_assert(same(Errno::kERESTART, v1::ERRNO_ERESTART));
static_assert(same(Errno::kEREISSUE, v1::ERRNO_EREISSUE));
// No wire value beyond the table's extremes (tests/server/test_wire.cc checks that every
// wire value has a row).
static_assert(v1::Errno_MIN == static_cast<int>(Errno::kEREISSUE));
static_assert(v1::Errno_MAX == static_cast<int>(Errno::kENAMETOOLONG));

// LWP and process states (0 on the wire is "unspecified", never a NetBSD state).
#define LWPD_CHECK_LWP_STATE(name, num, str, wire) \
  static_assert(same(LwpStat::k##name, v1::wire), "lwpd.v1.LwpState: " #wire);
LWPD_NETBSD_LWP_STATES(LWPD_CHECK_LWP_STATE)
#undef LWPD_CHECK_LWP_STATE
static_assert(v1::LwpState_MAX == static_cast<int>(LwpStat::kSuspended));
#define LWPD_CHECK_PROC_STATE(name, num, str, wire) \
  static_assert(same(ProcStat::k##name, v1::wire), "lwpd.v1.ProcState: " #wire);
LWPD_NETBSD_PROC_STATES(LWPD_CHECK_PROC_STATE)
#undef LWPD_CHECK_PROC_STATE
static_assert(v1::ProcState_MAX == static_cast<int>(ProcStat::kZomb));

}  // namespace
}  // namespace lwpd::netbsd
