#!/usr/bin/env bash
# Checks that the release build is reproducible: builds TARGETS (default arm64)
# twice with build.sh, the second time from a copy of the source tree at
# another path and with an empty build cache, and compares sha256 sums.
# Exits 1 and prints both sums when any binary differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export TARGETS=${TARGETS:-arm64}
tmp=$(mktemp -d /tmp/edged-repro.XXXXXX)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
OUT=$tmp/a bash scripts/cross/build.sh >/dev/null
mkdir -p "$tmp/src/elsewhere"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$tmp/src/elsewhere"
(cd "$tmp/src/elsewhere" && GOCACHE=$tmp/cache OUT=$tmp/b bash scripts/cross/build.sh >/dev/null)
(cd "$tmp/a" && sha256sum */*) >"$tmp/a.sum"
(cd "$tmp/b" && sha256sum */*) >"$tmp/b.sum"
if ! diff -u "$tmp/a.sum" "$tmp/b.sum"; then
  echo "repro: NOT reproducible (first build: cached, in $PWD; second: fresh cache, other path)" >&2
  exit 1
fi
echo "repro: identical sha256 across two builds (second from another path with an empty GOCACHE):"
cat "$tmp/a.sum"
