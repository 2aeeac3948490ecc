#!/usr/bin/env bash
# build.sh [--sanitize thread|address] [--clang] [--build-dir DIR] [--target T]... [-- EXTRA_CMAKE_ARGS...]
#
# Configures (CMake + Ninja, RelWithDebInfo with assertions on) and builds with -j2.
# Default build directory: build/, or build-tsan/ / build-asan/ when sanitized.
# --clang: clang/clang++ with -DLWPD_FUZZ=ON (libFuzzer targets, ASan + UBSan) in build-clang/.
# --target T (repeatable): build only T (default: everything).
# Relative --build-dir paths are taken from the repository root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }

sanitize=""
build_dir=""
clang=0
targets=()
extra=()
while (($#)); do
  case $1 in
    --sanitize) [[ $# -ge 2 ]] || usage; sanitize=$2; shift 2 ;;
    --sanitize=*) sanitize=${1#*=}; shift ;;
    --build-dir) [[ $# -ge 2 ]] || usage; build_dir=$2; shift 2 ;;
    --build-dir=*) build_dir=${1#*=}; shift ;;
    --clang) clang=1; shift ;;
    --target) [[ $# -ge 2 ]] || usage; targets+=(--target "$2"); shift 2 ;;
    --target=*) targets+=(--target "${1#*=}"); shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "build.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

case $sanitize in
  "") default_dir=build ;;
  thread) default_dir=build-tsan ;;
  address) default_dir=build-asan ;;
  *) echo "build.sh: --sanitize must be thread or address" >&2; exit 2 ;;
esac
compiler=()
if ((clang)); then
  [[ -z $sanitize ]] || { echo "build.sh: --clang brings its own sanitizers (no --sanitize)" >&2; exit 2; }
  default_dir=build-clang
  compiler=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLWPD_FUZZ=ON)
fi
build_dir=${build_dir:-$default_dir}
[[ $build_dir == /* ]] || build_dir=$root/$build_dir

# "-O2 -g" without -DNDEBUG: optimised, debuggable, assertions on.
cmake -S "$root" -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g" \
  -DLWPD_SANITIZE="$sanitize" \
  "${compiler[@]}" "${extra[@]}"
cmake --build "$build_dir" -j2 "${targets[@]}"
