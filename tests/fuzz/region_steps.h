// The input format of fuzz_shm_region, shared with the seed generator (gen_seeds.cc).
//
//   header   byte 0: bit 0     two processes instead of one
//                    bits 1-2  slots per region: 4, 8, 64 or 1
//                    bit 3     process 0 runs as uid 1000, else root
//   steps    up to kRegionMaxSteps, each: op byte (RegionStep below, modulo
//            kNumRegionSteps), then the op's own bytes (fuzz_shm_region.cc decodes them;
//            missing bytes read as zero).
//
// Every step acts as the client of one process (`proc` byte % nprocs) on its own region, as
// a shim would -- or as a hostile one: the honest protocol (post a call, start a slot, take
// an answer) and everything else a client can do to memory it maps: any op, LID, length and
// bytes in a slot, any word anywhere in the region, doorbells with any pending bits.
// An ID byte (`id`) names the run's n-th known ID when it is below kIdKnownLimit (the
// processes' pids first, then the LIDs that successful _lwp_create answers returned), else
// it is taken as it is (a LID nobody has, 0, or -1 for 0xff).
#pragma once

#include <cstdint>

namespace lwpd::fuzz {

inline constexpr int kRegionMaxSteps = 48;
inline constexpr uint8_t kIdKnownLimit = 0x80;

enum RegionStep : uint8_t {
  kRsCall,      // proc, slot, id (the caller), call (CallKind), arg id, arg byte
  kRsStart,     // proc, slot, id
  kRsClose,     // proc, slot
  kRsRaw,       // proc, slot, op (u8), lid (u32), trap_gen (u64), len (u16), bytes
  kRsTrap,      // proc, slot, id, gen-variant: 0 the slot's last rep_gen, else u64
  kRsScribble,  // proc, count (1 + byte % 8), then per word: where (u32), value (u64)
  kRsRing,      // proc, word index (byte % 64), bits (u64)
  kRsWait,      // proc, slot: take the slot's next answer, waiting up to a few ms
  kRsAbandon,   // proc: its session breaks (the client died)
  kNumRegionSteps
};

// The calls kRsCall builds (well-formed lwpd.v1.Syscall bytes; the arguments from the
// step's arg id and arg byte).
enum CallKind : uint8_t {
  kCkNull,       // _lwp_kill(self, 0)
  kCkKill,       // _lwp_kill(arg id, arg byte % 66)
  kCkCreate,     // _lwp_create(flags: arg byte % 4 -> 0, LWP_SUSPENDED, LWP_DETACHED, both)
  kCkExit,       // _lwp_exit()
  kCkWait,       // _lwp_wait(arg id)
  kCkSuspend,    // _lwp_suspend(arg id)
  kCkContinue,   // _lwp_continue(arg id)
  kCkUnpark,     // _lwp_unpark(arg id)
  kCkPark,       // _lwp_park(timeout: arg byte % 3 -> none, 0, 100 us; unpark arg id)
  kCkUnparkAll,  // _lwp_unpark_all(arg id, self) or, arg byte odd, LWP_UNPARK_MAX copies
  kCkYield,      // sched_yield()
  kCkSetname,    // _lwp_setname(arg id, arg byte times 'n')
  kCkProcExit,   // exit(arg byte)
  kNumCallKinds
};

}  // namespace lwpd::fuzz
