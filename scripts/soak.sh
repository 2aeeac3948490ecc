#!/usr/bin/env bash
# soak.sh [options]: a long run of lwpd under ThreadSanitizer against killed and churning
# clients, then a check that nothing leaked. Not part of scripts/test.sh (it takes minutes);
# the figures of the reference run are in docs/SOAK.md.
#
#   --daemon-build DIR   tree with the daemon to soak (default build-tsan: ThreadSanitizer)
#   --client-build DIR   tree with lwpstat_fixture and soak_churn (default build)
#   --cycles N           phase 1: client kill -9 cycles (default 1000)
#   --parallel N         phase 1: clients alive at once (default 4)
#   --procs N            phase 2: churning processes at once (default 100)
#   --lwps N             phase 2: LWPs per process (default 100)
#   --seconds N          phase 2: how long they churn in each round (default 300)
#   --rounds N           phase 2: churn rounds, one after the other (default 2)
#   --cpus N             the daemon's vCPUs (default 2)
#   --rss-bound-mb N     allowed RSS growth of the daemon (default 64): over phase 1, from
#                        the end of its warm-up (the first 10% of the cycles) to its end; and
#                        over phase 2, from the end of its first round to the end of its last
#   --out DIR            where the log, samples and report go (default: a new /tmp dir)
#
# Phase 1 runs lwpstat_fixture (a main LWP waiting, two parked LWPs, one spinning in user
# code on a vCPU) until it reports every LWP created, then kills it with SIGKILL. Phase 2
# runs --procs soak_churn processes of --lwps LWPs each, creating, exiting and reaping
# LWPs for --seconds, then waits for the table to empty; --rounds times. Every 5 s (and at
# each phase or round end) the daemon's VmRSS, Stats' nprocs and nlwps, and the number of
# lwpctl files are sampled to samples.csv.
#
# Why RSS is compared between rounds and not with the start: the first round takes the
# daemon from idle to ~10,000 live LWPs, and what the allocator (TSan's or ASan's above all)
# keeps of that peak stays mapped after the LWPs are gone. That retention is paid once; a
# leak per LWP, call or session grows with every round. So the bound is on the growth from
# the end of round 1 to the end of the last round, both taken with the table empty.
#
# The end checks: 0 processes, 0 LWPs, 0 lwpctl files, every churn process exited 0, no
# sanitizer report, the daemon still SERVING, both RSS bounds, and then a clean shutdown:
# SIGTERM, exit status 0 (with an AddressSanitizer daemon, --daemon-build build-asan, that
# status is also LeakSanitizer's verdict on what the daemon still holds). Exit 0 iff all hold.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

daemon_build=$root/build-tsan
client_build=$root/build
cycles=1000
parallel=4
procs=100
lwps=100
seconds=300
rounds=2
cpus=2
rss_bound_mb=64
out=""
usage() { sed -n '2,40s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 2; }
while (($#)); do
  case $1 in
    --daemon-build) daemon_build=$2; shift 2 ;;
    --client-build) client_build=$2; shift 2 ;;
    --cycles) cycles=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --lwps) lwps=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --rss-bound-mb) rss_bound_mb=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "soak.sh: unknown argument '$1'" >&2; usage ;;
  esac
done

lwpd=$daemon_build/server/lwpd
fixture=$client_build/tests/lwpstat/lwpstat_fixture
churn=$client_build/tests/soak/soak_churn
for f in "$lwpd" "$fixture" "$churn"; do
  [[ -x $f ]] || { echo "soak.sh: $f is missing (build it first)" >&2; exit 2; }
done

