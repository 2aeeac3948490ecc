#!/usr/bin/env bash
# package-check.sh -- build the Debian packages and check them in a clean Debian 12 container:
# `apt-get install ./*.deb` there (apt pulls the runtime dependencies from Debian), start
# lwpd with lwpd.service's ExecStart command line (no systemd in the container), and run the
# installed `lwpstat health`, `lwpstat ps` and the Node.js example against it
# (packaging/container/check.sh). Podman through ../shared/tools/docker-check.sh, as
# scripts/docker-check.sh does; .ci/run calls this after it.
#
#   bash scripts/package-check.sh [--build-dir DIR]   # default build/ (reused if configured)
#
# Knobs: DOCKER_CHECK (path of the shared tool), plus the tool's own (TAG, STATE_DIR, ...).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build
case ${1:-} in
  --build-dir) build=$(cd "$2" && pwd) ;;
  "") ;;
  *) sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
tool=${DOCKER_CHECK:-$root/../shared/tools/docker-check.sh}
[[ -f $tool ]] || { echo "package-check: $tool not found (set DOCKER_CHECK)" >&2; exit 2; }
t0=$SECONDS

# 1. the packages, from the existing (unsanitized) build tree when there is one.
if [[ ! -f $build/CMakeCache.txt ]]; then
  bash "$root/scripts/build.sh" --build-dir "$build"
elif grep -qE '^LWPD_SANITIZE:STRING=.+' "$build/CMakeCache.txt"; then
  echo "package-check: $build is a sanitizer build; packages come from a plain one" >&2
  exit 2
fi
rm -f "$build"/*.deb
cmake --build "$build" -j2 --target package
debs=("$build"/*.deb)
((${#debs[@]} == 3)) || { echo "package-check: expected 3 .deb files, got: ${debs[*]}" >&2; exit 1; }
for deb in "${debs[@]}"; do
  echo "== $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
  dpkg-deb -f "$deb" Package Version Depends
done
echo "package-check: packages built after $((SECONDS - t0))s"

# 2. the container's context: the packages, the Node example with its locked dependencies
#    (installed here, where npm is; pure JavaScript), the in-container check.
ctx=$build/package-check
rm -rf "$ctx"
mkdir -p "$ctx/debs" "$ctx/node"
cp "${debs[@]}" "$ctx/debs/"
cp "$root/packaging/container/Dockerfile" "$ctx/"
install -m 0755 "$root/packaging/container/check.sh" "$ctx/check.sh"
cp "$root"/examples/node/package.json "$root"/examples/node/package-lock.json \
   "$root"/examples/node/*.mjs "$root"/examples/node/*.proto "$ctx/node/"
(cd "$ctx/node" && timeout 240 npm ci --ignore-scripts --no-audit --no-fund --prefer-offline \
                     --fetch-timeout=20000 --fetch-retries=1 --loglevel=error) \
  || { echo "package-check: npm ci failed (is the npm registry reachable?)" >&2; exit 1; }

# 3. build the image and run the check in it.
export TAG=${TAG:-localhost/lwpd-package-check:latest}
rc=0
bash "$tool" "$ctx" || rc=$?
echo "package-check: exit $rc after $((SECONDS - t0))s" >&2
exit "$rc"
