#!/usr/bin/env bash
# test.sh -- the project's test entry point (README, .ci/run).
#
#   1. install missing Debian packages          (scripts/install-deps.sh)
#   2. build build/ and run every test           (ctest)
#   3. build build-tsan/ (ThreadSanitizer) and run the tests labelled "tsan" (ctest -L tsan)
#   4. build build-asan/ (AddressSanitizer + LeakSanitizer) and run the emulated kernel's
#      suites under it (ctest -L emul; the end-to-end suites are not yet ASan-clean-checked)
#
# Exits non-zero if any step fails; a failed build skips only its own ctest step.
# Knobs: CTEST_PARALLEL_LEVEL (ctest's own, default serial), LWPD_TEST_TIMEOUT (seconds per
# test without its own TIMEOUT property, default 600).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

timeout=${LWPD_TEST_TIMEOUT:-600}
summary=()
failed=0

# step NAME CMD... -- run CMD, record PASS/FAIL and the time it took.
step() {
  local name=$1; shift
  local t0=$SECONDS
  echo "==> $name"
  if "$@"; then
    summary+=("PASS  $(printf '%-28s' "$name") $((SECONDS - t0))s")
    return 0
  fi
  summary+=("FAIL  $(printf '%-28s' "$name") $((SECONDS - t0))s")
  failed=1
  return 1
}
skip() { summary+=("SKIP  $(printf '%-28s' "$1") ($2)"); }

print_summary() {
  echo
  echo "==== test.sh summary ===="
  printf '%s\n' "${summary[@]}"
  ((failed == 0)) && echo "ALL PASSED" || echo "FAILED"
}

if ! step "install deps" bash scripts/install-deps.sh; then
  print_summary; exit 1
fi

if step "build (build/)" bash scripts/build.sh; then
  step "ctest (build/)" ctest --test-dir build --output-on-failure --timeout "$timeout"
else
  skip "ctest (build/)" "build failed"
fi

# halt_on_error: a report fails the test instead of scrolling by.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp${TSAN_OPTIONS:+ $TSAN_OPTIONS}"
if step "build (build-tsan/)" bash scripts/build.sh --sanitize thread; then
  # --no-tests=error: a TSan stage that ran nothing must not look green.
  step "ctest -L tsan (build-tsan/)" ctest --test-dir build-tsan -L tsan --no-tests=error \
    --output-on-failure --timeout "$timeout"
else
  skip "ctest -L tsan (build-tsan/)" "build failed"
fi

# detect_leaks: every process that exits normally (the daemon on SIGTERM, test programs) must
# leave nothing behind; suppressions (tests/lsan.supp) only for uninstrumented Debian libraries.
export ASAN_OPTIONS="detect_leaks=1 abort_on_error=0${ASAN_OPTIONS:+ $ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp print_suppressions=0${LSAN_OPTIONS:+ $LSAN_OPTIONS}"
if step "build (build-asan/)" bash scripts/build.sh --sanitize address; then
  step "ctest -L emul (build-asan/)" ctest --test-dir build-asan -L emul --no-tests=error \
    --output-on-failure --timeout "$timeout"
else
  skip "ctest -L emul (build-asan/)" "build failed"
fi

print_summary
exit "$failed"
