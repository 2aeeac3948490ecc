// fuzz_shm_region: a client that writes what it likes into its shared-memory region.
//
// The daemon's side of the fast path (server/region_server.*) runs for real: a kernel, the
// session table and one RegionServer per process, each with its serving thread. The fuzzer
// is the client of every process: it maps each region as the shim does and, step by step
// (region_steps.h), posts calls the honest way, starts and closes slots, and does what only
// a hostile client does: any op, LID, length and bytes in a slot, random words anywhere in
// the region (request words, answer words, futex words, pending bits, the header), doorbells
// with any pending bits, and dying in the middle (its session abandoned).
//
// What must hold is what region_abi.h promises: whatever a client writes hurts only its own
// process. After every step Kernel::check_invariants() must hold; at the end every process
// is abandoned, and its session must be reaped -- process released, region unmapped, serving
// thread joined -- within a bound, leaving the table empty. The kernel, session table and
// daemon live for the whole fuzzing process (as lwpd's do); each input brings its own
// sessions. A finding aborts with a message, so libFuzzer records it as a crash; ASan,
// UBSan and LSan (per input) see the rest.
//
// Not deterministic: the serving thread and the vCPUs run beside the fuzzer, and a step
// does not wait for the daemon (only kRsWait does, briefly). That is the point -- the
// scribbles land while requests are being served -- and the price: an input does not
// always take the same path twice.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/region_abi.h"
#include "emul/kernel.h"
#include "fuzz_input.h"
#include "region_steps.h"
#include "server/region_server.h"
#include "server/services.h"
#include "server/wire.h"

namespace lwpd::fuzz {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace rg = ::lwpd::region;
namespace nb = ::lwpd::netbsd;
namespace v1 = ::lwpd::v1;
using emul::lwpid_t;
using server::Session;

constexpr auto kWaitLimit = 2ms;     // kRsWait: how long a step waits for an answer
constexpr auto kCleanupLimit = 20s;  // after the sessions end, everything must be gone
constexpr uint32_t kSlotChoices[4] = {4, 8, 64, 1};

const bool g_verbose = std::getenv("LWPD_FUZZ_VERBOSE") != nullptr;

[[noreturn]] void finding(int step, const std::string& what) {
  std::fprintf(stderr, "fuzz_shm_region: step %d: %s\n", step, what.c_str());
  std::abort();
}

// The daemon's parts, built once: vCPU threads, the janitor and the serving threads of
// live regions run until the process exits.
struct Persistent {
  std::unique_ptr<emul::Kernel> kernel;
  std::unique_ptr<server::Sessions> sessions;
  std::unique_ptr<server::Daemon> d;
};

Persistent& persistent() {
  static Persistent* p = [] {
    if (!g_verbose) spdlog::set_level(spdlog::level::off);
    auto* q = new Persistent;  // never freed (see above)
    emul::KernelConfig cfg;
    cfg.ncpus = 2;
    cfg.quantum = 5ms;
    cfg.pin_cpus = false;
    q->kernel = std::make_unique<emul::Kernel>(cfg);
    q->sessions = std::make_unique<server::Sessions>(*q->kernel);
    q->d.reset(new server::Daemon{.kernel = *q->kernel, .sessions = *q->sessions});
    // Low, so that an input can ring its way to the cut-off.
    q->d->region_max_idle_wakeups = 64;
    return q;
  }();
  return *p;
}

// One process as its client sees it: the session and the region mapped in "its" memory.
struct Client {
  std::shared_ptr<Session> s;
  char* base = nullptr;
  size_t size = 0;
  uint32_t nslots = 0;
  bool abandoned = false;
  // Per slot: answers taken, the call last posted (to learn the LIDs creates return), and
  // whether a post is still unanswered (only then does kRsWait wait).
  std::vector<uint32_t> taken;
  std::vector<uint8_t> last_call;
  std::vector<uint8_t> posted;

  rg::Header* header() const { return reinterpret_cast<rg::Header*>(base); }
  rg::Slot* slot(uint32_t i) const {
    return reinterpret_cast<rg::Slot*>(base + rg::slot_offset(i));
  }
};

class Run {
 public:
  Run(FuzzInput& in);
  ~Run();
  void go();

