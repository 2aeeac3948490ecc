// Expected NOT to compile under clang -Wthread-safety -Werror=thread-safety: a field
// GUARDED_BY a Mutex written without holding it (guarded_ok.cc holds it).
#include "emul/lock.h"

namespace {

struct Counter {
  lwpd::Mutex mu{lwpd::LockRank::kLeaf};
  int n GUARDED_BY(mu) = 0;
  void bump() { n++; }
};

}  // namespace

int main() {
  Counter c;
  c.bump();
}
