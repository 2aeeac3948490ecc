// Where the C runtime's code is: the executable segments of libc, ld.so, libgcc_s and the
// sanitizers' runtimes, and ThreadSanitizer's atomic operations. Found once, at the first
// lwpd_attach() before the kick handler is installed; the handler only reads the result
// (signal_safe.cc, "Kicks inside the C runtime" in shim_internal.h).
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "shim_internal.h"

namespace lwpd::client {

CodeRange g_runtime_code[16];
int g_nruntime_code = 0;
bool g_tsan_runtime = false;
CodeRange g_tsan_atomics[96];
int g_ntsan_atomics = 0;

namespace {

bool is_runtime_lib(const char* path) {
  const char* base = strrchr(path, '/');
  base = base != nullptr ? base + 1 : path;
  // The sanitizers' runtimes replace malloc (and hold their allocator's locks) in
  // ASan/TSan builds.
  return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "ld-linux", 8) == 0 ||
         strncmp(base, "libgcc_s.so", 11) == 0 || strncmp(base, "libasan.so", 10) == 0 ||
         strncmp(base, "libtsan.so", 10) == 0;
}

// Fills g_tsan_atomics with the code of each __tsan_atomic* function: its address and the
// size its dynamic symbol gives. Left empty where libtsan lacks them: kicks are then
// deferred in all of libtsan.
void find_tsan_atomics() {
  static const char* const kOps[] = {"load",
                                     "store",
                                     "exchange",
                                     "fetch_add",
                                     "fetch_sub",
                                     "fetch_and",
                                     "fetch_or",
                                     "fetch_xor",
                                     "fetch_nand",
                                     "compare_exchange_strong",
                                     "compare_exchange_weak",
                                     "compare_exchange_val"};
  auto add = [](const char* name) {
    void* fn = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    ElfW(Sym)* sym = nullptr;
    if (fn == nullptr || g_ntsan_atomics == static_cast<int>(std::size(g_tsan_atomics)) ||
        dladdr1(fn, &info, reinterpret_cast<void**>(&sym), RTLD_DL_SYMENT) == 0 || sym == nullptr)
      return;
    const auto lo = reinterpret_cast<uintptr_t>(fn);
    g_tsan_atomics[g_ntsan_atomics++] = CodeRange{lo, lo + sym->st_size};
  };
  char name[64];
  for (int bits : {8, 16, 32, 64, 128}) {
    for (const char* op : kOps) {
      snprintf(name, sizeof name, "__tsan_atomic%d_%s", bits, op);
      add(name);
    }
  }
  add("__tsan_atomic_thread_fence");
  add("__tsan_atomic_signal_fence");
  std::sort(g_tsan_atomics, g_tsan_atomics + g_ntsan_atomics,
            [](const CodeRange& x, const CodeRange& y) { return x.lo < y.lo; });
}

}  // namespace

void find_runtime_code() {
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) {
        if (info->dlpi_name == nullptr || !is_runtime_lib(info->dlpi_name)) return 0;
        for (int i = 0; i < info->dlpi_phnum && g_nruntime_code < 16; i++) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          g_runtime_code[g_nruntime_code++] = CodeRange{lo, lo + ph.p_memsz};
        }
        if (strstr(info->dlpi_name, "libtsan.so") != nullptr) g_tsan_runtime = true;
        return 0;
      },
      nullptr);
  if (g_tsan_runtime) find_tsan_atomics();  // dlsym: not under dl_iterate_phdr's lock
}

}  // namespace lwpd::client
