#!/bin/sh
# lwpd-selftest -- run inside the image (scripts/docker-check.sh does): starts the daemon the
# way the image does (lwpd-entrypoint, with TCP on), waits until the HEALTHCHECK's command
# reports SERVING on the unix socket (and the TCP port), checks the files the daemon keeps in
# the runtime directory, then stops it with SIGTERM and expects a clean exit. Exit 0 iff all
# of that holds.
set -eu
dir=${LWPD_RUNTIME_DIR:-/run/lwpd}
sock=unix://$dir/lwpd.sock
port=${LWPD_SELFTEST_PORT:-50051}
tcp=127.0.0.1:$port

fail() { echo "lwpd-selftest: FAIL: $*" >&2; kill "$pid" 2>/dev/null || true; exit 1; }

LWPD_TCP=0.0.0.0:$port lwpd-entrypoint &
pid=$!

# Bounded wait: 100 x 0.1 s (each check itself times out after 1 s).
i=0
until lwpd-health --timeout-ms 1000 "$sock" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || fail "lwpd exited before becoming healthy"
  i=$((i + 1))
  [ "$i" -lt 100 ] || fail "lwpd not SERVING on $sock after 100 tries"
  sleep 0.1
done
echo "lwpd-selftest: $sock: $(lwpd-health "$sock") after $i retries"
st=$(lwpd-health "$tcp") || fail "TCP listener $tcp not SERVING"
echo "lwpd-selftest: $tcp: $st"
lwpd-health --service no.such.Service "$sock" >/dev/null 2>&1 && fail "unknown service reported SERVING"

[ -S "$dir/lwpd.sock" ] || fail "$dir/lwpd.sock is not a socket"
mode=$(stat -c %a "$dir/lwpd.sock")
[ "$mode" = 777 ] || fail "socket mode $mode, expected 777 (any host uid may connect)"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "lwpd exited with status $rc after SIGTERM"
echo "lwpd-selftest: OK (healthy, clean SIGTERM shutdown)"
