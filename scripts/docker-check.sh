#!/usr/bin/env bash
# docker-check.sh -- build the repository's Dockerfile and run lwpd-selftest in the image
# (start the daemon as the image does, wait for the HEALTHCHECK's gRPC health check to report
# SERVING, stop it cleanly). Wraps the machine's ../shared/tools/docker-check.sh (podman, no
# registry: the debian:bookworm bases come from a local debootstrap, built once).
#
#   bash scripts/docker-check.sh [COMMAND...]   # default COMMAND: lwpd-selftest
#
# The image is built in Docker format so its HEALTHCHECK is kept (OCI format drops it).
# Knobs: DOCKER_CHECK (path of the shared tool), plus the tool's own (TAG, STATE_DIR, ...).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tool=${DOCKER_CHECK:-$root/../shared/tools/docker-check.sh}
[[ -f $tool ]] || { echo "docker-check: $tool not found (set DOCKER_CHECK)" >&2; exit 2; }

export TAG=${TAG:-localhost/lwpd:check}
export BUILD_ARGS="--format docker${BUILD_ARGS:+ $BUILD_ARGS}"
# lwpd-selftest runs the HEALTHCHECK's command itself; podman's periodic check needs systemd
# (absent here: it only logs errors), so it is switched off for this run.
export RUN_ARGS="--no-healthcheck${RUN_ARGS:+ $RUN_ARGS}"
(($#)) || set -- lwpd-selftest
t0=$SECONDS
rc=0
bash "$tool" "$root" "$@" || rc=$?
echo "docker-check: exit $rc after $((SECONDS - t0))s" >&2
exit "$rc"
