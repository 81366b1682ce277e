#!/usr/bin/env bash
# Flash-wear check at a steady, gateway-like rate: edged with its defaults
# (embedded broker, the bench window pipeline) fed by `edgectl sim` at RATE
# messages/s for DURATION, at QoS 0 and at QoS 1. Prints, per QoS, bytes
# written per million messages by /proc/<pid>/io write_bytes and by the
# storage estimate (by kind), against the raw payload bytes.
#   scripts/bench/flash.sh [--rate R] [--duration D]   (default 500/s, 30s)
# MQTT_EXTRA="maxBatchDelay: 1s" adds keys to edged's mqtt section (to
# measure the knobs that trade acknowledgement latency for flash writes).
set -euo pipefail
rate=500; duration=30s
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    *) echo "usage: $0 [--rate R] [--duration D]" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d); epid=
trap 'kill -9 $epid 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$root"
go build -o "$work/edged" ./cmd/edged
go build -o "$work/edgectl" ./cmd/edgectl
go build -o "$work/waitfor" ./scripts/bench/waitfor
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for q in 0 1; do
  d="$work/q$q"; mkdir -p "$d/pipelines"
  sed -n '/^apiVersion/,$p' > "$d/pipelines/p.yaml" <<YAML
apiVersion: edged/v1
kind: Pipeline
metadata: {name: flash}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["sensors/{sensor}/reading"], qos: $q}
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
  mp=$(port); api=127.0.0.1:$(port)
  echo "mqtt: {listen: 127.0.0.1:$mp${MQTT_EXTRA:+, $MQTT_EXTRA}}" > "$d/edged.yaml"
  "$work/edged" run -c "$d/edged.yaml" --data-dir "$d/data" --pipelines-dir "$d/pipelines" --api $api 2> "$d/edged.log" & epid=$!
  "$work/waitfor" --url http://$api/metrics --metric edged_ready --value 1 --timeout 30s > /dev/null
  w0=$(awk '/^write_bytes/{print $2}' /proc/$epid/io)
  "$work/edgectl" sim --broker 127.0.0.1:$mp --sensors 100 --rate $rate --duration $duration --qos $q --progress 0 > "$d/sim.out"
  sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$d/sim.out" | tail -1)
  "$work/waitfor" --url http://$api/metrics --metric edged_mqtt_handed_off_total --value $sent --timeout 60s > /dev/null
  sleep 2 # one more epoch commits what was handed off
  w1=$(awk '/^write_bytes/{print $2}' /proc/$epid/io)
  m=$(curl -sf http://$api/metrics)
  raw=$(awk '/^edged_storage_raw_bytes_appended_total/{print $2}' <<<"$m")
  kill -TERM $epid; wait $epid || true; epid=
  echo "QoS $q: $sent messages at $rate/s; logged entries (topic + payload) $(awk -v r=$raw -v n=$sent 'BEGIN{printf "%.0f", r/n}') B each"
  awk -v w=$((w1 - w0)) -v n=$sent -v r=$raw 'BEGIN{printf "QoS %s: /proc write_bytes %.0f B per message = %.2fx the logged bytes\n", "'$q'", w/n, w/r}'
  awk -v n=$sent -v q=$q '/^edged_storage_bytes_written_by_kind_total/{split($1,a,"\""); printf "QoS %s:   storage estimate %-12s %6.0f B per message\n", q, a[2], $2/n}' <<<"$m"
done
