#!/usr/bin/env bash
# explore_test.sh EXPLORE RACES NSEEDS -- lwpd-explore against the example races
# (client/examples/races.c), with each strategy: each bug is found within 100 seeds, its
# failing seed fails again -- with the same output -- on 10 of 10 replays, and each corrected
# program passes every one of the first NSEEDS seeds. (README "Finding races".)
set -euo pipefail
explore=$1 races=$2 nseeds=$3
fail=0
bad() { echo "FAIL: $*"; fail=1; }

for strategy in random pct; do
for bug in lost-update lost-wakeup; do
  set +e
  summary=$("$explore" --json --strategy "$strategy" --seeds 1..100 --timeout-s 60 -- "$races" "$bug")
  rc=$?
  set -e
  echo "$strategy $bug: $summary"
  [[ $rc -eq 1 ]] || { bad "$strategy $bug: lwpd-explore exited $rc, wanted 1 (a failing seed)"; continue; }
  seed=$(sed -n 's/.*"failing_seed":\([0-9]*\).*/\1/p' <<<"$summary")
  [[ -n $seed ]] || { bad "$bug: no failing seed in the summary"; continue; }
  first=""
  for i in $(seq 10); do
    set +e
    out=$("$explore" --strategy "$strategy" --seeds "$seed" --timeout-s 60 -- "$races" "$bug" 2>&1)
    rc=$?
    set -e
    [[ $rc -eq 1 ]] || bad "$bug: replay $i of seed $seed exited $rc, wanted 1"
    grep -q "^failing seed: $seed " <<<"$out" || bad "$bug: replay $i did not fail: $out"
    # The program's own output: without the sanitizer's banners, which name pids and addresses.
    run_output=$(sed -n '/^--- output of the failing run ---$/,/^failing seed:/{/^failing seed:/!p}' <<<"$out" |
      grep -v -e '^==[0-9]*==' -e '^False positive error reports' -e '^For details see' || true)
    [[ -z $first ]] && first=$run_output
    [[ $run_output == "$first" ]] || bad "$bug: replay $i printed something else: $run_output"
  done
  echo "$strategy $bug: seed $seed failed again on 10 of 10 replays: $(tail -n 1 <<<"$first")"

  set +e
  out=$("$explore" --strategy "$strategy" --seeds "1..$nseeds" --timeout-s 60 -- "$races" "$bug" \
        --fixed 2>&1)
  rc=$?
  set -e
  echo "$strategy $bug --fixed: $out"
  [[ $rc -eq 0 ]] || bad "$strategy $bug --fixed: lwpd-explore exited $rc: $out"
done
done

# Usage errors are lwpd-explore's own: exit status 2.
set +e
"$explore" --seeds 9..1 -- "$races" lost-update >/dev/null 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || bad "--seeds 9..1: exit $rc, wanted 2"
exit $fail
