#!/usr/bin/env bash
# Engine throughput under user-mode emulation, relative to native amd64 in
# the same run: compiles the engine benchmarks for amd64, arm64 and armv7
# (go test -c) and runs BENCH under qemu-aarch64-static / qemu-arm-static
# (binfmt is not needed: the emulator is called directly).
#   BENCH='KeyedTumblingAggregate/engine$' BENCHTIME=2x COUNT=3 ARCHES="amd64 arm64 armv7 armv6"
# Prints records/s per arch (median of COUNT runs) and the ratio to amd64.
# qemu-user translates every instruction (typically 5-20x slower than native
# code on the same host): the figures show relative cost and correctness on
# each target, not what a real ARM board does (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-KeyedTumblingAggregate/engine\$}
BENCHTIME=${BENCHTIME:-2x}
COUNT=${COUNT:-3}
ARCHES=${ARCHES:-amd64 arm64 armv7}
for q in qemu-aarch64-static qemu-arm-static; do
  command -v $q >/dev/null || { echo "bench-emulated: $q missing (apt-get install -y qemu-user-static)" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/edged-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
declare -A rate
echo "benchmark: $BENCH, -test.benchtime $BENCHTIME, median of $COUNT; host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for a in $ARCHES; do
  case $a in
  amd64) env=(GOARCH=amd64) run=() ;;
  arm64) env=(GOARCH=arm64) run=(qemu-aarch64-static) ;;
  armv7) env=(GOARCH=arm GOARM=7) run=(qemu-arm-static -cpu cortex-a7) ;;
  armv6) env=(GOARCH=arm GOARM=6) run=(qemu-arm-static -cpu arm1176) ;;
  *) echo "bench-emulated: unknown arch $a" >&2; exit 2 ;;
  esac
  env CGO_ENABLED=0 GOOS=linux "${env[@]}" go test -c -o "$tmp/engine.$a.test" ./engine
  "${run[@]}" "$tmp/engine.$a.test" -test.run '^$' -test.bench "$BENCH" -test.benchtime "$BENCHTIME" \
    -test.count "$COUNT" -test.benchmem >"$tmp/$a.out" 2>&1 || { cat "$tmp/$a.out" >&2; exit 1; }
  # the value before "records/s", median over the runs
  rate[$a]=$(awk '{for (i = 2; i <= NF; i++) if ($i == "records/s") print $(i-1)}' "$tmp/$a.out" | sort -g |
    awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
  [ -n "${rate[$a]}" ] || { cat "$tmp/$a.out" >&2; echo "bench-emulated: no records/s in the $a output" >&2; exit 1; }
  grep -E '^Benchmark' "$tmp/$a.out" | sed "s/^/  $a: /"
done
printf '\n%-6s %-22s %14s %10s\n' arch how records/s vs-amd64
for a in $ARCHES; do
  how=native
  [ "$a" = amd64 ] || how="qemu-user (emulated)"
  ratio=-
  [ -n "${rate[amd64]:-}" ] && ratio=$(awk -v x="${rate[$a]}" -v y="${rate[amd64]}" 'BEGIN{printf "%.3f", x/y}')
  printf '%-6s %-22s %14.0f %10s\n' "$a" "$how" "${rate[$a]}" "$ratio"
done
