// fuzz_seeds OUTDIR: writes the seed corpora of the fuzz targets, one file per scenario:
//   OUTDIR/fuzz_syscalls/<name>   (format: syscall_steps.h)
//   OUTDIR/fuzz_requests/<name>   (format: requests_format.h)
//   OUTDIR/fuzz_shm_region/<name> (format: region_steps.h)
// The committed corpora (tests/fuzz/corpus/) are this program's output:
//   build-clang/tests/fuzz/fuzz_seeds tests/fuzz/corpus
// Each seed is a short, meaningful scenario the fuzzer mutates from: the ones that reach
// deep states (a tracer's stop, a suspended LWP, a park that times out) are hard to find
// from random bytes alone.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/region_abi.h"
#include "emul/syscalls.h"
#include "region_steps.h"
#include "requests_format.h"
#include "server/wire.h"
#include "syscall_steps.h"

namespace {

using namespace lwpd::fuzz;
namespace v1 = ::lwpd::v1;
namespace emul = ::lwpd::emul;
using Bytes = std::vector<uint8_t>;

void write(const std::filesystem::path& dir, const std::string& name, const Bytes& b) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// ---- fuzz_syscalls ------------------------------------------------------------------------

// A LID / pid argument byte naming the run's n-th known ID (pids first, then created LIDs).
uint8_t known_lid(int n) { return static_cast<uint8_t>(kLidKnown | (n << 3)); }
uint8_t known_pid(int n) { return static_cast<uint8_t>(kPidKnown | (n << 3)); }
// Request indices in fuzz_syscalls.cc's ptrace table.
constexpr uint8_t kPtAttach = 3, kPtContinue = 1, kPtDetach = 4, kPtKill = 2, kPtStop = 12,
                  kPtLwpstatus = 13, kPtSuspend = 11, kPtResume = 10;

void syscall_seeds(const std::filesystem::path& dir) {
  // Three root processes, 1 vCPU, RLIMIT_NTHR 8 (pids are IDs 0-2, the first new LWP is 3).
  // With one vCPU only one LWP is in user mode at a time: a step names process 0 only while
  // its LWP holds the vCPU (after a yield or a sleep another process's LWP runs).
  const Bytes h = {0x00, 7};
  auto seed = [&](const std::string& name, Bytes steps, Bytes header = {}) {
    Bytes b = header.empty() ? h : header;
    b.insert(b.end(), steps.begin(), steps.end());
    write(dir, name, b);
  };
  seed("empty", {});
  seed("four-procs-two-cpus", {kSelf, 0, kSelf, 1, kSelf, 2, kSelf, 3}, {0x03, 7});
  seed("create-yield-wait", {kCreate, 0, 0, 5, kYield, 0, kYield, 0, kWait, 0, kLidZero});
  seed("create-wait-known", {kCreate, 0, 0, 5, kWait, 0, known_lid(3)});
  seed("create-detached-exit", {kCreate, 0, 1, 5, kYield, 0, kLwpExit, 4, kWait, 0, kLidZero});
  seed("create-suspended-continue", {kCreate, 0, 2, 5, kContinue, 0, known_lid(3), kYield, 0});
  seed("create-bad-contexts", {kCreate, 0, 0, 0, kCreate, 0, 0, 1, kCreate, 0, 0, 2,
                               kCreate, 0, 0, 0x83, kCreate, 0, 4, 4});
  seed("create-to-rlimit", {kCreate, 0, 0, 5, kCreate, 0, 0, 5, kCreate, 0, 1, 5},
       {0x00, 1});
  seed("park-timeout-let-time-pass", {kPark, 0, 0, 4, kLetTimePass, kLetTimePass, kSelf, 0});
  seed("park-variants", {kPark, 0, 0, 1, kPark, 0, 1, 2, kPark, 0, 2, 6, kPark, 0, 0, 7,
                         kPark, 0, 0, 0x88, kLetTimePass});
  seed("park-unpark-child", {kCreate, 0, 0, 5, kPark, 0, 0, 5, kUnpark, 0, known_lid(0),
                             kUnparkAll, 0, 2, kLidSelf, known_lid(3), 0});
  seed("unpark-all-variants", {kUnparkAll, 0, 0, 1, kUnparkAll, 0, 1, kLidSelf, 2,
                               kUnparkAll, 0, 3, 1, 1, 1, 3, kUnparkAll, 0, 5, 0, 0, 0, 0, 0, 4});
  seed("kill-signals", {kKill, 0, kLidSelf, 30, kKill, 0, kLidSelf, 0, kKill, 0, kLidSelf, 201,
                        kKill, 0, kLidBogus, 30, kKill, 0, kLidSelf, 17, kSignalProc, 0, 1});
  seed("suspend-self-and-others", {kCreate, 0, 0, 5, kSuspend, 0, known_lid(3),
                                   kContinue, 0, known_lid(3), kSuspend, 0, kLidSelf});
  seed("detach-and-wait", {kCreate, 0, 0, 5, kDetach, 0, known_lid(3), kWait, 0, known_lid(3),
                           kDetach, 0, kLidSelf});
  seed("names-private-ctl", {kSetname, 0, kLidSelf, 20, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h',
                             'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't',
                             kGetname, 0, kLidZero, 4, kGetname, 0, kLidSelf, 19,
                             kSetprivate, 0, 1, 2, 3, 4, 5, 6, 7, 8, kGetprivate, 0,
                             kCtl, 0, 3, kCtl, 0, 7, kWakeup, 0, kLidSelf});
  seed("sched-calls", {kSchedSetparam, 0, kPidZero, kLidZero, 3, 20,
                       kSchedGetparam, 0, kPidZero, kLidZero,
                       kSchedSetparam, 0, known_pid(1), kLidZero, 2, 63,
                       kSetaffinity, 0, kPidZero, kLidSelf, 1,
                       kGetaffinity, 0, kPidZero, kLidSelf,
                       kSetaffinity, 0, kPidZero, kLidSelf, 0xff});
  seed("ptrace-attach-wait-continue",
       {kPtrace, 0, kPtAttach, known_pid(1), 2, 0, 0, 0,
        kTraceWait, 0, kPidMinus1, 0, kPtrace, 0, kPtLwpstatus, known_pid(1), 3, 24, 0, 0,
        kPtrace, 0, kPtContinue, known_pid(1), 0, 0, 0, 0,
        kPtrace, 0, kPtDetach, known_pid(1), 0, 0, 0, 0});
  seed("ptrace-stop-suspend-kill",
       {kPtrace, 0, kPtAttach, known_pid(2), 2, 0, 0, 0, kTraceWait, 0, kPidMinus1, 1,
        kPtrace, 0, kPtSuspend, known_pid(2), 2, known_lid(2), 0, 0,
        kPtrace, 0, kPtResume, known_pid(2), 2, known_lid(2), 0, 0,
        kPtrace, 0, kPtStop, known_pid(2), 0, 0, 0, 0,
        kPtrace, 0, kPtKill, known_pid(2), 0, 0, 0, 0, kTraceWait, 0, kPidMinus1, 0});
  seed("ptrace-unprivileged", {kPtrace, 1, kPtAttach, known_pid(0), 2, 0, 0, 0},
       {0x08, 7});  // process 1 runs as uid 1000
  seed("debugger", {kDebugger, kDbgOpen, kDebugger, kDbgPtrace, kPtAttach, known_pid(0), 2, 0, 0,
                    0, kDebugger, kDbgWait, 1, kPidMinus1, 0,
                    kDebugger, kDbgPtrace, kPtContinue, known_pid(0), 0, 0, 0, 0,
                    kDebugger, kDbgWait, 0, kPidMinus1, 0, kDebugger, kDbgCancel, 0,
                    kDebugger, kDbgClose});
  seed("debugger-kill-undo", {kDebugger, kDbgOpen, kDebugger, kDbgPtrace, kPtAttach,
                              known_pid(1), 2, 0, 0, 0, kDebugger, kDbgPtrace, kPtKill,
                              known_pid(1), 0, 0, 0, 0, kDebugger, kDbgWait, 0, kPidMinus1, 0,
                              kDebugger, kDbgWait, 1, kPidMinus1, 0, kRelease, 1});
  seed("stop-continue-kill", {kSignalProc, 0, 0, kSignalProc, 0, 1, kSignalProc, 1, 2,
                              kSignalProc, 2, 3, kSignalProc, 2, 5});
  seed("suspend-continue-ext", {kCreate, 0, 0, 5, kSuspendExt, 0, known_lid(3),
                                kSuspendExt, 0, known_lid(0), kContinueExt, 0, known_lid(3),
                                kContinueExt, 0, known_lid(0)});
  seed("abandon-release", {kAbandon, 1, kRelease, 1, kRelease, 0, kSigrestart, 0, 0xff, 0xff,
                           0, 0, 0, 0, 0, 0});
  seed("exit-release", {kCreate, 0, 0, 5, kProcExit, 0, 3, kRelease, 0, kSelf, 1});
}

// ---- fuzz_requests ------------------------------------------------------------------------

// Metadata bytes (Run::add_metadata).
constexpr uint8_t kMdSession0 = 0x00, kMdSession1 = 0x01, kMdBadSession = 0x02, kMdNone = 0x07,
                  kMdAdmin = 0x0f, kMdBadAdmin = 0x17, kMdTrace = 0x27;

struct Req {
  Bytes b;
  Req& unary(Rpc rpc, uint8_t md, const google::protobuf::Message& m) {
    return raw(rpc, md, m.SerializeAsString());
  }
  Req& raw(Rpc rpc, uint8_t md, const std::string& body) {
    b.push_back(rpc);
    b.push_back(md);
    b.push_back(static_cast<uint8_t>(body.size()));
    b.insert(b.end(), body.begin(), body.end());
    return *this;
  }
  // A streaming step with its messages (LwpChannel, Session: 1-3; Watch, TraceSession: 1).
  Req& stream(Rpc rpc, uint8_t md, const std::vector<const google::protobuf::Message*>& ms) {
    b.push_back(rpc);
    b.push_back(md);
    if (rpc == kRpcLwpChannel || rpc == kRpcSession) b.push_back(static_cast<uint8_t>(ms.size() - 1));
    for (auto* m : ms) {
      std::string s = m->SerializeAsString();
      b.push_back(static_cast<uint8_t>(s.size()));
      b.insert(b.end(), s.begin(), s.end());
    }
    return *this;
  }
};

// An LwpCall for ID index 1 (the first attached process's main LWP).
v1::LwpCall call(const emul::SysArgs& a, int32_t lid = 1) {
  v1::LwpCall c;
  c.set_lid(lid);
  *c.mutable_syscall() = lwpd::server::syscall_to_wire(a);
  return c;
}

void request_seeds(const std::filesystem::path& dir) {
  auto seed = [&](const std::string& name, uint8_t header, const Req& r) {
    Bytes b = {header};
    b.insert(b.end(), r.b.begin(), r.b.end());
    write(dir, name, b);
  };
  seed("empty", 0, Req{});
  // One seed per syscall, made by the main LWP with default (valid) arguments.
  const std::vector<std::pair<std::string, emul::SysArgs>> calls = {
      {"self", emul::LwpSelfArgs{}},
      {"create", emul::LwpCreateArgs{}},
      {"create-detached-suspended", emul::LwpCreateArgs{.flags = 0xc0}},
      {"wait-any", emul::LwpWaitArgs{}},
      {"suspend-self", emul::LwpSuspendArgs{.target = 1}},
      {"continue", emul::LwpContinueArgs{.target = 1}},
      {"wakeup", emul::LwpWakeupArgs{.target = 1}},
      {"getprivate", emul::LwpGetprivateArgs{}},
      {"setprivate", emul::LwpSetprivateArgs{.ptr = 0x1234}},
      {"kill-usr1", emul::LwpKillArgs{.target = 1, .signo = 30}},
      {"detach", emul::LwpDetachArgs{.target = 1}},
      {"unpark", emul::LwpUnparkArgs{.target = 1}},
      {"unpark-all", emul::LwpUnparkAllArgs{.ntargets = 1, .targets = {1}}},
      {"setname", emul::LwpSetnameArgs{.target = 0, .name = "worker"}},
      {"getname", emul::LwpGetnameArgs{.target = 0, .len = 16}},
      {"ctl", emul::LwpCtlArgs{.features = 3}},
      {"sched-setparam", emul::SchedSetparamArgs{.policy = 2, .priority = 10}},
      {"sched-getparam", emul::SchedGetparamArgs{}},
      {"setaffinity", emul::SchedSetaffinityArgs{.mask = 1}},
      {"getaffinity", emul::SchedGetaffinityArgs{}},
      {"yield", emul::SchedYieldArgs{}},
      {"park-1ms", emul::LwpParkArgs{.ts = emul::Timespec{0, 1'000'000}}},
      {"park-forever", emul::LwpParkArgs{}},
      {"ptrace-attach-other", emul::PtraceArgs{.request = 9, .pid = 2}},
      {"wait-tracee", emul::WaitArgs{.pid = -1, .options = 1}},
      {"exit", emul::ProcExitArgs{.status = 3}},
      {"lwp-exit", emul::LwpExitArgs{}},
  };
  for (const auto& [name, a] : calls)
    seed("call-" + name, name == "ptrace-attach-other" ? 1 : 0,
         Req{}.unary(kRpcCall, kMdSession0, call(a)));

  v1::LwpRef new_lwp;
  new_lwp.set_lid(2);  // the LWP the first create made (ID index 2)
  seed("create-start-wait", 0,
       Req{}.unary(kRpcCall, kMdSession0, call(emul::LwpCreateArgs{}))
           .unary(kRpcStart, kMdSession0, new_lwp)
           .unary(kRpcCall, kMdSession0, call(emul::LwpWaitArgs{.wait_for = 2})));
  v1::LwpRef main_lwp;
  main_lwp.set_lid(1);
  seed("trap-and-bad-tokens", 1,
       Req{}.unary(kRpcTrap, kMdSession0, main_lwp)
           .unary(kRpcCall, kMdBadSession, call(emul::LwpSelfArgs{}))
           .unary(kRpcCall, kMdSession1, call(emul::LwpSelfArgs{}, 2))
           .unary(kRpcStart, kMdNone, main_lwp));
  seed("garbage-bodies", 0, Req{}.raw(kRpcCall, kMdSession0, "\xff\xff\xff\xff\x0f")
                                .raw(kRpcListLwps, kMdNone, "\x08")
                                .raw(kRpcPtrace, kMdTrace, "\x12\x80"));

  v1::ListLwpsRequest lwps;
  lwps.set_pid(1);
  seed("inspect", 0, Req{}.unary(kRpcListProcs, kMdNone, v1::ListProcsRequest{})
                         .unary(kRpcListLwps, kMdNone, lwps)
                         .unary(kRpcListCpus, kMdNone, v1::ListCpusRequest{})
                         .unary(kRpcStats, kMdNone, v1::StatsRequest{}));

  auto sig = [](v1::AdminSignal s) {
    v1::SignalProcRequest r;
    r.set_pid(1);
    r.set_signal(s);
    return r;
  };
  seed("admin-stop-cont-kill", 0, Req{}.unary(kRpcSignalProc, kMdAdmin, sig(v1::ADMIN_SIGSTOP))
                                      .unary(kRpcSignalProc, kMdAdmin, sig(v1::ADMIN_SIGCONT))
                                      .unary(kRpcSignalProc, kMdBadAdmin, sig(v1::ADMIN_SIGKILL))
                                      .unary(kRpcSignalProc, kMdAdmin, sig(v1::ADMIN_SIGKILL)));
  v1::LwpTarget tgt;
  tgt.set_pid(1);
  tgt.set_lid(1);
  seed("admin-suspend-resume", 0, Req{}.unary(kRpcSuspendLwp, kMdAdmin, tgt)
                                      .unary(kRpcResumeLwp, kMdAdmin, tgt)
                                      .unary(kRpcResumeLwp, kMdNone, tgt));

  auto pt = [](int req, int32_t pid, int32_t data = 0) {
    v1::PtraceArgs a;
    a.set_request(req);
    a.set_pid(pid);
    a.set_data(data);
    return a;
  };
  v1::WaitArgs any;
  any.set_pid(-1);
  seed("trace-attach-wait-continue", 2,  // ID index 2: the debugger's pid
       Req{}.unary(kRpcPtrace, kMdTrace, pt(9, 1))
           .unary(kRpcWait, kMdTrace, any)
           .unary(kRpcPtrace, kMdTrace, pt(24, 1, 24))
           .unary(kRpcPtrace, kMdTrace, pt(7, 1))
           .unary(kRpcPtrace, kMdTrace, pt(10, 1)));
  seed("trace-kill", 2, Req{}.unary(kRpcPtrace, kMdTrace, pt(9, 1))
                            .unary(kRpcPtrace, kMdTrace, pt(8, 1))
                            .unary(kRpcWait, kMdTrace, any)
                            .unary(kRpcWait, kMdTrace, any));

  v1::LwpRequest open, sys;
  open.mutable_open()->set_lid(1);
  *sys.mutable_syscall() = lwpd::server::syscall_to_wire(emul::LwpSelfArgs{});
  seed("channel-open-self", 0, Req{}.stream(kRpcLwpChannel, kMdSession0, {&open, &sys}));
  v1::LwpRequest trap;
  trap.set_trap(1);
  seed("channel-trap-twice-open", 0,
       Req{}.stream(kRpcLwpChannel, kMdSession0, {&open, &trap, &open}));

  v1::SessionRequest attach, restart;
  attach.mutable_attach()->set_comm("second");
  restart.set_sigrestart(0xffff);
  seed("session-attach-sigrestart", 0, Req{}.stream(kRpcSession, kMdNone, {&attach, &restart}));
  seed("session-no-attach", 0, Req{}.stream(kRpcSession, kMdNone, {&restart}));
  seed("session-attach-twice", 0, Req{}.stream(kRpcSession, kMdNone, {&attach, &attach}));

  v1::WatchRequest w, wbad;
  w.set_buffer(16);
  wbad.set_pid(-1);
  seed("watch", 0, Req{}.stream(kRpcWatch, kMdNone, {&w})
                       .unary(kRpcCall, kMdSession0, call(emul::SchedYieldArgs{}))
                       .stream(kRpcWatch, kMdNone, {&wbad}));
  v1::TraceSessionRequest tname;
  tname.set_name("seed");
  seed("trace-sessions", 0, Req{}.stream(kRpcTraceSession, kMdAdmin, {&tname})
                                .stream(kRpcTraceSession, kMdNone, {&tname}));
}

// ---- fuzz_shm_region -----------------------------------------------------------------------

void region_seeds(const std::filesystem::path& dir) {
  // ID bytes: 0 = process 0's pid (its main LWP), 1 = process 1's pid with two processes,
  // else the first created LID; 0x80 = 0.
  auto call = [](uint8_t proc, uint8_t slot, uint8_t self, CallKind k, uint8_t arg = 0,
                 uint8_t b = 0) { return Bytes{kRsCall, proc, slot, self, k, arg, b}; };
  auto wait = [](uint8_t proc, uint8_t slot) { return Bytes{kRsWait, proc, slot}; };
  auto seed = [&](const std::string& name, uint8_t header, std::vector<Bytes> steps) {
    Bytes b = {header};
    for (const Bytes& st : steps) b.insert(b.end(), st.begin(), st.end());
    write(dir, name, b);
  };
  const Bytes start1 = {kRsStart, 0, 1, 1};
  const Bytes trap0 = {kRsTrap, 0, 0, 0, 0};
  const Bytes abandon0 = {kRsAbandon, 0};
  // One word at offset 0 (the header's magic and version) set to all ones.
  const Bytes scribble = {kRsScribble, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                          0xff, 0xff};
  const Bytes ring_slot0 = {kRsRing, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
  // Slot 255's bit, which a one-slot region does not have.
  const Bytes ring_far = {kRsRing, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x80};
  // kOpCall for lid 0 (not the slot's), generation 0, 13 bytes that are no Syscall.
  const Bytes raw = {kRsRaw, 0, 0, static_cast<uint8_t>(lwpd::region::kOpCall),
                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 13,
                     0xff, 0xff, 0xff, 0xff, ' ', 'g', 'a', 'r', 'b', 'a', 'g', 'e', '!'};
  const std::vector<Bytes> create_start = {call(0, 0, 0, kCkCreate), wait(0, 0), start1,
                                           wait(0, 1)};
  auto with_create = [&](std::vector<Bytes> more) {
    std::vector<Bytes> v = create_start;
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  seed("empty", 0x00, {});
  seed("null-calls", 0x00, {call(0, 0, 0, kCkNull), wait(0, 0), call(0, 0, 0, kCkNull),
                            wait(0, 0), call(0, 0, 0, kCkKill, 0, 64), wait(0, 0)});
  seed("create-start-exit-wait", 0x00,
       with_create({call(0, 1, 1, kCkNull, 1), wait(0, 1), call(0, 1, 1, kCkExit), wait(0, 1),
                    call(0, 0, 0, kCkWait, 1), wait(0, 0)}));
  seed("park-unpark", 0x00,
       with_create({call(0, 1, 1, kCkPark, 0x80, 0), call(0, 0, 0, kCkUnpark, 1), wait(0, 0),
                    wait(0, 1), call(0, 1, 1, kCkPark, 0, 2), wait(0, 1)}));
  seed("suspend-continue", 0x00,
       with_create({call(0, 0, 0, kCkSuspend, 1), wait(0, 0), call(0, 0, 0, kCkContinue, 1),
                    wait(0, 0), wait(0, 1)}));
  seed("unpark-all-overflow", 0x00, {call(0, 0, 0, kCkUnparkAll, 0, 1), wait(0, 0)});
  seed("trap-last-gen", 0x00, {trap0, wait(0, 0)});
  seed("two-procs-scribble", 0x01, {call(0, 0, 0, kCkNull), scribble, ring_slot0, wait(0, 0),
                                    call(1, 0, 1, kCkNull), wait(1, 0)});
  seed("raw-garbage", 0x02, {raw, wait(0, 0)});
  seed("abandon-mid-park", 0x01,
       {call(0, 0, 0, kCkPark, 0x80, 0), abandon0, call(1, 0, 1, kCkNull), wait(1, 0)});
  seed("proc-exit", 0x00, with_create({call(0, 0, 0, kCkProcExit, 0, 3), wait(0, 1)}));
  seed("ring-flood", 0x06, std::vector<Bytes>(40, ring_far));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUTDIR\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  syscall_seeds(out / "fuzz_syscalls");
  request_seeds(out / "fuzz_requests");
  region_seeds(out / "fuzz_shm_region");
  return 0;
}
