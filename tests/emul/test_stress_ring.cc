// Stress: a ring of LWPs handing a token on with _lwp_park(unpark=next), with wakeups and
// suspends thrown in (StressParkRing). Seeds and counts: stress.h.
#include "stress.h"

namespace lwpd::test {
namespace {

// ============================================================================================
// 2. Park/unpark races: a hand-off ring of 8 LWPs passing 3 tokens with
//    _lwp_unpark / ___lwp_park60(unpark = next), disturbed by _lwp_wakeup,
//    stray unparks, SIGUSR1 and suspend/continue. A lost wakeup shows up as a
//    park that times out although the unpark for a token it had not yet seen
//    completed before the park began.
// ============================================================================================

constexpr int kRing = 8;
constexpr int kTokens = 3;
constexpr int64_t kRingTimeoutNs = 20'000'000;  // 20 ms (2 ticks)

struct RingSlot {
  std::atomic<int64_t> given{0};   // tokens handed to this LWP (before its unpark)
  std::atomic<int64_t> taken{0};   // tokens it consumed (written by itself only)
  // The last token whose separate _lwp_unpark had completed, and when
  // (nanoseconds of Clock); written by the predecessor only: ts first, then idx.
  std::atomic<int64_t> sep_idx{0};
  std::atomic<int64_t> sep_ts{0};
  std::atomic<lwpid_t> lid{0};
  std::atomic<bool> done{false};
};

struct Ring : Shared {
  Ring(Kernel& kk, uint64_t sd, int r) : Shared(kk, sd), rounds(r) {}
  const int rounds;
  std::array<RingSlot, kRing> slot;
  std::atomic<int64_t> timeouts{0};
  std::atomic<int64_t> lost{0};
};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void ring_member(U& u, Ring& s, int i) {
  Ctx c(u, s, mix_seed(s.seed, i));
  RingSlot& me = s.slot[i];
  const int next_i = (i + 1) % kRing;
  RingSlot& next = s.slot[next_i];
  // Everybody's LID is known before anyone starts (the main LWP fills them in
  // before the members can pass a token to a LID of 0).
  while (next.lid.load() == 0) c.op_yield();
  const lwpid_t next_lid = next.lid.load();
  bool owe_unpark = false;  // a token was handed on; its unpark rides on the next park

  auto disturb = [&] {
    if (!c.chance(4)) return;
    switch (c.rnd(6)) {
      case 0: c.op_wakeup(); break;
      case 1: c.op_unpark(); break;
      case 2: c.op_killsig(); break;
      case 3: c.op_unpark_all(); break;
      case 4: c.op_yield(); break;
      default: {
        bool expected = false;
        if (!s.suspend_token.compare_exchange_strong(expected, true)) break;
        auto t = s.pick(c.rng, false);
        if (t.lid != u.lid()) {
          c.call(kSuspend, LwpSuspendArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH}, t.lid);
          c.call(kContinue, LwpContinueArgs{.target = t.lid}, {Errno::kOk, Errno::kESRCH},
                 t.lid);
        }
        s.suspend_token = false;
        break;
      }
    }
  };
  auto separate_unpark = [&](int64_t idx) {
    c.call(kUnpark, LwpUnparkArgs{.target = next_lid}, {Errno::kOk, Errno::kESRCH}, next_lid);
    next.sep_ts.store(now_ns());
    next.sep_idx.store(idx);
  };
  int64_t owed_idx = 0;

