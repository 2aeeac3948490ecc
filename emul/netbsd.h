// NetBSD 10 constants the emulated kernel speaks: errno numbers, LWP states and
// flags, creation flags, lwpctl layout, priorities, scheduling classes, signal
// numbers. They live in one table shared with the daemon, the shim and lwpstat,
// common/netbsd_abi.h; the kernel never uses host (Linux) numbers, the transports
// translate at the edge.
#pragma once

#include "common/netbsd_abi.h"
