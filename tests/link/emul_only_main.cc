// Links against lwpd::emul alone; tests/link/check_no_grpc.sh then proves that neither gRPC nor
// protobuf came along. Constructing a Kernel makes sure the library's core is really linked in.
#include "emul/kernel.h"

int main() {
  lwpd::emul::KernelConfig cfg;
  cfg.ncpus = 1;
  lwpd::emul::Kernel k(cfg);
  return 0;
}
