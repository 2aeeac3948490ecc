// Positive control of tsa_rejects_missing_requires: the same call as missing_requires.cc
// with its lock contract declared. It must compile cleanly, so the negative test's failure
// can only come from the missing REQUIRES.
#include "emul/kern.h"

namespace lwpd::emul {

void wake_for_test(Lwp& l) REQUIRES(l.proc->mu) { lwp_wake(l, WakeReason::kUnpark); }

}  // namespace lwpd::emul
