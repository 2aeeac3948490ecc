#!/usr/bin/env bash
# fuzz.sh [--no-build] [--scratch] TARGET [SECONDS] [-- LIBFUZZER_ARGS...]
#
# Runs a libFuzzer target of tests/fuzz (fuzz_syscalls, fuzz_requests, fuzz_shm_region) for
# SECONDS
# (default 600) from build-clang/ (built first with scripts/build.sh --clang unless
# --no-build). The corpus grows in build-clang/fuzz/TARGET/corpus, seeded from
# tests/fuzz/corpus/TARGET; with --scratch it lives in a temporary copy that is removed
# afterwards (scripts/test.sh: the repository and build tree stay as they were). Crashing,
# leaking or hanging inputs are written to build-clang/fuzz/TARGET/artifacts/ in both
# cases. Exit status: libFuzzer's (0 = nothing found). docs/FUZZING.md has the details.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }

build=1
scratch=0
while (($#)); do
  case $1 in
    --no-build) build=0; shift ;;
    --scratch) scratch=1; shift ;;
    -h|--help) usage ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || usage
target=$1; shift
seconds=600
if [[ $# -ge 1 && $1 != -- ]]; then seconds=$1; shift; fi
[[ $# -ge 1 && $1 == -- ]] && shift
extra=("$@")

case $target in
  fuzz_syscalls) max_len=512 ;;
  fuzz_requests) max_len=4096 ;;
  fuzz_shm_region) max_len=2048 ;;
  *) echo "fuzz.sh: unknown target '$target' (fuzz_syscalls, fuzz_requests, fuzz_shm_region)" >&2; exit 2 ;;
esac

bin=$root/build-clang/tests/fuzz/$target
if ((build)); then
  bash "$root/scripts/build.sh" --clang --target "$target"
fi
[[ -x $bin ]] || { echo "fuzz.sh: $bin not built (scripts/build.sh --clang)" >&2; exit 1; }

work=$root/build-clang/fuzz/$target
mkdir -p "$work/artifacts"
if ((scratch)); then
  corpus=$(mktemp -d "${TMPDIR:-/tmp}/lwpd-fuzz-$target.XXXXXX")
  trap 'rm -rf "$corpus"' EXIT
else
  corpus=$work/corpus
  mkdir -p "$corpus"
fi
cp -n "$root/tests/fuzz/corpus/$target/"* "$corpus/" 2>/dev/null || true

# Leaks are findings (per input and at exit); the suppressions cover only Debian's
# uninstrumented libraries, as for the ASan tests.
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+ $ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp print_suppressions=0${LSAN_OPTIONS:+ $LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1${UBSAN_OPTIONS:+ $UBSAN_OPTIONS}"

# -timeout: one input may take at most 60 s (the targets abort after 20 s without progress).
"$bin" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=60 -max_len="$max_len" \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${extra[@]}" "$corpus"