out=${out:-$(mktemp -d /tmp/lwpd-soak-XXXXXX)}
mkdir -p "$out/run"
run=$out/run
endpoint=unix://$run/lwpd.sock
export LWPD_ENDPOINT=$endpoint
# Stats and health through stubs generated here (Debian's python3-grpcio, as tests/python):
# the soak needs no lwpstat build.
mkdir -p "$out/py"
protoc --proto_path="$root/proto" --python_out="$out/py" --grpc_python_out="$out/py" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  "$root/proto/lwpd/v1/kernel.proto"
cat > "$out/py/probe.py" <<'PY'
# probe.py ENDPOINT stats|health: "NPROCS NLWPS" from Inspect.Stats, or SERVING.
import sys
import grpc
from lwpd.v1 import kernel_pb2 as pb, kernel_pb2_grpc as rpc
ch = grpc.insecure_channel(sys.argv[1])
if sys.argv[2] == "stats":
    s = rpc.InspectStub(ch).Stats(pb.StatsRequest(), timeout=30)
    print(s.nprocs, s.nlwps)
else:
    r = ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
    print("SERVING" if r == b"\x08\x01" else "NOT_SERVING")
PY
probe() { PYTHONPATH=$out/py /usr/bin/python3 "$out/py/probe.py" "$endpoint" "$1"; }

