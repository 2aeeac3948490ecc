// Force-included (-include) into every translation unit that uses lwpd::proto.
//
// glibc's <signal.h> defines a function-like macro `sigmask(sig)` (deprecated
// BSD API, under _DEFAULT_SOURCE). The wire contract has a field named
// `sigmask` (LwpCreateArgs), so the generated accessor `sigmask()` would be
// macro-expanded into garbage in any file that includes <signal.h> before
// kernel.pb.h. Including <signal.h> first and dropping the macro here makes
// the order irrelevant: <signal.h> is include-guarded and will not define it
// again. Nothing in lwpd uses the macro.
#pragma once
#include <signal.h>
#undef sigmask
