// End-to-end test support for liblwpclient: a real lwpd per test binary run, and scenarios
// that run in forked children (lwpd_attach makes a process an emulated process, and its
// last _lwp_exit ends it).
//
// Inside a child, failures are reported on stderr and end the child with status 1
// (C_CHECK and friends); gtest's macros are only used in the parent.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <lwpd/lwp.h>

namespace lwpd::clienttest {

// The daemon of this test binary (started by DaemonEnv, --cpus 2).
struct Daemon {
  std::string dir;       // mkdtemp'd runtime directory (socket and lwpctl files)
  std::string endpoint;  // unix:///dir/lwpd.sock
  pid_t pid = -1;
};
const Daemon& daemon();

// Run `body` in a forked child attached to the daemon. The child's main LWP calls
// _lwp_exit() when `body` returns. Returns the child's wait status, or -1 on timeout
// (the child is then killed).
int run_child(const std::function<void()>& body, int timeout_s = 30);
// The two halves of run_child, for several children at once (fork from the test's main
// thread only: ThreadSanitizer does not support forking a multi-threaded process).
pid_t start_child(const std::function<void()>& body);  // -1 if fork failed
int finish_child(pid_t pid, int timeout_s);            // wait status, -1 on timeout (killed)
// Fork/exec `argv` with LWPD_ENDPOINT set; wait status or -1 on timeout.
int run_program(const std::vector<std::string>& argv, int timeout_s = 60);
std::string describe_status(int st);

// Spawn an LWP running fn(arg) on a fresh malloc'd stack.
lwpid_t spawn(void (*fn)(void*), void* arg, unsigned long flags = 0, size_t stack = 64 * 1024);
// Sleep in the emulated kernel (a timed _lwp_park), tolerating early returns.
void ksleep_ms(int ms);
// Host monotonic time in milliseconds.
long now_ms();

[[noreturn]] void child_fail(const char* file, int line, const std::string& what);

}  // namespace lwpd::clienttest

#define C_CHECK(cond)                                                                             \
  do {                                                                                            \
    if (!(cond))                                                                                  \
      ::lwpd::clienttest::child_fail(                                                             \
          __FILE__, __LINE__,                                                                     \
          std::string(#cond) + " (errno " + std::to_string(errno) + " " + strerror(errno) + ")"); \
  } while (0)

#define C_EQ(a, b)                                                                            \
  do {                                                                                        \
    long long _a = static_cast<long long>(a), _b = static_cast<long long>(b);                 \
    if (_a != _b)                                                                             \
      ::lwpd::clienttest::child_fail(                                                         \
          __FILE__, __LINE__,                                                                 \
          std::string(#a " == " #b ": ") + std::to_string(_a) + " vs " + std::to_string(_b)); \
  } while (0)

// `call` fails with -1 and errno `e`.
#define C_ERR(call, e)                                                                 \
  do {                                                                                 \
    errno = 0;                                                                         \
    long long _r = static_cast<long long>(call);                                       \
    int _e = errno;                                                                    \
    if (_r != -1 || _e != (e))                                                         \
      ::lwpd::clienttest::child_fail(__FILE__, __LINE__,                               \
                                     std::string(#call ": expected -1/" #e ", got ") + \
                                         std::to_string(_r) + "/" + strerror(_e));     \
  } while (0)

#define C_OK(call) C_EQ((call), 0)

// The scenario passes when the child exits with status 0.
#define EXPECT_CHILD_OK(...)                                          \
  do {                                                                \
    int _st = ::lwpd::clienttest::run_child(__VA_ARGS__);             \
    EXPECT_TRUE(_st != -1 && WIFEXITED(_st) && WEXITSTATUS(_st) == 0) \
        << ::lwpd::clienttest::describe_status(_st);                  \
  } while (0)