export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp${TSAN_OPTIONS:+ $TSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp${LSAN_OPTIONS:+ $LSAN_OPTIONS}"

"$lwpd" --listen "$endpoint" --runtime-dir "$run" --cpus "$cpus" --log-level warn \
  2> "$out/lwpd.log" &
daemon=$!
cleanup() {
  kill -KILL "$daemon" 2>/dev/null || true
  jobs -p | xargs -r kill -KILL 2>/dev/null || true
}
trap cleanup EXIT

ready=0
for _ in $(seq 1 300); do
  if [[ $(probe health 2>/dev/null) == SERVING ]]; then ready=1; break; fi
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
((ready)) || { echo "soak.sh: lwpd did not come up; log in $out/lwpd.log" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status"; }
counts() { probe stats; }
lwpctl_files() { find "$run" -maxdepth 1 -name 'lwpctl.*' | wc -l; }
t0=$(date +%s)
echo "t_s,phase,rss_kb,nprocs,nlwps,lwpctl_files" > "$out/samples.csv"
sample() {
  local c; c=$(counts)
  echo "$(( $(date +%s) - t0 )),$1,$(rss_kb),${c% *},${c#* },$(lwpctl_files)" >> "$out/samples.csv"
}
sample start

# ---- phase 1: kill -9 cycles ----
one_cycle() {
  local fifo=$out/fx.$1
  rm -f "$fifo"; mkfifo "$fifo"
  "$fixture" > "$fifo" 2>> "$out/fixture.err" &
  local pid=$!
  local line=""
  # The fixture prints its line once every LWP exists and the spinner spins.
  if ! read -r -t 60 line < "$fifo"; then
    echo "soak.sh: fixture $pid printed nothing in 60 s" >&2
  fi
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$fifo"
  [[ -n $line ]]
}
warmup=$(( cycles / 10 ))
failed_cycles=0
done_cycles=0
last=$(date +%s)
rss_warm=""
while (( done_cycles < cycles )); do
  n=$(( cycles - done_cycles < parallel ? cycles - done_cycles : parallel ))
  pids=()
  for i in $(seq 1 "$n"); do one_cycle "$i" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || failed_cycles=$((failed_cycles + 1)); done
  done_cycles=$(( done_cycles + n ))
  if [[ -z $rss_warm ]] && (( done_cycles >= warmup )); then rss_warm=$(rss_kb); sample warm; fi
  if (( $(date +%s) - last >= 5 )); then sample kill; last=$(date +%s); fi
  kill -0 "$daemon" 2>/dev/null || { echo "soak.sh: lwpd died in phase 1" >&2; exit 1; }
done
# The last kills are still being torn down: poll (bounded) until the table is empty.
for _ in $(seq 1 600); do [[ $(counts) == "0 0" ]] && break; sleep 0.1; done
sample kill-end
phase1_s=$(( $(date +%s) - t0 ))

# ---- phase 2: churn, --rounds times ----
t1=$(date +%s)
bad_churn=0
churn_cycles=0
rss_round1=""
for round in $(seq 1 "$rounds"); do
  cpids=()
  for i in $(seq 1 "$procs"); do
    "$churn" "$lwps" "$seconds" > "$out/churn.$round.$i.out" 2> "$out/churn.$round.$i.err" &
    cpids+=($!)
  done
  while :; do
    alive=0
    for p in "${cpids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    ((alive == 0)) && break
    sample "churn$round"
    kill -0 "$daemon" 2>/dev/null || { echo "soak.sh: lwpd died in phase 2" >&2; exit 1; }
    sleep 5
  done
  for p in "${cpids[@]}"; do wait "$p" || bad_churn=$((bad_churn + 1)); done
  for _ in $(seq 1 600); do [[ $(counts) == "0 0" ]] && break; sleep 0.1; done
  sample "round$round-end"
  [[ -n $rss_round1 ]] || rss_round1=$(rss_kb)
done
churn_cycles=$(cat "$out"/churn.*.out 2>/dev/null | awk '{ s += $2 } END { print s + 0 }')
phase2_s=$(( $(date +%s) - t1 ))

# ---- checks ----
read -r nprocs nlwps <<< "$(counts)"
files=$(lwpctl_files)
rss_end=$(rss_kb)
rss_kill_end=$(awk -F, '$2 == "kill-end" { print $3 }' "$out/samples.csv")
growth1_kb=$(( rss_kill_end - rss_warm ))
growth2_kb=$(( rss_end - rss_round1 ))
serving=$(probe health 2>/dev/null || true)
# The clean shutdown: SIGTERM, and the daemon exits 0 (LeakSanitizer's check runs at exit).
kill -TERM "$daemon" 2>/dev/null || true
exit_status=0
wait "$daemon" || exit_status=$?
sanitizer=$(grep -cE "WARNING: ThreadSanitizer|ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" \
  "$out/lwpd.log" || true)
ok=1
check() { if eval "$2"; then echo "ok    $1"; else echo "FAIL  $1"; ok=0; fi; }
{
  echo "lwpd soak: daemon $lwpd ($cpus vCPUs), clients from $client_build"
  echo "phase 1: $cycles kill -9 cycles ($parallel at once) in ${phase1_s} s; failed cycles: $failed_cycles"
  echo "phase 2: $rounds rounds of $procs processes x $lwps LWPs churning for $seconds s" \
       "(took ${phase2_s} s); $churn_cycles LWPs created and reaped; churn processes failed: $bad_churn"
  echo "RSS: start $(sed -n 2p "$out/samples.csv" | cut -d, -f3) kB; phase 1: $rss_warm kB after" \
       "warm-up, $rss_kill_end kB at its end (growth $growth1_kb kB); phase 2: $rss_round1 kB after" \
       "round 1, $rss_end kB after round $rounds (growth $growth2_kb kB); bound" \
       "$((rss_bound_mb * 1024)) kB; peak $(cut -d, -f3 "$out/samples.csv" | tail -n +2 | sort -n | tail -1) kB"
  check "0 processes left (got $nprocs)" '((nprocs == 0))'
  check "0 LWPs left (got $nlwps)" '((nlwps == 0))'
  check "0 lwpctl files left (got $files)" '((files == 0))'
  check "every kill cycle saw its fixture ready" '((failed_cycles == 0))'
  check "every churn process exited 0" '((bad_churn == 0))'
  check "no sanitizer report (got $sanitizer)" '((sanitizer == 0))'
  check "daemon SERVING" '[[ $serving == SERVING ]]'
  check "RSS flat over the kill cycles (after warm-up)" '((growth1_kb <= rss_bound_mb * 1024))'
  check "RSS flat from churn round 1 to round $rounds" '((growth2_kb <= rss_bound_mb * 1024))'
  check "clean shutdown on SIGTERM: exit status 0 (got $exit_status)" '((exit_status == 0))'
} > "$out/report.txt"
cat "$out/report.txt"
echo "samples: $out/samples.csv, log: $out/lwpd.log"
((ok))
