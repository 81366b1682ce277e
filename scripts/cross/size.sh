#!/usr/bin/env bash
# Size report for one target's edged (default arm64): builds it unstripped
# (the release build strips with -s -w) and sums symbol sizes per section,
# module and package with scripts/cross/binsize (go tool nm -size, aggregated).
#   TARGET=armv7 BIN=edgectl TOP=30 scripts/cross/size.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGET=${TARGET:-arm64} BIN=${BIN:-edged} TOP=${TOP:-25}
case $TARGET in
armv6) env=(GOARCH=arm GOARM=6) ;; armv7) env=(GOARCH=arm GOARM=7) ;;
arm64) env=(GOARCH=arm64) ;; amd64) env=(GOARCH=amd64) ;;
*) echo "size.sh: unknown target $TARGET" >&2; exit 2 ;;
esac
tmp=$(mktemp -d /tmp/edged-size.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
env CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -trimpath -buildvcs=false -ldflags=-buildid= -o "$tmp/$BIN" ./cmd/"$BIN"
env CGO_ENABLED=0 GOOS=linux "${env[@]}" go list -deps -f '{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}' ./cmd/"$BIN" >"$tmp/mods"
env CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$tmp/$BIN.stripped" ./cmd/"$BIN"
echo "linux-$TARGET $BIN: $(stat -c %s "$tmp/$BIN.stripped") bytes stripped (release build)"
go run ./scripts/cross/binsize -top "$TOP" -modmap "$tmp/mods" "$tmp/$BIN"
