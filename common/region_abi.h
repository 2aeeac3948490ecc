// The shared-memory region of the co-located fast path (README "Transports"): the layout
// both sides map, the hello that obtains it, and the futex calls on its words. Header only;
// the daemon's side is server/region_server.*, the shim's client/src/transport_shm.cc.
//
// Obtaining it. The client, attached over gRPC (it holds its session token), connects to the
// daemon's Unix socket again and sends a hello: kPreface (24 bytes, which can never begin an
// HTTP/2 connection) and its 32-byte token, in one write. The daemon's acceptor tells it from
// an HTTP/2 preface by its first bytes, checks the connection's SO_PEERCRED against the
// session's (same uid; the same host pid when the kernel gives one for both), and answers
// with a HelloReply carrying the region's memfd (SCM_RIGHTS) or an errno. The memfd is never
// named in the file system and goes only to the process that proved both.
//
// Layout: a Header page, then `nslots` Slots, then one overflow area per slot for requests
// larger than a slot holds (_lwp_unpark_all with many targets). Pages are touched only when
// used, so an idle slot costs nothing and a parked LWP one slot.
//
// One slot per LWP channel (the client picks a free slot; the daemon binds it to the LWP at
// kOpStart and keeps the binding to itself). One entry, seen from the client:
//   1. write op/lid/trap_gen/req_len and the request bytes; req_seq += 1 (release);
//   2. set the slot's bit in Header::pending (fetch_or); bell += 1; FUTEX_WAKE(bell) if the
//      serving thread says it sleeps (Header::sleeping);
//   3. wait until ret_count moved past what it has taken (a return: rep_*) or `term` is set
//      (the LWP is gone, the process exited, or the daemon refused the slot): first spinning
//      for a bounded, adaptive time, then with `waiting` set, on the `wake` futex.
// Either side skips the FUTEX_WAKE system call when the other says it is not asleep; the
// flag is set (seq_cst) before the sleeper re-reads the word it waits on, and read (seq_cst)
// after the waker moved that word, so one of the two always sees the other. A client that
// lies in `waiting` or `sleeping` only loses its own wake-ups.
// The daemon copies each request out of the region before looking at it, trusts none of it
// (the slot's binding and sequence live in its own memory) and writes only answers here: a
// client that scribbles over its region can confuse only its own LWPs.
//
// Kicks. To make an LWP that runs user code enter the kernel, the daemon stores the
// user-run generation in `kick_gen` and sends the thread at `tid` the signal `kick_signo`
// with tgkill() on the thread group the kernel named at attach (SO_PEERCRED), so a client
// that lies in `tid` can only signal one of its own threads, and a `kick_signo` that is not a
// real-time signal is not used. The kick handler traps if `kick_gen` names the generation
// it runs in. Where the daemon cannot signal the client (another pid namespace, another uid
// for a daemon that is not root), kicks travel on the Session stream as for gRPC.
//
// Request and return bytes are the serialized lwpd.v1 messages Syscall and SyscallReturn
// (the same contract as the gRPC transport, decoded by the same code); a return's user-run
// generation is also in rep_gen, so the kick handler can take a trap's return without
// parsing anything (async-signal-safe).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>

