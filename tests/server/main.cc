// Test main. `server_tests --child-client ADDRESS N` is the victim of the
// killed-client test: it attaches, parks its main LWP and N more, prints its
// pid and waits to be killed (a separate exec'd process, so gRPC state is not
// shared across fork).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "daemon.h"

namespace {

using namespace lwpd::test;
namespace nb = ::lwpd::netbsd;

int child_client(const char* address, int n) {
  auto ch = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  static Proc p(ch, "victim");  // never destroyed: the process is killed
  if (!p.ok()) return 1;
  v1::SyscallReturn r;
  if (!p.start(p.pid(), &r).ok()) return 2;
  auto park = [](int32_t lid, bool start) {
    v1::SyscallReturn rr;
    if (start && !p.start(lid, &rr).ok()) return;
    for (;;) p.call(lid, lwpd::emul::LwpParkArgs{}, &rr, std::chrono::hours(1));
  };
  // Each new LWP gets its thread at once, as a real client does: a started LWP holds a
  // vCPU until its thread takes the start and parks, and this client ignores kicks, so
  // if the creator were preempted (a slow host: a 100 ms slice) by LWPs nobody drives,
  // it would never get a vCPU back.
  for (int i = 0; i < n; i++) {
    lwpd::emul::LwpCreateArgs a;
    a.uc_flags = nb::UC_CPU;
    if (!p.call(p.pid(), a, &r).ok() || r.error() != v1::ERRNO_OK) return 3;
    std::thread(park, static_cast<int32_t>(r.retval()), true).detach();
  }
  std::thread(park, p.pid(), false).detach();
  std::printf("%d\n", p.pid());
  std::fflush(stdout);
  for (;;) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--child-client") == 0)
    return child_client(argv[2], std::atoi(argv[3]));
  if (argc == 4 && std::strcmp(argv[1], "--child-conns") == 0)
    return lwpd::test::child_conns(argv[2], std::atoi(argv[3]));
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
