#!/usr/bin/env bash
# verify_unit.sh UNIT LWPD -- `systemd-analyze verify` accepts the generated lwpd.service.
# verify also checks that ExecStart's program exists, so the check runs on a copy whose
# ExecStart names this build's lwpd instead of the installed path (the rest is unchanged).
# Exit 77 (ctest: skipped) where systemd-analyze is not installed.
set -euo pipefail
unit=$1 lwpd=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
grep -qE '^ExecStart=/[^ ]*/sbin/lwpd ' "$unit" || { echo "FAIL: ExecStart is not PREFIX/sbin/lwpd"; exit 1; }
sed -E "s|^ExecStart=/[^ ]*/sbin/lwpd |ExecStart=$lwpd |" "$unit" >"$dir/lwpd.service"
# verify prints problems on stderr and may still exit 0 for some of them: any output fails.
out=$(systemd-analyze verify --man=no "$dir/lwpd.service" 2>&1) || { echo "$out"; echo "FAIL"; exit 1; }
if [[ -n $out ]]; then
  echo "$out"
  echo "FAIL: systemd-analyze verify printed warnings"
  exit 1
fi
for key in Type=notify RuntimeDirectory=lwpd NoNewPrivileges=yes ProtectSystem=strict; do
  grep -qx "$key" "$unit" || { echo "FAIL: $key missing"; exit 1; }
done
echo "PASS: systemd-analyze verify accepts lwpd.service"