namespace lwpd::region {

// Exactly 24 bytes, like the HTTP/2 client preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").
inline constexpr char kPreface[] = "LWPD-REGION/1\r\n\r\n\0\0\0\0\0\0";
inline constexpr size_t kPrefaceLen = 24;
static_assert(sizeof(kPreface) == kPrefaceLen);  // the terminator is its last byte
inline constexpr size_t kTokenLen = 32;
inline constexpr size_t kHelloLen = kPrefaceLen + kTokenLen;

// The daemon's answer to a hello; the memfd travels with it when error == 0.
struct HelloReply {
  int32_t error = 0;  // 0, or an errno: EACCES (credentials do not match the session's),
                      // ENOENT (no such session), EEXIST (the session has its region),
                      // EPROTONOSUPPORT (the daemon does not offer regions), ENOMEM
  uint32_t nslots = 0;
  uint64_t size = 0;  // bytes to map
};

inline constexpr uint32_t kMagic = 0x4c575044;  // "DPWL"
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kMaxSlots = 4096;  // netbsd::MAXLWP: one per possible LWP
inline constexpr size_t kHeaderSize = 4096;
inline constexpr size_t kSlotSize = 1024;
inline constexpr size_t kRepInline = 448;        // SyscallReturn bytes (ample: ~200 at most)
inline constexpr size_t kReqInline = 448;        // Syscall bytes held in the slot itself
inline constexpr size_t kOverflowStride = 8192;  // 1024 LIDs as varints, with room

enum Op : uint32_t {
  kOpNone = 0,
  kOpStart = 1,  // bind the slot to `lid` and wait for its first dispatch (RETURN_START)
  kOpCall = 2,   // a syscall: req_len bytes of lwpd.v1.Syscall
  kOpTrap = 3,   // a kicked LWP enters the kernel (`trap_gen`: the gen it was kicked in)
  kOpClose = 4,  // unbind the slot; no answer
};

enum Term : uint32_t {
  kTermNone = 0,
  kTermLwpGone = 1,     // the LWP exited (the success of _lwp_exit)
  kTermProcExited = 2,  // the process ended: exit_signaled/exit_code
  kTermBroken = 3,      // the daemon refused the request or is shutting down
};

struct alignas(64) Header {
  uint32_t magic;
  uint32_t version;
  uint32_t nslots;
  uint32_t slot_size;
  uint64_t slots_offset;
  uint64_t overflow_offset;
  uint64_t overflow_stride;
  alignas(64) std::atomic<uint32_t> bell;      // client -> daemon doorbell (futex word)
  alignas(64) std::atomic<uint32_t> sleeping;  // the serving thread waits on `bell`
  alignas(64) std::atomic<uint64_t> pending[kMaxSlots / 64];  // slots with a posted request
};
static_assert(sizeof(Header) <= kHeaderSize);

struct alignas(64) Slot {
  // ---- client -> daemon: written before req_seq moves --------------------------------------
  std::atomic<uint32_t> req_seq;
  uint32_t op;
  int32_t lid;
  uint32_t req_len;  // > kReqInline: the bytes are in the slot's overflow area
  uint64_t trap_gen;
  std::atomic<uint32_t> waiting;  // the client waits on `wake`: the daemon must FUTEX_WAKE
  // Set at kOpStart by the LWP's own thread: where the daemon sends a kick (below).
  int32_t tid;
  int32_t kick_signo;
  // ---- daemon -> client ------------------------------------------------------------------------
  alignas(64) std::atomic<uint32_t> wake;  // futex word: moves after every answer below
  std::atomic<uint32_t> ret_count;         // returns written since the slot's kOpStart
  std::atomic<uint32_t> term;              // Term, final until the next kOpStart
  uint32_t rep_len;
  uint64_t rep_gen;
  int32_t exit_signaled;
  int32_t exit_code;
  std::atomic<uint64_t> kick_gen;  // the highest gen the daemon kicked this LWP in
  alignas(64) char rep[kRepInline];
  char req[kReqInline];
};
static_assert(sizeof(Slot) == kSlotSize);
static_assert(std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<uint64_t>::is_always_lock_free,
              "region words are shared between processes: they must be plain memory");

inline constexpr size_t region_size(uint32_t nslots) {
  return kHeaderSize + size_t{nslots} * (kSlotSize + kOverflowStride);
}
inline constexpr size_t slot_offset(uint32_t i) { return kHeaderSize + size_t{i} * kSlotSize; }
inline constexpr size_t overflow_offset(uint32_t nslots, uint32_t i) {
  return kHeaderSize + size_t{nslots} * kSlotSize + size_t{i} * kOverflowStride;
}

// Futex calls on region words: shared (not FUTEX_PRIVATE), as two processes map them.
// Async-signal-safe. futex_wait returns at a wake, a signal, a changed word or the timeout.
inline void futex_wait(std::atomic<uint32_t>* w, uint32_t val, const timespec* rel = nullptr) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAIT, val, rel, nullptr, 0);
}
inline void futex_wake(std::atomic<uint32_t>* w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(w), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

// Bounded adaptive spinning before a futex wait: an answer that comes within a few
// microseconds (the other side is running on another CPU) is taken without two system calls
// and two host context switches. The budget follows what succeeding spins took (twice that,
// within [kSpinMinNs, kSpinMaxNs]) and halves on a failed spin; once it is below kSpinMinNs
// the waiter sleeps at once and only every kSpinProbeEvery-th wait spins again, for the
// whole kSpinMaxNs, to find out whether the other side runs beside it again. So a wait that
// always sleeps (one host CPU, or a loaded host) pays little for it, and a wait that spins
// gives the CPU up after at most kSpinMaxNs. Async-signal-safe: clock_gettime is, and a
// Spinner belongs to one waiting thread.
inline constexpr uint64_t kSpinMaxNs = 20000;
inline constexpr uint64_t kSpinMinNs = 1000;
inline constexpr uint32_t kSpinProbeEvery = 32;

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

class Spinner {
 public:
  // Spins until done() or the budget is spent; true if done() held.
  template <class Done>
  bool spin(Done&& done) {
    uint64_t budget = budget_ns_;
    if (budget < kSpinMinNs) {
      if (++skipped_ < kSpinProbeEvery) return false;
      skipped_ = 0;
      budget = kSpinMaxNs;
    }
    const uint64_t t0 = monotonic_ns();
    for (uint32_t i = 1;; i++) {
      if (done()) {
        budget_ns_ = std::clamp((monotonic_ns() - t0) * 2, kSpinMinNs, kSpinMaxNs);
        return true;
      }
      __builtin_ia32_pause();
      if ((i & 15) == 0 && monotonic_ns() - t0 >= budget) break;
    }
    budget_ns_ = budget / 2;
    return false;
  }

 private:
  uint64_t budget_ns_ = kSpinMaxNs;
  uint32_t skipped_ = 0;
};

}  // namespace lwpd::region
