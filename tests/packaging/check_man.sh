#!/usr/bin/env bash
# check_man.sh render MANDIR          -- every page renders with `man -l`, groff finds no fault
# check_man.sh agree MANDIR LWPSTAT LWPD HEADER
#     -- the pages and the programs agree: every subcommand and option that `lwpstat --help`
#        and `lwpstat SUB --help` list is in lwpstat(1), and every option lwpstat(1) names is
#        one lwpstat has; every option of `lwpd --help` is in lwpd(8); every function that
#        <lwpd/lwp.h> exports (LWPD_API) is in lwp(3).
set -euo pipefail
export LC_ALL=C MANPAGER=cat PAGER=cat
pages=(lwpd.8 lwpstat.1 lwp.3)
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# The page as plain text, one paragraph per line (a huge width: no wrapping, no hyphenation).
text() { MANWIDTH=10000 man -l "$1" 2>/dev/null | col -b; }

render() {
  local dir=$1 page out err
  for page in "${pages[@]}"; do
    [[ -f $dir/$page ]] || { bad "$dir/$page was not generated"; continue; }
    err=$(groff -man -ww -z "$dir/$page" 2>&1) || true
    [[ -z $err ]] || bad "$page: groff: $err"
    out=$(MANWIDTH=80 man -l "$dir/$page" 2>&1 >/dev/null) || bad "$page: man -l failed: $out"
    [[ -z $out ]] || bad "$page: man -l: $out"
    out=$(text "$dir/$page")
    for section in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
      grep -q "^$section\$" <<<"$out" || bad "$page: no $section section"
    done
    echo "rendered $page: $(wc -l <<<"$out") lines"
  done
}

# Options of a CLI11 --help: the first word of each option line ("-n,--count" -> -n --count).
help_options() { grep -E '^  -' | awk '{print $1}' | tr ',' '\n' | grep -E '^-' | sort -u; }
help_subcommands() { sed -n '/^Subcommands:/,/^$/p' | grep -E '^  [a-z]' | awk '{print $1}'; }
# Is word $2 (an option or name) in text $1, not as part of a longer word?
has_word() { grep -qE -- "(^|[^A-Za-z0-9_-])$2([^A-Za-z0-9_-]|\$)" <<<"$1"; }

agree() {
  local dir=$1 lwpstat=$2 lwpd=$3 header=$4 page help sub opt all_help
  page=$(text "$dir/lwpstat.1")
  help=$("$lwpstat" --help)
  all_help=$help
  local subs n=0
  subs=$(help_subcommands <<<"$help")
  [[ -n $subs ]] || bad "lwpstat --help lists no subcommands"
  for sub in $subs; do
    has_word "$page" "$sub" || bad "lwpstat(1) lacks the subcommand $sub"
    all_help+=$'\n'$("$lwpstat" "$sub" --help)
    n=$((n + 1))
  done
  local opts
  opts=$(help_options <<<"$all_help")
  for opt in $opts; do
    has_word "$page" "$opt" || bad "lwpstat(1) lacks the option $opt (lwpstat --help has it)"
  done
  # The other way: no option in the page that lwpstat does not have (before EXAMPLES, whose
  # command lines have other programs' options).
  for opt in $(sed '/^EXAMPLES$/,$d' <<<"$page" | grep -oE -- '(^|[^A-Za-z0-9_-])--?[a-z][a-z-]*' \
                 | sed 's/^[^-]*//' | sort -u); do
    grep -qxF -- "$opt" <<<"$opts" || bad "lwpstat(1) names $opt, which lwpstat --help does not have"
  done
  echo "lwpstat: $n subcommands, $(wc -w <<<"$opts") options, checked against lwpstat(1)"

  page=$(text "$dir/lwpd.8")
  opts=$("$lwpd" --help | help_options)
  for opt in $opts; do
    has_word "$page" "$opt" || bad "lwpd(8) lacks the option $opt (lwpd --help has it)"
  done
  echo "lwpd: $(wc -w <<<"$opts") options, checked against lwpd(8)"

  page=$(text "$dir/lwp.3")
  local fns
  fns=$(grep -E '^LWPD_API' "$header" | sed -E 's/^[^(]*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)\(.*/\1/' | sort -u)
  for fn in $fns; do
    grep -qF -- "$fn(" <<<"$page" || bad "lwp(3) lacks $fn() (exported by $(basename "$header"))"
  done
  echo "lwp.h: $(wc -w <<<"$fns") functions, checked against lwp(3)"
}

case ${1:-} in
  render) render "$2" ;;
  agree) agree "$2" "$3" "$4" "$5" ;;
  *) echo "usage: check_man.sh render MANDIR | agree MANDIR LWPSTAT LWPD HEADER" >&2; exit 2 ;;
esac
((fail == 0)) && echo PASS || { echo FAIL; exit 1; }
