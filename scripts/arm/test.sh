#!/usr/bin/env bash
# Runs the storage tests (and engine + engine/conformance) for 32- and 64-bit
# ARM under qemu user-mode emulation: arm64, armv7, armv6 for ./storage/...,
# arm64 and armv7 for ./engine and ./engine/conformance. Needs qemu-user-static
# (apt-get install -y qemu-user-static). No race detector on these targets.
# EDGED_STORAGE_BIG_MB (default 400) grows a database that large on each
# target; EDGED_TEST_EXEC lets TestCrashRecovery run its child under qemu.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIG=${EDGED_STORAGE_BIG_MB:-400}
run() { # name goarch goarm qemu pkgs...
  local name=$1 arch=$2 arm=$3 q=$4; shift 4
  command -v "$q" >/dev/null || { echo "$q not found: apt-get install -y qemu-user-static" >&2; exit 1; }
  echo "== $name: $*"
  env GOARCH="$arch" ${arm:+GOARM=$arm} EDGED_TEST_EXEC="$q" EDGED_STORAGE_BIG_MB="$BIG" \
    go test -count=1 -timeout 30m -exec "$q" "$@"
}
run arm64 arm64 "" qemu-aarch64-static ./storage/... ./engine ./engine/conformance
run armv7 arm 7 qemu-arm-static ./storage/... ./engine ./engine/conformance
run armv6 arm 6 qemu-arm-static ./storage/...
