#!/usr/bin/env bash
# Builds static (CGO_ENABLED=0), stripped, reproducible binaries of edged and
# edgectl for the gateway targets into dist/<os>-<arch>/ and prints a size table.
#
# Reproducible: -trimpath (no local paths), -buildid= (no content-hash ids),
# -buildvcs=false (a source tarball builds the same bytes as a checkout; the
# version comes from VERSION instead), and the per-arch tuning variables pinned
# so that the caller's environment cannot change the output.
# scripts/cross/repro.sh checks it.
#
#   TARGETS="arm64 amd64" scripts/cross/build.sh   # a subset (armv6 armv7 arm64 amd64)
#   OUT=dir scripts/cross/build.sh                 # another output root (default dist)
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
LDFLAGS="-s -w -buildid= -X github.com/edgedio/edged/internal/version.Version=${VERSION}"
TARGETS=${TARGETS:-armv6 armv7 arm64 amd64}
OUT=${OUT:-dist}
printf '%-8s %-8s %12s\n' target binary bytes
for name in $TARGETS; do
  case $name in
  armv6) env=(GOARCH=arm GOARM=6) ;;
  armv7) env=(GOARCH=arm GOARM=7) ;;
  arm64) env=(GOARCH=arm64 GOARM64=v8.0) ;;
  amd64) env=(GOARCH=amd64 GOAMD64=v1) ;;
  *) echo "build.sh: unknown target $name (armv6 armv7 arm64 amd64)" >&2; exit 2 ;;
  esac
  out=$OUT/linux-$name
  mkdir -p "$out"
  for bin in edged edgectl; do
    env CGO_ENABLED=0 GOOS=linux GOFLAGS= GOEXPERIMENT= "${env[@]}" \
      go build -trimpath -buildvcs=false -ldflags "$LDFLAGS" -o "$out/$bin" ./cmd/$bin
    printf '%-8s %-8s %12d\n' "$name" "$bin" "$(stat -c %s "$out/$bin")"
  done
done