  for (int round = 0; round < s.rounds; round++) {
    // ---- get a token ----
    for (;;) {
      disturb();
      const int64_t g0 = me.given.load();
      if (g0 != me.taken.load()) break;
      const int64_t t1 = now_ns();
      const lwpid_t up = owe_unpark ? next_lid : 0;
      owe_unpark = false;
      // The successor may already be done and gone: ESRCH, and then no park.
      auto r = c.call(kParkRing, LwpParkArgs{.ts = Timespec{0, kRingTimeoutNs}, .unpark = up},
                      up ? std::initializer_list<Errno>{Errno::kOk, Errno::kEALREADY,
                                                        Errno::kETIMEDOUT, Errno::kEINTR,
                                                        Errno::kESRCH}
                         : std::initializer_list<Errno>{Errno::kOk, Errno::kEALREADY,
                                                        Errno::kETIMEDOUT, Errno::kEINTR});
      if (r.error == Errno::kETIMEDOUT) {
        s.timeouts++;
        const int64_t t2 = now_ns();
        if (t2 - t1 < kRingTimeoutNs) {
          c.bad(kParkRing, "ETIMEDOUT after " + std::to_string(t2 - t1) + " ns");
        }
        const int64_t idx = me.sep_idx.load();
        const int64_t ts = me.sep_ts.load();
        if (idx > g0 && ts < t1) {
          s.lost++;
          c.bad(kParkRing, "lost wakeup: token " + std::to_string(idx) +
                               " was unparked " + std::to_string(t1 - ts) +
                               " ns before the park began, which still timed out");
        }
      }
    }
    if (owe_unpark) {
      owe_unpark = false;
      separate_unpark(owed_idx);
    }
    me.taken++;
    if (c.chance(10)) c.op_yield();
    // ---- hand it on ----
    const int64_t idx = next.given.fetch_add(1) + 1;
    if (c.chance(50) && me.given.load() == me.taken.load()) {
      owe_unpark = true;  // ___lwp_park60(unpark = next) in the loop above
      owed_idx = idx;
    } else {
      separate_unpark(idx);
    }
  }
  if (owe_unpark) separate_unpark(owed_idx);
  me.done = true;
  s.remove_live(u.lid());
}

TEST(StressParkRing, HandOffRingWithWakeupsAndSuspends) {
  const uint64_t seed = stress_seed("StressParkRing");
  const int rounds = std::max(10, mixed_iters() / 2);
  Kernel k(test_config(2));
  Ring s(k, seed, rounds);
  for (int i = 0; i < kTokens; i++) s.slot[i * kRing / kTokens].given = 1;
  auto t0 = Clock::now();
  auto tp = TestProc::start(k, [&](U& u) {
    Ctx c(u, s, mix_seed(seed, 1000));
    s.main_lid = u.lid();
    std::array<lwpid_t, kRing> lids{};
    for (int i = 0; i < kRing; i++) {
      // Created suspended so that every LID is published before any runs.
      U_EXPECT_EQ(u, u.create([&s, i](U& ru) { ring_member(ru, s, i); }, LWP_SUSPENDED, &lids[i]),
                  Errno::kOk);
      c.step();
      s.slot[i].lid = lids[i];
      s.add_live(lids[i], nullptr);
    }
    for (int i = 0; i < kRing; i++) {
      c.call(kContinueNew, LwpContinueArgs{.target = lids[i]}, {Errno::kOk}, lids[i]);
    }
    for (int i = 0; i < kRing; i++) {
      for (;;) {
        auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = lids[i]}, {Errno::kOk, Errno::kEINTR},
                        lids[i]);
        if (r.error != Errno::kEINTR) break;
      }
    }
    for (auto& sl : s.slot) {
      U_EXPECT(u, sl.done.load());
      U_EXPECT_EQ(u, sl.taken.load(), static_cast<int64_t>(s.rounds));
    }
  });
  Stopper stopper(k, tp, mix_seed(seed, 99));
  tp->wait_exit(std::chrono::seconds(kTsan ? 600 : 120));
  stopper.stop();
  finish(k, {tp}, {1 + kRing}, 1s);
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[stress] ring: " << rounds << " rounds/member, " << s.hist.total() << " calls, "
            << s.timeouts.load() << " park timeouts, " << s.lost.load() << " lost wakeups, "
            << stopper.stops() << " SIGSTOPs, "
            << secs << " s\n"
            << s.hist.str() << std::flush;
  EXPECT_EQ(s.lost.load(), 0);
  EXPECT_EQ(s.inv_failures.load(), 0);
  EXPECT_EQ(s.bad_results.load(), 0);
  // The hand-offs themselves must have been exercised.
  EXPECT_GT(s.hist.count(kParkRing, Errno::kOk) + s.hist.count(kParkRing, Errno::kEALREADY), 0);
}

}  // namespace
}  // namespace lwpd::test
