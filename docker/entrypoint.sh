#!/bin/sh
# lwpd-entrypoint [LWPD_ARGS...] | [lwpd LWPD_ARGS...] | [COMMAND...]
#
# Starts lwpd on unix:///run/lwpd/lwpd.sock (runtime dir /run/lwpd, the image's VOLUME), plus
# TCP when LWPD_TCP is set (e.g. 0.0.0.0:50051), with --cpus = the container's CPUs unless
# LWPD_CPUS or a --cpus argument says otherwise. Arguments that start with '-' (or follow
# `lwpd`) are passed to the daemon; any other command is run instead (e.g. lwpd-selftest).
set -eu

if [ $# -gt 0 ] && [ "$1" = lwpd ]; then shift
elif [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then exec "$@"
fi

runtime_dir=${LWPD_RUNTIME_DIR:-/run/lwpd}

# The container's CPUs: the affinity set (nproc), lowered by a CFS quota (docker run --cpus),
# rounded up; lwpd accepts 1..64.
container_cpus() {
  n=$(nproc)
  q="" p=""
  if [ -r /sys/fs/cgroup/cpu.max ]; then                       # cgroup v2
    read -r q p </sys/fs/cgroup/cpu.max || true
  elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then        # cgroup v1
    q=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
    p=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
  fi
  case $q in
    ''|max|-1) ;;
    *) if [ "${p:-0}" -gt 0 ]; then
         c=$(( (q + p - 1) / p ))
         [ "$c" -ge 1 ] && [ "$c" -lt "$n" ] && n=$c
       fi ;;
  esac
  [ "$n" -gt 64 ] && n=64
  echo "$n"
}

# Built by prepending, so the final order is: unix socket, TCP, --cpus, the caller's arguments.
case " $* " in
  *" --cpus "*|*" --cpus="*) ;;
  *) set -- --cpus "${LWPD_CPUS:-$(container_cpus)}" "$@" ;;
esac
if [ -n "${LWPD_TCP:-}" ]; then set -- --listen "$LWPD_TCP" "$@"; fi
set -- --listen "unix://$runtime_dir/lwpd.sock" --runtime-dir "$runtime_dir" "$@"

# The socket is created with the process umask: the default 0000 lets clients of any host uid
# connect (sessions are still guarded by their tokens; lwpd sets the modes of its other files).
umask "${LWPD_UMASK:-0000}"
mkdir -p "$runtime_dir"
echo "lwpd-entrypoint: exec lwpd $*" >&2
exec lwpd "$@"
