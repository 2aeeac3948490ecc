#!/bin/bash
# lwpd-package-check: in a container where the lwpd packages were installed with apt, start
# the daemon with the command line lwpd.service runs (no systemd here), then drive it with the
# installed lwpstat and the Node.js example, and stop it with SIGTERM as systemd would.
set -euo pipefail
unit=/usr/lib/systemd/system/lwpd.service
fail() { echo "package-check: FAIL: $*" >&2; exit 1; }
step() { echo "package-check: $*"; }

for f in /usr/sbin/lwpd /usr/bin/lwpstat /usr/bin/lwpd-health /usr/bin/lwpd-explore "$unit" \
         /usr/share/man/man8/lwpd.8 /usr/share/man/man1/lwpstat.1 /usr/share/man/man3/lwp.3 \
         /usr/share/lwpd/proto/lwpd/v1/kernel.proto \
         /usr/share/lwpd/proto/grpc/health/v1/health.proto /usr/include/lwpd/lwp.h; do
  [[ -e $f ]] || fail "$f is not installed"
done
ls /usr/lib/liblwpclient.so.1 >/dev/null || fail "liblwpclient.so.1 is not installed"
dpkg-query -W -f='${Package} ${Version} ${Status}\n' lwpd liblwpclient1 liblwpd-dev

# What systemd would do: RuntimeDirectory=lwpd, UMask=0000, then ExecStart as written.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ -n $exec_start ]] || fail "no ExecStart in $unit"
mkdir -p -m 0755 /run/lwpd
umask 0000
step "starting: $exec_start"
read -r -a argv <<<"$exec_start"
"${argv[@]}" >/tmp/lwpd.log 2>&1 &
daemon=$!
umask 0022
trap 'kill -KILL "$daemon" 2>/dev/null || true; echo "--- lwpd log:"; cat /tmp/lwpd.log' EXIT

endpoint=unix:///run/lwpd/lwpd.sock
deadline=$((SECONDS + 30))
until lwpstat health --endpoint "$endpoint" --timeout-ms 1000 >/dev/null 2>&1; do
  kill -0 "$daemon" 2>/dev/null || fail "lwpd exited before it was SERVING"
  ((SECONDS < deadline)) || fail "lwpd not SERVING within 30 s"
  sleep 0.1
done
step "lwpstat health: $(lwpstat health --endpoint "$endpoint")"
lwpstat ps --endpoint "$endpoint"
lwpstat stats --endpoint "$endpoint"
lwpd-health "$endpoint" || fail "lwpd-health"

step "node $(node --version): examples/node/client.mjs with the installed contract"
(cd /opt/lwpd-node && LWPD_PROTO_DIR=/usr/share/lwpd/proto \
   node client.mjs --endpoint "$endpoint") || fail "the Node.js example"
if [[ -f /opt/lwpd-node/reflect.mjs ]]; then
  step "reflection (no .proto): reflect.mjs list, call lwpd.v1.Inspect/Stats"
  (cd /opt/lwpd-node && node reflect.mjs --endpoint "$endpoint" list \
     && node reflect.mjs --endpoint "$endpoint" call lwpd.v1.Inspect/Stats '{}') \
    || fail "reflect.mjs"
fi

step "SIGTERM (systemd's KillSignal)"
kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
trap - EXIT
((rc == 0)) || { cat /tmp/lwpd.log; fail "lwpd exited $rc on SIGTERM"; }
[[ ! -e /run/lwpd/admin.token ]] || fail "admin token left behind"
tail -n 3 /tmp/lwpd.log
step "PASS"
