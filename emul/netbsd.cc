#include "emul/netbsd.h"

#include <string_view>

#include "emul/syscalls.h"

// The numbers and names of emul/syscalls.h's table are NetBSD's, as the shared table
// (common/netbsd_abi.h) lists them: checked here, row by row.
#define LWPD_SYSNO_CHECK(name, num, str, fn)                                        \
  static_assert(num == ::lwpd::netbsd::sysno(::lwpd::netbsd::Sysno::k##name), str); \
  static_assert(std::string_view(str) == ::lwpd::netbsd::sysno_name(::lwpd::netbsd::Sysno::k##name));
LWPD_SYSCALLS(LWPD_SYSNO_CHECK)
#undef LWPD_SYSNO_CHECK

namespace lwpd::emul {

int syscall_number(const SysArgs& a) {
  return std::visit(
      [](const auto& v) -> int {
        using A = std::decay_t<decltype(v)>;
#define LWPD_NUM_CASE(name, num, str, fn) \
  if constexpr (std::is_same_v<A, name##Args>) return num;
        LWPD_SYSCALLS(LWPD_NUM_CASE)
#undef LWPD_NUM_CASE
        return -1;
      },
      a);
}

const char* syscall_name(const SysArgs& a) {
  return std::visit(
      [](const auto& v) -> const char* {
        using A = std::decay_t<decltype(v)>;
#define LWPD_NAME_CASE(name, num, str, fn) \
  if constexpr (std::is_same_v<A, name##Args>) return str;
        LWPD_SYSCALLS(LWPD_NAME_CASE)
#undef LWPD_NAME_CASE
        return "(none)";
      },
      a);
}

}  // namespace lwpd::emul
