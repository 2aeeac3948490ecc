#!/bin/sh
# lwpd-selftest -- run inside the image (scripts/docker-check.sh does): starts the daemon the
# way the image does (lwpd-entrypoint, with TCP on), waits until the HEALTHCHECK's command
# (lwpstat health) reports SERVING on the unix socket (and the TCP port), checks that lwpstat's
# admin commands find the admin token, checks the files the daemon keeps in
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
until lwpstat health --timeout-ms 1000 --endpoint "$sock" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || fail "lwpd exited before becoming healthy"
  i=$((i + 1))
  [ "$i" -lt 100 ] || fail "lwpd not SERVING on $sock after 100 tries"
  sleep 0.1
done
echo "lwpd-selftest: $sock: $(lwpstat health --endpoint "$sock") after $i retries"
st=$(lwpstat health --endpoint "$tcp") || fail "TCP listener $tcp not SERVING"
echo "lwpd-selftest: $tcp: $st"
lwpd-health --service no.such.Service "$sock" >/dev/null 2>&1 && fail "unknown service reported SERVING"

# lwpstat finds the admin token beside the socket: the daemon accepts it (an unknown pid is
# "no process", not a refused token).
out=$(lwpstat stop 4242 --endpoint "$sock" 2>&1) && fail "lwpstat stop 4242 succeeded"
[ "$out" = "lwpstat: no process 4242" ] || fail "lwpstat stop 4242: $out"
lwpstat ps --endpoint "$sock" >/dev/null || fail "lwpstat ps failed"

[ -S "$dir/lwpd.sock" ] || fail "$dir/lwpd.sock is not a socket"
mode=$(stat -c %a "$dir/lwpd.sock")
[ "$mode" = 777 ] || fail "socket mode $mode, expected 777 (any host uid may connect)"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "lwpd exited with status $rc after SIGTERM"
echo "lwpd-selftest: OK (healthy, clean SIGTERM shutdown)"
