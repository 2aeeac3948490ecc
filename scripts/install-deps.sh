#!/usr/bin/env bash
# install-deps.sh [--no-dev-tools] -- install the Debian 12 packages lwpd needs to build, test
# and run. --no-dev-tools leaves out the developer and test tools (the Dockerfile's build stage).
#
# Only missing packages are installed; `apt-get update` runs only when something is missing,
# so a second run on a ready machine is a few dpkg-query calls. Uses sudo only when not root.
set -euo pipefail

# One package per line; keep the list sorted by purpose. Names checked with `apt-cache policy`
# on Debian 12 (bookworm).
PACKAGES=(
  # toolchain and build
  build-essential g++ cmake ninja-build pkg-config
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # daemon and tools
  libspdlog-dev libfmt-dev libcli11-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libsystemd-dev   # sd_notify: readiness for lwpd.service (Type=notify)
  # Debian packages (CPack's DEB generator runs dpkg-shlibdeps) and man pages (scdoc -> roff)
  dpkg-dev scdoc
  # second-language client (Python stubs are generated with protoc + grpc_python_plugin)
  python3 python3-grpcio python3-protobuf
)
# Developer and test tools: `man -l` renders the pages, `systemd-analyze verify` checks the
# unit, node + npm run the Node.js client example (tests/node).
DEV_TOOLS=(tmux clang-format man-db systemd nodejs npm)

case ${1:-} in
  "") PACKAGES+=("${DEV_TOOLS[@]}") ;;
  --no-dev-tools) ;;
  *) echo "usage: install-deps.sh [--no-dev-tools]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${PACKAGES[@]}"; do
  # NodeSource's nodejs package bundles npm and conflicts with Debian's: any npm will do.
  [[ $pkg == npm ]] && command -v npm >/dev/null && continue
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "install-deps: missing ${missing[*]}; run as root or install sudo" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
