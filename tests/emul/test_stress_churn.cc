// Stress: LWPs created, exiting and collected, by their LID and by wait-any, as fast as
// they go (StressChurn). Seeds and counts: stress.h.
#include "stress.h"

namespace lwpd::test {
namespace {

// ============================================================================================
// 3. Create/exit/wait churn with wait-any: every collected LWP is checked
//    against a registry, so a double reap, a reaped detached LWP or a lost
//    zombie is caught.
// ============================================================================================

struct RegEntry {
  bool registered = false;     // its creator learnt its LID
  bool detached_birth = false; // created LWP_DETACHED
  bool self_detached = false;  // detached later (by itself or its creator)
  int reaped = 0;              // times an _lwp_wait returned it
};

struct Churn : Shared {
  Churn(Kernel& kk, uint64_t sd, int it, int kids) : Shared(kk, sd), iters(it), max_kids(kids) {}
  const int iters;
  const int max_kids;  // per worker: every LWP is a host thread joined only at the end
  std::mutex reg_mu;
  std::unordered_map<lwpid_t, RegEntry> reg;
  std::vector<std::string> reg_errors;  // reg_mu
  std::array<std::atomic<lwpid_t>, kWorkers> worker_lids{};

  void reg_fail(const std::string& e) {
    if (reg_errors.size() < 20) reg_errors.push_back(e);
  }
  void registered(lwpid_t lid, bool detached) {
    std::lock_guard g(reg_mu);
    RegEntry& e = reg[lid];
    if (e.registered) reg_fail("LID " + std::to_string(lid) + " handed out twice");
    e.registered = true;
    e.detached_birth = detached;
    if (detached && e.reaped) reg_fail("detached LWP " + std::to_string(lid) + " was reaped");
  }
  void reaped(lwpid_t lid) {
    std::lock_guard g(reg_mu);
    RegEntry& e = reg[lid];
    if (e.reaped) reg_fail("LWP " + std::to_string(lid) + " reaped twice");
    if (e.detached_birth || e.self_detached)
      reg_fail("detached LWP " + std::to_string(lid) + " was reaped");
    e.reaped++;
  }
  // _lwp_detach succeeded (by itself or by its creator): it can no longer be reaped.
  void detached(lwpid_t lid) {
    std::lock_guard g(reg_mu);
    RegEntry& e = reg[lid];
    if (e.reaped) reg_fail("LWP " + std::to_string(lid) + " reaped before it was detached");
    if (e.detached_birth || e.self_detached)
      reg_fail("LWP " + std::to_string(lid) + " detached twice");
    e.self_detached = true;
  }
};

void churn_child(U& u, Churn& s, uint64_t seed) {
  Ctx c(u, s, seed);
  int n = c.rnd(3);
  for (int i = 0; i < n; i++) {
    if (c.chance(50)) c.op_yield();
    else c.op_self();
  }
  if (c.chance(10)) {
    // EINVAL: created detached, or its creator detached it first.
    auto r = c.call(kSelfDetach, LwpDetachArgs{.target = u.lid()}, {Errno::kOk, Errno::kEINVAL});
    if (r.error == Errno::kOk) s.detached(u.lid());
  }
  if (c.chance(50)) u.lwp_exit();
}

void churn_worker(U& u, Churn& s, int idx) {
  Ctx c(u, s, mix_seed(s.seed, idx));
  std::vector<lwpid_t> kids;
  int created = 0;
  auto forget = [&](lwpid_t lid) {
    auto it = std::find(kids.begin(), kids.end(), lid);
    if (it != kids.end()) kids.erase(it);
  };
  auto wait_child = [&](lwpid_t lid) {
    // No wakeups or signals here: EINTR is not expected. ESRCH: a wait-any
    // got it, or it detached itself and is gone; EINVAL: it detached itself.
    auto r = c.call(kWaitChild, LwpWaitArgs{.wait_for = lid},
                    {Errno::kOk, Errno::kESRCH, Errno::kEINVAL}, lid);
    if (r.error == Errno::kOk) {
      if (r.retval != lid) c.bad(kWaitChild, "departed != wait_for");
      s.reaped(lid);
    }
    forget(lid);
  };
  for (int it = 0; it < s.iters; it++) {
    const int r = c.rnd(100);
    // Creations are spread over the whole run (each is a host thread).
    const bool may_create = static_cast<int64_t>(created) * s.iters <
                            static_cast<int64_t>(s.max_kids) * (it + 1);
    if (r < 40 && may_create) {
      uint64_t flags = 0;
      if (c.chance(25)) flags |= LWP_DETACHED;
      if (c.chance(25)) flags |= LWP_SUSPENDED;
      lwpid_t lid = 0;
      uint64_t cseed = c.rng();
      if (c.create([&s, cseed](U& cu) { churn_child(cu, s, cseed); }, flags, &lid) != Errno::kOk)
        continue;
      created++;
      s.registered(lid, flags & LWP_DETACHED);
      if (!(flags & LWP_DETACHED)) kids.push_back(lid);
      if (flags & LWP_SUSPENDED) {
        // Nobody else continues it, so it cannot be gone yet.
        c.call(kContinueNew, LwpContinueArgs{.target = lid}, {Errno::kOk}, lid);
      }
      if (c.chance(30)) wait_child(lid);  // at once: often before it even ran
    } else if (r < 60) {
      if (!kids.empty()) wait_child(kids[c.rnd(static_cast<int>(kids.size()))]);
      else c.op_self();
    } else if (r < 80) {
      auto res = c.call(kWaitAny, LwpWaitArgs{.wait_for = 0},
                        {Errno::kOk, Errno::kESRCH, Errno::kEDEADLK});
      if (res.error == Errno::kOk) {
        auto dep = static_cast<lwpid_t>(res.retval);
        if (dep == 0 || dep == u.lid() || dep == s.main_lid.load()) {
          c.bad(kWaitAny, "departed " + std::to_string(dep));
        }
        s.reaped(dep);
        forget(dep);
      }
    } else if (r < 85) {
      if (kids.empty()) {
        c.op_yield();
        continue;
      }
      lwpid_t lid = kids[c.rnd(static_cast<int>(kids.size()))];
      // ESRCH: a wait-any reaped it, or it detached itself and is gone;
      // EINVAL: it detached itself.
      auto res = c.call(kDetach, LwpDetachArgs{.target = lid},
                        {Errno::kOk, Errno::kESRCH, Errno::kEINVAL}, lid);
      if (res.error == Errno::kOk) s.detached(lid);
      forget(lid);
    } else if (r < 95) {
      c.op_yield();
    } else {
      c.op_self();
    }
  }
  while (!kids.empty()) wait_child(kids.back());
}

TEST(StressChurn, CreateExitWaitWithWaitAny) {
  const uint64_t seed = stress_seed("StressChurn");
  const int iters = std::max(10, mixed_iters() * 3 / 10);
  const int max_kids = kTsan ? 60 : 400;
  Kernel k(test_config(2));
  Churn s(k, seed, iters, max_kids);
  auto t0 = Clock::now();
  auto tp = TestProc::start(k, [&](U& u) {
    Ctx c(u, s, mix_seed(seed, 1000));
    s.main_lid = u.lid();
    std::array<lwpid_t, kWorkers> lids{};
    for (int i = 0; i < kWorkers; i++) {
      Errno e = u.create([&s, i](U& wu) { churn_worker(wu, s, i); }, 0, &lids[i]);
      U_EXPECT_EQ(u, e, Errno::kOk);
      c.step();
      s.registered(lids[i], false);
    }
    for (int i = 0; i < kWorkers; i++) {
      for (;;) {
        auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = lids[i]},
                        {Errno::kOk, Errno::kESRCH, Errno::kEDEADLK}, lids[i]);
        if (r.error == Errno::kEDEADLK) {
          // Every worker sleeps in a wait-any (see feed()).
          lwpid_t lid = 0;
          if (c.create([](U&) {}, 0, &lid) == Errno::kOk) s.registered(lid, false);
          continue;
        }
        if (r.error == Errno::kOk) s.reaped(lids[i]);
        break;
      }
    }
    // A last feeder may be left.
    for (;;) {
      auto r = c.call(kMainWait, LwpWaitArgs{.wait_for = 0}, {Errno::kOk, Errno::kESRCH});
      if (r.error != Errno::kOk) break;
      s.reaped(static_cast<lwpid_t>(r.retval));
    }
  });
  tp->wait_exit(std::chrono::seconds(kTsan ? 600 : 120));
  finish(k, {tp}, {1 + kWorkers + s.children.load()}, 1s);
  auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[stress] churn: " << iters << " iterations/worker, " << s.children.load()
            << " children, " << s.hist.total() << " calls, " << secs << " s\n"
            << s.hist.str() << std::flush;
  EXPECT_EQ(s.inv_failures.load(), 0);
  EXPECT_EQ(s.bad_results.load(), 0);

  std::lock_guard g(s.reg_mu);
  for (auto& e : s.reg_errors) ADD_FAILURE() << e;
  int reaped = 0, detached = 0;
  for (auto& [lid, e] : s.reg) {
    EXPECT_TRUE(e.registered) << "LWP " << lid << " reaped but never created";
    const int outcomes = e.reaped + ((e.detached_birth || e.self_detached) ? 1 : 0);
    EXPECT_EQ(outcomes, 1) << "LWP " << lid << ": reaped " << e.reaped << " times, detached "
                           << (e.detached_birth || e.self_detached);
    reaped += e.reaped;
    detached += e.detached_birth || e.self_detached;
  }
  EXPECT_EQ(static_cast<int>(s.reg.size()), kWorkers + s.children.load());
  EXPECT_GT(s.hist.count(kWaitAny, Errno::kOk), 0);
  std::cout << "[stress] churn: " << reaped << " reaped, " << detached << " detached"
            << std::endl;
}

}  // namespace
}  // namespace lwpd::test
