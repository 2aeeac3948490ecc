// Futex waits and wakes on a std::atomic<uint32_t> word, process-private. Async-signal-safe
// (one system call each).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>

namespace lwpd::client {

inline void futex_wait(std::atomic<uint32_t>* w, uint32_t val) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT_PRIVATE, val, nullptr, nullptr, 0);
}
// Returns false on timeout.
inline bool futex_wait_ms(std::atomic<uint32_t>* w, uint32_t val, long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  long r =
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT_PRIVATE, val, &ts, nullptr, 0);
  return !(r == -1 && errno == ETIMEDOUT);
}
inline void futex_wake(std::atomic<uint32_t>* w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr,
          nullptr, 0);
}

}  // namespace lwpd::client
