#!/usr/bin/env bash
# check_no_grpc.sh BINARY -- fail if BINARY depends on gRPC or protobuf, either through a shared
# library (ldd, transitive) or through a symbol (nm -C: static, undefined and dynamic ones).
set -euo pipefail
[[ $# -eq 1 && -f $1 ]] || { echo "usage: $0 BINARY" >&2; exit 2; }
bin=$1

lib_re='lib(grpc|gpr|upb|protobuf|protoc|address_sorting)'
sym_re='grpc|protobuf|(^|[^[:alnum:]_])(gpr|upb)_'

fail=0
if libs=$(ldd "$bin" | grep -iE "$lib_re"); then
  echo "FAIL: $bin links gRPC/protobuf libraries:"; echo "$libs"; fail=1
fi
# nm prints nothing useful for a stripped binary, so also read the dynamic symbol table.
syms=$( { nm -C "$bin" 2>/dev/null || true; nm -C -D "$bin" 2>/dev/null || true; } \
        | grep -iE "$sym_re" | sort -u | head -20 || true)
if [[ -n $syms ]]; then
  echo "FAIL: $bin contains gRPC/protobuf symbols (first 20):"; echo "$syms"; fail=1
fi
((fail == 0)) && echo "OK: $bin has no gRPC/protobuf library or symbol"
exit "$fail"
