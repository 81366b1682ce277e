#!/usr/bin/env bash
# Builds static (CGO_ENABLED=0), stripped, reproducible binaries of edged and
# edgectl for the gateway targets into dist/<os>-<arch>/ and prints a size table.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
LDFLAGS="-s -w -buildid= -X github.com/edgedio/edged/internal/version.Version=${VERSION}"
targets=("linux arm 6 armv6" "linux arm 7 armv7" "linux arm64 - arm64" "linux amd64 - amd64")
printf '%-8s %-8s %12s\n' target binary bytes
for t in "${targets[@]}"; do
  read -r os arch arm name <<<"$t"
  out=dist/${os}-${name}
  mkdir -p "$out"
  for bin in edged edgectl; do
    goarm=()
    [ "$arm" != - ] && goarm=(GOARM="$arm")
    env CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" "${goarm[@]}" \
      go build -trimpath -ldflags "$LDFLAGS" -o "$out/$bin" ./cmd/$bin
    printf '%-8s %-8s %12d\n' "$name" "$bin" "$(stat -c %s "$out/$bin")"
  done
done
