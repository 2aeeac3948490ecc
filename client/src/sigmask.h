// The shim's side of the signal-mask interposers (sigmask.cc): the program never blocks the
// kick signal, but the shim itself must, so its own mask changes go through here.
#pragma once

#include <signal.h>

namespace lwpd::client {

// pthread_sigmask() exactly as asked, for the shim's own use (the interposers pass it
// through untouched). Async-signal-safe.
int shim_sigmask(int how, const sigset_t* set, sigset_t* old);

// The program's view of the kick signal in its mask (blocked or not), saved around a
// program's signal handler so that what the handler asks for ends with it, as the rest of
// the mask does at sigreturn. Async-signal-safe.
bool kick_view_save();
void kick_view_restore(bool blocked);

}  // namespace lwpd::client
