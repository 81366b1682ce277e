#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, skipping
# what is already there:
#   apt:  make git gcc curl dpkg-dev qemu-user-static mosquitto
#         mosquitto-clients chromium prometheus (for promtool) nodejs npm
#   Go:   versitygw v1.8.0 (the S3 server of the uplink tests) into
#         .cache/bin of the repository (gitignored), where the tests look
# Go 1.26 itself is expected at /usr/local/go (or on PATH).
#
#   sudo bash scripts/test/install.sh           install what is missing
#   bash scripts/test/install.sh --check        only report what `make test`
#                                               needs and lacks (exit 1 if any)
#
# Run under sudo, the Go part runs as the invoking user ($SUDO_USER), so
# .cache/bin and the module cache stay theirs. .ci/run calls this script.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

export PATH="$PATH:/usr/local/go/bin"
versitygw_mod=github.com/versity/versitygw/cmd/versitygw@v1.8.0
hint="sudo bash scripts/test/install.sh"

# find_versitygw prints the versitygw the tests would use (see
# uplink/s3test), or nothing.
find_versitygw() {
  local d
  if command -v versitygw >/dev/null 2>&1; then command -v versitygw; return; fi
  for d in "${GOBIN:-}" "$(go env GOPATH 2>/dev/null | cut -d: -f1)/bin" "$root/.cache/bin"; do
    if [ -n "$d" ] && [ -x "$d/versitygw" ]; then echo "$d/versitygw"; return; fi
  done
}

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if [ "${1:-}" = "--check" ]; then
  # What `make test` itself needs (the rest is for make test-deb, test-arm).
  missing=()
  command -v go >/dev/null || missing+=("go (Go 1.26 at /usr/local/go)")
  command -v gcc >/dev/null || missing+=("gcc (the race detector needs cgo)")
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=("mosquitto")
  [ -n "$(find_versitygw)" ] || missing+=("versitygw")
  command -v promtool >/dev/null || missing+=("promtool (Debian package prometheus)")
  if [ ${#missing[@]} -gt 0 ]; then
    {
      echo "make test needs real servers and tools that are missing here:"
      printf '  - %s\n' "${missing[@]}"
      echo "Install them with:"
      echo "  $hint"
      echo "or run only the tests that need none of them: make test-short"
    } >&2
    exit 1
  fi
  exit 0
fi

if ! command -v go >/dev/null; then
  echo "Go 1.26 is required (expected at /usr/local/go; https://go.dev/dl/)" >&2
  exit 1
fi

# Debian packages: each checked by the program the tests use, then by
# package state.
need=()
want() { # want PACKAGE PROGRAM...
  local pkg=$1 p
  shift
  for p in "$@"; do
    if command -v "$p" >/dev/null 2>&1 || [ -x "$p" ]; then return; fi
  done
  have_pkg "$pkg" || need+=("$pkg")
}
want make make
want git git
want gcc gcc # the race detector needs cgo
want curl curl
want dpkg-dev dpkg-buildpackage dpkg-architecture
want qemu-user-static qemu-arm-static
want mosquitto mosquitto /usr/sbin/mosquitto
want mosquitto-clients mosquitto_pub
want chromium chromium /usr/bin/chromium
want prometheus promtool
want iproute2 ip     # the split-brain test builds network namespaces
want nodejs node   # the DuckDB read-back of uplinked Parquet (npm installs its client)
want npm npm
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "run as root: $hint" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
else
  echo "apt packages: all present"
fi

# versitygw, built from the Go module proxy (about 1.5 min cold).
if v=$(find_versitygw) && [ -n "$v" ]; then
  echo "versitygw: $v"
else
  echo "installing versitygw into $root/.cache/bin"
  as_user=()
  if [ "$(id -u)" = 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    as_user=(sudo -u "$SUDO_USER" -H)
  fi
  "${as_user[@]}" mkdir -p "$root/.cache/bin"
  "${as_user[@]}" env PATH="$PATH" GOBIN="$root/.cache/bin" go install "$versitygw_mod"
fi
echo "test dependencies ready: make test"
