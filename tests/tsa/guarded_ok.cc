// Positive control of tsa_rejects_unguarded_access (see unguarded_access.cc).
#include "emul/lock.h"

namespace {

struct Counter {
  lwpd::Mutex mu{lwpd::LockRank::kLeaf};
  int n GUARDED_BY(mu) = 0;
  void bump() EXCLUDES(mu) {
    lwpd::MutexLock g(mu);
    n++;
  }
};

}  // namespace

int main() {
  Counter c;
  c.bump();
}
