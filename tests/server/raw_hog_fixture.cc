// server_raw_hog_fixture: a raw gRPC client that attaches a process and then never starts
// or traps its LWP and never reads its Session stream -- what a hostile or broken client in
// any language can do. Prints the emulated pid, then blocks on stdin until EOF.
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "lwpd/v1/kernel.grpc.pb.h"

int main() {
  const char* ep = std::getenv("LWPD_ENDPOINT");
  if (ep == nullptr) {
    std::fprintf(stderr, "LWPD_ENDPOINT is not set\n");
    return 2;
  }
  auto stub = lwpd::v1::Kernel::NewStub(grpc::CreateChannel(ep, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto session = stub->Session(&ctx);
  lwpd::v1::SessionRequest req;
  req.mutable_attach()->set_comm("raw_hog");
  lwpd::v1::SessionEvent ev;
  if (!session->Write(req) || !session->Read(&ev) || !ev.has_attached()) {
    std::fprintf(stderr, "attach failed\n");
    return 1;
  }
  std::printf("%d\n", ev.attached().pid());
  std::fflush(stdout);
  char c;
  for (;;) {  // never reads the session again
    pollfd p{0, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno == EINTR) continue;
    const ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
  }
  ctx.TryCancel();
  return 0;
}
