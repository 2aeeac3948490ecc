#!/usr/bin/env bash
# run.sh [LWPD_ARGS...] -- the README's run command: install what is missing, build, start lwpd.
#
# Defaults (each overridable from the environment; extra arguments go to lwpd and, coming
# last, override the defaults):
#   LWPD_RUNTIME_DIR  $XDG_RUNTIME_DIR/lwpd, else /tmp/lwpd (socket, admin token, lwpctl files)
#   LWPD_LISTEN       unix://$LWPD_RUNTIME_DIR/lwpd.sock
#   LWPD_CPUS         nproc
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bin=$root/build/server/lwpd
if [[ -n ${XDG_RUNTIME_DIR:-} ]]; then
  runtime_dir=${LWPD_RUNTIME_DIR:-$XDG_RUNTIME_DIR/lwpd}
else
  runtime_dir=${LWPD_RUNTIME_DIR:-/tmp/lwpd}
fi
listen=${LWPD_LISTEN:-unix://$runtime_dir/lwpd.sock}
cpus=${LWPD_CPUS:-$(nproc)}

bash scripts/install-deps.sh
bash scripts/build.sh

if [[ ! -x $bin ]]; then
  cat <<MSG

lwpd: the daemon is not built yet ($bin does not exist).
The emulated kernel library (emul/) and its tests are built; run them with: bash scripts/test.sh
MSG
  exit 0
fi

mkdir -p "$runtime_dir"
chmod 0700 "$runtime_dir"   # the socket and admin token live here
cat <<MSG
run.sh: starting lwpd on $listen with $cpus vCPUs (Ctrl-C or SIGTERM stops it cleanly).
  Connect from another shell:
    export LWPD_ENDPOINT=$listen
    build/client/lwp_prodcons 10000        # a NetBSD-style producer/consumer on park/unpark
    build/client/lwpstat/lwpstat ps        # inspect processes, LWPs, vCPUs (see README)
  Admin token (for lwpstat's admin commands): $runtime_dir/admin.token
run.sh: exec $bin --listen $listen --cpus $cpus $*
MSG
exec "$bin" --listen "$listen" --cpus "$cpus" "$@"
