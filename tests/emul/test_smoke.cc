#include <gtest/gtest.h>

#include "harness.h"

namespace lwpd::test {
namespace {

using namespace std::chrono_literals;
using netbsd::Errno;

TEST(Smoke, MainLwpHasLidEqualPidAndExitsWithZero) {
  Kernel k(test_config());
  lwpid_t self = 0;
  auto tp = TestProc::start(k, [&](U& u) { self = static_cast<lwpid_t>(u.sys(LwpSelfArgs{}).retval); });
  auto st = tp->wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->code, 0);
  EXPECT_EQ(self, tp->pid());
  EXPECT_EQ(k.check_invariants(), "");
  EXPECT_TRUE(tp->failures().empty());
}

TEST(Smoke, CreateAndWait) {
  Kernel k(test_config());
  auto tp = TestProc::start(k, [&](U& u) {
    std::atomic<lwpid_t> seen{0};
    lwpid_t child = 0;
    U_EXPECT_EQ(u, u.create([&](U& c) { seen = c.lid(); }, 0, &child), Errno::kOk);
    lwpid_t departed = 0;
    U_EXPECT_EQ(u, u.wait(child, &departed), Errno::kOk);
    U_EXPECT_EQ(u, departed, child);
    U_EXPECT_EQ(u, seen.load(), child);
    U_EXPECT(u, child != u.lid());
  });
  ASSERT_TRUE(tp->wait_exit().has_value());
  EXPECT_TRUE(tp->failures().empty()) << tp->failures().front();
  EXPECT_EQ(k.check_invariants(), "");
}

}  // namespace
}  // namespace lwpd::test
