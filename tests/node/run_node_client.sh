#!/usr/bin/env bash
# run_node_client.sh SOURCE_DIR WORK_DIR LWPD -- the node_client test.
#
# Copies examples/node/ (sources, package.json, package-lock.json) to WORK_DIR, installs the
# pinned dependencies with `npm ci` (bounded: an unreachable registry fails within about a
# minute with a clear message instead of hanging; npm's cache makes later runs offline), lays
# the .proto files out as the liblwpd-dev package installs them, and runs client.mjs against
# a private daemon started from LWPD.
set -euo pipefail
src=$1 work=$2 lwpd=$3
example=$src/examples/node

rm -rf "$work"
mkdir -p "$work/proto/lwpd/v1" "$work/proto/grpc/health/v1"
cp "$example"/package.json "$example"/package-lock.json "$example"/*.mjs "$example"/*.proto "$work/"
cp "$src/proto/lwpd/v1/kernel.proto" "$work/proto/lwpd/v1/"
cp "$src/client/lwpstat/health.proto" "$work/proto/grpc/health/v1/"

echo "node $(node --version), npm $(npm --version)"
# --ignore-scripts: the two packages need no install scripts (pure JavaScript).
if ! (cd "$work" && timeout 240 npm ci --ignore-scripts --no-audit --no-fund --prefer-offline \
        --fetch-timeout=20000 --fetch-retries=1 --loglevel=error); then
  echo "FAIL: npm ci could not install @grpc/grpc-js and @grpc/proto-loader from the lockfile" \
       "(is the npm registry reachable? npm's cache: $(npm config get cache))" >&2
  exit 1
fi
cd "$work"
LWPD_PROTO_DIR=$work/proto exec node client.mjs --lwpd "$lwpd"
