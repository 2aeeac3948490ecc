// The input format of fuzz_syscalls, shared with the seed generator (gen_seeds.cc).
//
//   header   byte 0: bit 0     4 processes instead of 3
//                    bit 1     2 vCPUs instead of 1 (less deterministic: docs/FUZZING.md)
//                    bits 2-5  process i runs as uid 1000 when bit 2+i is set, else root
//            byte 1: RLIMIT_NTHR of every process: 1 + byte % 8 (LWPs besides the first)
//   steps    up to kMaxSteps, each: op byte (Step below, modulo kNumSteps), then the op's
//            own bytes (fuzz_syscalls.cc decodes them; missing bytes read as zero).
//
// A "user" step is a syscall made by an LWP that is in user mode: the step's `who` byte
// names a process (who % nprocs) and one of its LWPs in user mode ((who >> 2) % count); if
// that process has none, the next process that has one is used; if no LWP of any process is
// in user mode the step is skipped (kLetTimePass waits for park timeouts).
// "Outside" steps act on the kernel as the daemon does for admins, broken sessions and
// debuggers, and need no LWP.
#pragma once

#include <cstdint>

namespace lwpd::fuzz {

enum Step : uint8_t {
  // ---- user steps: op, who, then the call's arguments ----
  kCreate,         // flags-variant, ucontext-variant, lid_out_ok bit
  kLwpExit,        //
  kSelf,           //
  kWait,           // lid
  kSuspend,        // lid
  kContinue,       // lid
  kWakeup,         // lid
  kGetprivate,     //
  kSetprivate,     // u64
  kKill,           // lid, signal
  kDetach,         // lid
  kUnpark,         // lid
  kUnparkAll,      // count, lids..., ntargets-variant
  kSetname,        // lid, name (length byte + bytes)
  kGetname,        // lid, len
  kCtl,            // features
  kSchedSetparam,  // pid, lid, policy, priority
  kSchedGetparam,  // pid, lid
  kSetaffinity,    // pid, lid, mask byte
  kGetaffinity,    // pid, lid
  kYield,          //
  kPark,           // clock-variant, timeout-variant, unpark lid
  kPtrace,         // request, pid, data-variant, data, addr_is_one, event mask, lwpid
  kTraceWait,      // pid, options-variant
  kProcExit,       // status
  // ---- outside steps ----
  kSignalProc,     // process, signal-variant
  kSuspendExt,     // process, lid
  kContinueExt,    // process, lid
  kAbandon,        // process
  kDebugger,       // sub-op (open/ptrace/wait/cancel/close), then its arguments
  kSigrestart,     // process, mask byte
  kRelease,        // process
  kLetTimePass,    // wait up to 300 us for a park timeout
  kNumSteps
};

inline constexpr int kMaxSteps = 96;

// Argument bytes that name a LID (lid byte) or a pid (pid byte): the low 3 bits pick the
// kind, the rest an index into the IDs seen so far in the run.
enum LidKind : uint8_t { kLidZero, kLidSelf, kLidMinus1, kLidBogus, kLidMax, kLidKnown };
enum PidKind : uint8_t { kPidZero, kPidSelf, kPidMinus1, kPidBogus, kPidKnown };

// Debugger sub-ops (byte after kDebugger, modulo kNumDbgOps).
enum DbgOp : uint8_t { kDbgOpen, kDbgPtrace, kDbgWait, kDbgCancel, kDbgClose, kNumDbgOps };

}  // namespace lwpd::fuzz
