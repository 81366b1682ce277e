#!/usr/bin/env bash
# Flash-wear check of the default install at a steady, gateway-like rate:
# edged with no config but a free port (the embedded broker, every example
# pipeline seeded into its pipelines directory), fed by `edgectl sim` at
# RATE messages/s over SENSORS sensors for DURATION, at QoS 0 and at QoS 1.
# Prints, per QoS, the bytes the kernel counts as written by the whole edged
# process (/proc/PID/io write_bytes: the database, file sinks, logs) per
# message, against the logged bytes (topic + payload); storage's own count
# by kind; the write transactions per second; what the stdout sinks printed
# (a pipe here; journald writes it under systemd, not edged); and, at QoS 1,
# the PUBACK latency of a probe publishing one reading at a time beside the
# simulator (the acknowledgement waits for the fsync'd log commit).
#   scripts/bench/flash.sh [--rate R] [--duration D] [--sensors N] [--window | --pipelines DIR]
# (defaults 500/s, 30s, 100 sensors, the example pipelines). --window loads
# only a per-sensor 10 s tumbling window to a file sink; --pipelines DIR
# loads DIR's pipelines.
# MQTT_EXTRA="maxBatchDelay: 1s" adds keys to edged's mqtt section and
# STORAGE_EXTRA="groupMaxDelay: 20ms" to its storage section (to measure the
# knobs that trade latency for flash writes); CONFIG_EXTRA adds YAML lines
# (e.g. "epochs: {partitions: 2}").
set -euo pipefail
rate=500; duration=30s; sensors=100; pdir=
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --sensors) sensors=$2; shift 2 ;;
    --pipelines) pdir=$(cd "$2" && pwd); shift 2 ;;
    --window) pdir=window; shift ;;
    *) echo "usage: $0 [--rate R] [--duration D] [--sensors N] [--window | --pipelines DIR]" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d); epid=; ppid_=; wpid=
trap 'kill -9 $epid $ppid_ $wpid 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$root"
go build -o "$work/edged" ./cmd/edged
go build -o "$work/edgectl" ./cmd/edgectl
go build -o "$work/waitfor" ./scripts/bench/waitfor
go build -o "$work/puback" ./scripts/bench/puback
if [ "$pdir" = window ]; then
  pdir="$work/window"; mkdir -p "$pdir"
  cat > "$pdir/window.yaml" <<'YAML'
apiVersion: edged/v1
kind: Pipeline
metadata: {name: flash}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["sensors/{sensor}/reading"], qos: 1}
      fields:
        - {name: sensor, type: string}
        - {name: ts, type: time}
        - {name: temp, type: number}
      eventTime: ts
      watermark: 2s
  steps:
    - name: per-sensor
      input: readings
      window: {type: tumbling, size: 10s, keys: [sensor], output: append,
               aggregates: [{n: count()}, {avg_temp: avg(temp)}]}
  sinks:
    - {name: out, input: per-sensor, type: file, path: windows.jsonl}
YAML
fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { awk -v m="$1" '$1==m{print $2}' <<<"$2"; }
echo "flash: $(uptime)"
for q in 0 1; do
  d="$work/q$q"; mkdir -p "$d"
  mp=$(port); api=127.0.0.1:$(port)
  {
    echo "mqtt: {listen: 127.0.0.1:$mp${MQTT_EXTRA:+, $MQTT_EXTRA}}"
    if [ -n "${STORAGE_EXTRA:-}" ]; then echo "storage: {$STORAGE_EXTRA}"; fi
    if [ -n "${CONFIG_EXTRA:-}" ]; then echo "$CONFIG_EXTRA"; fi
  } > "$d/edged.yaml"
  args=(run -c "$d/edged.yaml" --data-dir "$d/data" --api "$api")
  [ -n "$pdir" ] && args+=(--pipelines-dir "$pdir")
  mkfifo "$d/stdout"; wc -c < "$d/stdout" > "$d/stdout.bytes" & wpid=$!
  "$work/edged" "${args[@]}" 2> "$d/edged.log" > "$d/stdout" & epid=$!
  "$work/waitfor" --url "http://$api/metrics" --metric edged_ready --value 1 --timeout 30s > /dev/null
  m0=$(curl -sf "http://$api/metrics")
  w0=$(awk '/^write_bytes/{print $2}' /proc/$epid/io)
  t0=$(date +%s.%N)
  if [ "$q" = 1 ]; then
    "$work/puback" --broker "tcp://127.0.0.1:$mp" --every 200ms > "$d/puback.out" & ppid_=$!
  fi
  "$work/edgectl" sim --broker "127.0.0.1:$mp" --sensors "$sensors" --rate "$rate" --duration "$duration" \
    --qos "$q" --progress 0 > "$d/sim.out"
  probes=0
  if [ -n "$ppid_" ]; then
    kill -TERM "$ppid_"; wait "$ppid_"; ppid_=
    probes=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$d/puback.out")
  fi
  sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$d/sim.out" | tail -1)
  "$work/waitfor" --url "http://$api/metrics" --metric edged_mqtt_handed_off_total \
    --value $((sent + probes)) --timeout 60s > /dev/null
  sleep 2 # one more epoch commits what was handed off
  w1=$(awk '/^write_bytes/{print $2}' /proc/$epid/io)
  t1=$(date +%s.%N)
  m=$(curl -sf "http://$api/metrics")
  kill -TERM $epid; wait $epid || true; epid=
  wait $wpid; wpid=
  delta() { awk -v a="$(metric "$1" "$m0")" -v b="$(metric "$1" "$m")" 'BEGIN{printf "%.0f", b-a}'; }
  raw=$(delta edged_storage_raw_bytes_appended_total)
  tx=$(delta edged_storage_commits_total)
  n=$((sent + probes))
  awk -v r=$raw -v n=$n -v s=$sent -v tx=$tx -v t0=$t0 -v t1=$t1 -v rate=$rate -v q=$q 'BEGIN{
    printf "QoS %s: %d messages at %s/s; logged entries (topic + payload) %.0f B each; %.1f write transactions/s\n", q, s, rate, r/n, tx/(t1-t0)}'
  awk -v w=$((w1 - w0)) -v n=$n -v r=$raw -v q=$q 'BEGIN{
    printf "QoS %s: /proc write_bytes %.0f B per message = %.2fx the logged bytes\n", q, w/n, w/r}'
  # storage's count by kind, over the same interval
  paste <(grep '^edged_storage_bytes_written_by_kind_total' <<<"$m0") <(grep '^edged_storage_bytes_written_by_kind_total' <<<"$m") |
    awk -v n=$n -v r=$raw -v q=$q '{split($1,a,"\""); b=$4-$2; t+=b; printf "QoS %s:   storage count %-12s %6.0f B per message\n", q, a[2], b/n}
      END{printf "QoS %s:   storage count total        %6.0f B per message = %.2fx\n", q, t/n, t/r}'
  awk -v b="$(cat "$d/stdout.bytes")" -v n=$n -v q=$q 'BEGIN{printf "QoS %s:   stdout sinks printed %.0f B per message (journald writes these under systemd)\n", q, b/n}'
  if [ "$q" = 1 ]; then echo "QoS 1: PUBACK latency of a probe beside the load: $(cat "$d/puback.out")"; fi
done
