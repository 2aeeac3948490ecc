// The lock-order check's slow paths: the messages of a violated order (emul/lock.h).

#include "emul/lock.h"

#include <cstdio>
#include <cstdlib>

namespace lwpd {

const char* lock_rank_name(LockRank r) {
  switch (r) {
    case LockRank::kSessions:
      return "Sessions";
    case LockRank::kTraceTable:
      return "TraceTable";
    case LockRank::kKernelTable:
      return "KernelTable";
    case LockRank::kProc:
      return "Proc";
    case LockRank::kCpu:
      return "Cpu";
    case LockRank::kCallout:
      return "Callout";
    case LockRank::kIdAlloc:
      return "IdAlloc";
    case LockRank::kUid:
      return "Uid";
    case LockRank::kPort:
      return "Port";
    case LockRank::kWatchHub:
      return "WatchHub";
    case LockRank::kWatcher:
      return "Watcher";
    case LockRank::kStream:
      return "Stream";
    case LockRank::kPump:
      return "Pump";
    case LockRank::kJanitor:
      return "Janitor";
    case LockRank::kLeaf:
      return "Leaf";
  }
  return "?";
}

#if LWPD_LOCK_CHECKS
namespace lockcheck {

void order_violation(LockRank taking, uint32_t held) {
  std::fprintf(stderr, "lwpd: lock order violation: taking a %s lock while holding",
               lock_rank_name(taking));
  for (unsigned r = 0; r < 32; r++)
    if (held & (1u << r)) std::fprintf(stderr, " %s", lock_rank_name(static_cast<LockRank>(r)));
  std::fprintf(stderr, " (order: emul/lock.h)\n");
  std::abort();
}

void not_held(LockRank r) {
  std::fprintf(stderr, "lwpd: lock not held: a %s lock is required here (emul/lock.h)\n",
               lock_rank_name(r));
  std::abort();
}

}  // namespace lockcheck
#endif

}  // namespace lwpd
