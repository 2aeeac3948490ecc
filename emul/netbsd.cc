#include "emul/netbsd.h"

#include <cerrno>

#include "emul/syscalls.h"

namespace lwpd::netbsd {

const char* errno_name(Errno e) {
  switch (e) {
    case Errno::kOk:
      return "0";
    case Errno::kEPERM:
      return "EPERM";
    case Errno::kESRCH:
      return "ESRCH";
    case Errno::kEINTR:
      return "EINTR";
    case Errno::kEDEADLK:
      return "EDEADLK";
    case Errno::kENOMEM:
      return "ENOMEM";
    case Errno::kEFAULT:
      return "EFAULT";
    case Errno::kEBUSY:
      return "EBUSY";
    case Errno::kENODEV:
      return "ENODEV";
    case Errno::kEINVAL:
      return "EINVAL";
    case Errno::kEAGAIN:
      return "EAGAIN";
    case Errno::kEALREADY:
      return "EALREADY";
    case Errno::kETIMEDOUT:
      return "ETIMEDOUT";
    case Errno::kENAMETOOLONG:
      return "ENAMETOOLONG";
    case Errno::kERESTART:
      return "ERESTART";
    case Errno::kECHILD:
      return "ECHILD";
    case Errno::kEREISSUE:
      return "EREISSUE";
  }
  return "E?";
}

int errno_to_host(Errno e) {
  switch (e) {
    case Errno::kOk:
      return 0;
    case Errno::kEPERM:
      return EPERM;
    case Errno::kESRCH:
      return ESRCH;
    case Errno::kEINTR:
      return EINTR;
    case Errno::kEDEADLK:
      return EDEADLK;
    case Errno::kENOMEM:
      return ENOMEM;
    case Errno::kEFAULT:
      return EFAULT;
    case Errno::kEBUSY:
      return EBUSY;
    case Errno::kENODEV:
      return ENODEV;
    case Errno::kEINVAL:
      return EINVAL;
    case Errno::kEAGAIN:
      return EAGAIN;
    case Errno::kEALREADY:
      return EALREADY;
    case Errno::kETIMEDOUT:
      return ETIMEDOUT;
    case Errno::kENAMETOOLONG:
      return ENAMETOOLONG;
    case Errno::kERESTART:
    case Errno::kEREISSUE:
      return EINTR;
    case Errno::kECHILD:
      return ECHILD;
  }
  return EINVAL;
}

const char* lwp_stat_name(LwpStat s) {
  switch (s) {
    case LwpStat::kIdl:
      return "IDL";
    case LwpStat::kRun:
      return "RUN";
    case LwpStat::kSleep:
      return "SLEEP";
    case LwpStat::kStop:
      return "STOP";
    case LwpStat::kZomb:
      return "ZOMB";
    case LwpStat::kOnProc:
      return "ONPROC";
    case LwpStat::kSuspended:
      return "SUSPENDED";
  }
  return "?";
}

const char* proc_stat_name(ProcStat s) {
  switch (s) {
    case ProcStat::kIdl:
      return "IDL";
    case ProcStat::kActive:
      return "ACTIVE";
    case ProcStat::kDying:
      return "DYING";
    case ProcStat::kStop:
      return "STOP";
    case ProcStat::kZomb:
      return "ZOMB";
  }
  return "?";
}

}  // namespace lwpd::netbsd

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
