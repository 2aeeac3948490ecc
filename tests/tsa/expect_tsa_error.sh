#!/usr/bin/env bash
# expect_tsa_error.sh CLANGXX SRC_ROOT GOOD.cc BAD.cc
# The proof that the thread-safety check bites: GOOD.cc must compile cleanly with the
# flags emul/ and server/ are built with, and BAD.cc (the same code with one lock contract
# broken) must be rejected with a -Wthread-safety diagnostic. Syntax only: no object code.
set -uo pipefail
cxx=$1 root=$2 good=$3 bad=$4
flags=(-std=c++20 -fsyntax-only -I"$root" -Wthread-safety -Wthread-safety-beta
       -Werror=thread-safety -Werror=thread-safety-beta)
if ! out=$("$cxx" "${flags[@]}" "$good" 2>&1); then
  echo "FAIL: the control $good does not compile:"; echo "$out"; exit 1
fi
if out=$("$cxx" "${flags[@]}" "$bad" 2>&1); then
  echo "FAIL: $bad compiled, but it breaks a lock contract"; exit 1
fi
echo "$out"
if ! grep -q -- '-Werror,-Wthread-safety' <<<"$out"; then
  echo "FAIL: $bad was rejected, but not by the thread-safety analysis"; exit 1
fi
echo "OK: $bad rejected by the thread-safety analysis"