 private:
  void step(RegionStep op);
  Client& pick_client() { return clients_[in_.pick(static_cast<unsigned>(clients_.size()))]; }
  uint32_t pick_slot(const Client& c) { return in_.u8() % c.nslots; }
  lwpid_t id_arg();
  std::string call_bytes(lwpid_t self);
  void post(Client& c, uint32_t i, uint32_t op, lwpid_t lid, const std::string& bytes,
            uint64_t gen = 0);
  void ring(Client& c, uint32_t i);
  void wait_answer(Client& c, uint32_t i);
  void check(const char* where);
  void teardown();

  FuzzInput& in_;
  Persistent& p_;
  std::vector<Client> clients_;
  std::vector<int32_t> ids_;  // pids, then LIDs learnt from answers
  uint8_t pending_call_ = kCkNull;
  int step_ = 0;
};

Run::Run(FuzzInput& in) : in_(in), p_(persistent()) {
  const uint8_t h = in_.u8();
  const int nprocs = 1 + (h & 1);
  const uint32_t nslots = kSlotChoices[(h >> 1) & 3];
  for (int n = 0; n < nprocs; n++) {
    const uint32_t uid = n == 0 && (h & 8) != 0 ? 1000 : 0;
    auto r = p_.sessions->create("fuzz-region", uid);
    if (!r.ok()) finding(0, "session create failed");
    Client c;
    c.s = r.release();
    int fd = -1;
    const int err = c.s->open_region([&](std::unique_ptr<server::RegionServer>* out) {
      int e = 0;
      *out = server::RegionServer::create(*p_.d, *c.s, nslots, &e);
      if (*out == nullptr) return e;
      fd = ::fcntl((*out)->fd(), F_DUPFD_CLOEXEC, 0);  // the client's own, as the hello gives
      c.size = (*out)->size();
      return 0;
    });
    if (err != 0 || fd < 0) finding(0, "region create failed");
    void* m = ::mmap(nullptr, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) finding(0, "mmap of the region failed");
    c.base = static_cast<char*>(m);
    c.nslots = nslots;
    c.taken.assign(nslots, 0);
    c.last_call.assign(nslots, kCkNull);
    c.posted.assign(nslots, 0);
    ids_.push_back(c.s->pid);
    clients_.push_back(std::move(c));
  }
}

Run::~Run() {
  for (Client& c : clients_) ::munmap(c.base, c.size);
}

void Run::go() {
  // Each process's main LWP starts on slot 0, as the shim starts it.
  for (Client& c : clients_) {
    post(c, 0, rg::kOpStart, c.s->pid, "");
    wait_answer(c, 0);
  }
  check("start");
  for (step_ = 1; step_ <= kRegionMaxSteps && !in_.done(); step_++) {
    step(static_cast<RegionStep>(in_.u8() % kNumRegionSteps));
    check("step");
  }
  teardown();
}

lwpid_t Run::id_arg() {
  const uint8_t b = in_.u8();
  if (b < kIdKnownLimit) return ids_[b % ids_.size()];
  if (b == 0xff) return -1;
  return b == 0x80 ? 0 : 29000 + b;  // LIDs no run this short allocates
}

std::string Run::call_bytes(lwpid_t self) {
  pending_call_ = static_cast<uint8_t>(in_.u8() % kNumCallKinds);
  const lwpid_t arg = id_arg();
  const uint8_t b = in_.u8();
  emul::SysArgs a;
  switch (static_cast<CallKind>(pending_call_)) {
    case kCkNull:
      a = emul::LwpKillArgs{.target = self};
      break;
    case kCkKill:
      a = emul::LwpKillArgs{.target = arg, .signo = b % 66};
      break;
    case kCkCreate: {
      emul::LwpCreateArgs c;
      c.flags = ((b & 1) != 0 ? nb::LWP_SUSPENDED : 0) | ((b & 2) != 0 ? nb::LWP_DETACHED : 0);
      a = c;
      break;
    }
    case kCkExit:
      a = emul::LwpExitArgs{};
      break;
    case kCkWait:
      a = emul::LwpWaitArgs{.wait_for = arg};
      break;
    case kCkSuspend:
      a = emul::LwpSuspendArgs{.target = arg};
      break;
    case kCkContinue:
      a = emul::LwpContinueArgs{.target = arg};
      break;
    case kCkUnpark:
      a = emul::LwpUnparkArgs{.target = arg};
      break;
    case kCkPark: {
      emul::LwpParkArgs pk;
      if (b % 3 == 1) pk.ts = emul::Timespec{};
      if (b % 3 == 2) pk.ts = emul::Timespec{.tv_nsec = 100000};
      pk.unpark = arg;
      a = pk;
      break;
    }
    case kCkUnparkAll: {
      emul::LwpUnparkAllArgs ua;
      if ((b & 1) != 0)
        ua.targets.assign(nb::LWP_UNPARK_MAX, arg);  // the overflow area
      else
        ua.targets = {arg, self};
      ua.ntargets = ua.targets.size();
      a = ua;
      break;
    }
    case kCkYield:
      a = emul::SchedYieldArgs{};
      break;
    case kCkSetname:
      a = emul::LwpSetnameArgs{.target = arg, .name = std::string(b % 32, 'n')};
      break;
    case kCkProcExit:
      a = emul::ProcExitArgs{.status = b};
      break;
    case kNumCallKinds:
      break;
  }
  return server::syscall_to_wire(a).SerializeAsString();
}

// The honest way to post: bytes, words, req_seq (release), pending bit, bell.
void Run::post(Client& c, uint32_t i, uint32_t op, lwpid_t lid, const std::string& bytes,
               uint64_t gen) {
  rg::Slot* sl = c.slot(i);
  if (op == rg::kOpStart) {
    sl->term.store(0);
    sl->ret_count.store(0);
    c.taken[i] = 0;
  }
  // A length the region cannot hold is still posted as it is (the daemon must refuse it);
  // only the bytes that fit are written.
  char* dst = bytes.size() <= rg::kReqInline ? sl->req : c.base + rg::overflow_offset(c.nslots, i);
  std::memcpy(dst, bytes.data(), std::min(bytes.size(), rg::kOverflowStride));
  sl->op = op;
  sl->lid = lid;
  sl->trap_gen = gen;
  sl->req_len = static_cast<uint32_t>(bytes.size());
  sl->req_seq.fetch_add(1, std::memory_order_release);
  c.posted[i] = op != rg::kOpClose;
  ring(c, i);
}

void Run::ring(Client& c, uint32_t i) {
  c.header()->pending[i / 64].fetch_or(uint64_t{1} << (i % 64));
  c.header()->bell.fetch_add(1);
  if (c.header()->sleeping.load() != 0) rg::futex_wake(&c.header()->bell);
}

// Take slot i's next answer, if one comes within kWaitLimit (at once if nothing was posted
// since the last); learn the LID a create returned.
void Run::wait_answer(Client& c, uint32_t i) {
  rg::Slot* sl = c.slot(i);
  const auto until = Clock::now() + (c.posted[i] != 0 ? kWaitLimit : 0ms);
  c.posted[i] = 0;
  for (;;) {
    sl->waiting.store(1);
    const uint32_t w = sl->wake.load();
    if (sl->ret_count.load(std::memory_order_acquire) != c.taken[i]) {
      c.taken[i] = sl->ret_count.load();
      // The bytes are the daemon's answer only if the client did not scribble over them.
      v1::SyscallReturn ret;
      const uint32_t len = std::min<uint32_t>(sl->rep_len, rg::kRepInline);
      if (ret.ParseFromArray(sl->rep, static_cast<int>(len)) && ret.kind() == v1::RETURN_SYSCALL &&
          ret.error() == v1::ERRNO_OK && c.last_call[i] == kCkCreate && ids_.size() < 64)
        ids_.push_back(static_cast<int32_t>(ret.retval()));
      if (g_verbose)
        std::fprintf(stderr, "  slot %u: return kind %d error %d retval %lld\n", i,
                     static_cast<int>(ret.kind()), static_cast<int>(ret.error()),
                     static_cast<long long>(ret.retval()));
      return;
    }
    if (sl->term.load(std::memory_order_acquire) != 0) return;
    const auto now = Clock::now();
    if (now >= until) return;
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now);
    timespec rel{0, static_cast<long>(left.count())};
    rg::futex_wait(&sl->wake, w, &rel);
  }
}

