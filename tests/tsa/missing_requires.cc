// Expected NOT to compile under clang -Wthread-safety -Werror=thread-safety: lwp_wake needs
// the LWP's process lock (REQUIRES in emul/kern.h) and this caller neither holds it nor
// declares that its own caller does (requires_ok.cc is the same with the REQUIRES).
#include "emul/kern.h"

namespace lwpd::emul {

void wake_for_test(Lwp& l) { lwp_wake(l, WakeReason::kUnpark); }

}  // namespace lwpd::emul