void Run::step(RegionStep op) {
  Client& c = pick_client();
  if (g_verbose) std::fprintf(stderr, "step %d: op %d on pid %d\n", step_, op, c.s->pid);
  switch (op) {
    case kRsCall: {
      const uint32_t i = pick_slot(c);
      const lwpid_t self = id_arg();
      std::string bytes = call_bytes(self);
      c.last_call[i] = pending_call_;
      post(c, i, rg::kOpCall, self, bytes);
      break;
    }
    case kRsStart: {
      const uint32_t i = pick_slot(c);
      post(c, i, rg::kOpStart, id_arg(), "");
      break;
    }
    case kRsClose:
      post(c, pick_slot(c), rg::kOpClose, 0, "");
      break;
    case kRsRaw: {
      const uint32_t i = pick_slot(c);
      const uint32_t rop = in_.u8();
      const auto lid = static_cast<lwpid_t>(in_.u32());
      const uint64_t gen = in_.u64();
      const uint16_t len = in_.u16();
      std::string bytes = in_.bytes(255);
      bytes.resize(len % (rg::kOverflowStride + 64));  // zero-padded or cut
      c.last_call[i] = kNumCallKinds;
      post(c, i, rop, lid, bytes, gen);
      break;
    }
    case kRsTrap: {
      const uint32_t i = pick_slot(c);
      const lwpid_t lid = id_arg();
      const uint64_t gen = in_.bit() ? in_.u64() : c.slot(i)->rep_gen;
      post(c, i, rg::kOpTrap, lid, "", gen);
      break;
    }
    case kRsScribble: {
      const int n = 1 + in_.u8() % 8;
      auto* words = reinterpret_cast<uint64_t*>(c.base);
      // Mostly where the daemon looks (the header and the first slots), sometimes anywhere.
      const size_t hot = std::min(c.size, rg::slot_offset(std::min<uint32_t>(c.nslots, 8))) / 8;
      for (int k = 0; k < n; k++) {
        const uint32_t where = in_.u32();
        const size_t at = (where & 1) != 0 ? (where >> 1) % hot : (where >> 1) % (c.size / 8);
        std::atomic_ref<uint64_t>(words[at]).store(in_.u64(), std::memory_order_relaxed);
      }
      break;
    }
    case kRsRing: {
      const unsigned w = in_.u8() % (rg::kMaxSlots / 64);
      c.header()->pending[w].fetch_or(in_.u64());
      c.header()->bell.fetch_add(1);
      rg::futex_wake(&c.header()->bell);
      break;
    }
    case kRsWait:
      wait_answer(c, pick_slot(c));
      break;
    case kRsAbandon:
      if (!c.abandoned) {
        c.abandoned = true;
        p_.sessions->abandon(*c.s);
      }
      break;
    case kNumRegionSteps:
      break;
  }
}

void Run::check(const char* where) {
  if (std::string e = p_.kernel->check_invariants(); !e.empty())
    finding(step_, std::string(where) + ": invariant: " + e);
}

// The clients die: every session must be reaped (process released, region stopped) and the
// tables left as they were.
void Run::teardown() {
  for (Client& c : clients_)
    if (!c.abandoned) p_.sessions->abandon(*c.s);
  // The janitor reaps a session in steps (table entry, process, region): wait for all.
  auto gone = [&] {
    if (p_.sessions->size() != 0 || !p_.kernel->snapshot_procs().empty()) return false;
    for (const Client& c : clients_)
      if (c.s->has_region()) return false;
    return true;
  };
  const auto end = Clock::now() + kCleanupLimit;
  while (!gone()) {
    if (Clock::now() > end)
      finding(step_, "a session, process or region left after its client died");
    std::this_thread::sleep_for(100us);  // polling the janitor's progress, bounded above
  }
  for (Client& c : clients_) c.s.reset();
  check("end");
}

}  // namespace
}  // namespace lwpd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lwpd::fuzz::FuzzInput in(data, size);
  lwpd::fuzz::Run run(in);
  run.go();
  return 0;
}
