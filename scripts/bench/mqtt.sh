#!/usr/bin/env bash
# MQTT end-to-end benchmark: a bare paho subscriber that only counts versus
# edged computing count, avg(temp), max(temp) per sensor per 1 s tumbling
# window over 1,000 sensors, fed the same messages by the same publisher,
# alternating, at QoS 0 and QoS 1, through a mosquitto configured not to
# drop queued messages. Last line:
#   qos0_ratio=R0 qos1_ratio=R1 cpu_ratio=C peak_rss_mb=M
# Usage: scripts/bench/mqtt.sh [--messages N] [--qos 0|1]
#   --messages: default 1000000; --qos: run only that QoS (no ratio line)
# PROFILE_DIR=dir: enable edged's pprof endpoint and save a CPU profile of
# the first PROFILE_SECONDS (default 10) of each edged run, a heap profile
# right after it and one at the end as dir/edged-qosQ.{cpu,heap-mid,heap}.pprof.
set -euo pipefail
messages=1000000
only=
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2 ;;
    --qos) only=$2; shift 2 ;;
    *) echo "usage: $0 [--messages N] [--qos 0|1]" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
mpid=; epid=
trap 'kill -9 $mpid $epid 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $work" >&2 || rm -rf "$work"' EXIT
cd "$root"
go build -o "$work/edged" ./cmd/edged
go build -o "$work/pub" ./scripts/bench/pub
go build -o "$work/sub" ./scripts/bench/sub
go build -o "$work/waitfor" ./scripts/bench/waitfor
hz=$(getconf CLK_TCK)

mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 0
# QoS 1: let up to 1000 unacknowledged messages be in flight per client (the
# default is 20), as the README recommends: edged acknowledges after a group
# commit, so a larger window means bigger groups, fewer fsyncs per message.
max_inflight_messages 1000
persistence false
CONF
"$mosq" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 & mpid=$!
broker=tcp://127.0.0.1:$port
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
# cpu_per_million TICKS COUNT
cpu_per_million() { awk -v t=$1 -v hz=$hz -v n=$2 'BEGIN{printf "%.2f", t/hz*1e6/n}'; }

# bare QOS: prints "rate cpu_s_per_million"
bare() {
  local q=$1
  "$work/sub" --broker $broker --messages $messages --qos $q --id bare-$q > "$work/sub.out" 2> "$work/sub.err" & local spid=$!
  until grep -q ready "$work/sub.err" 2>/dev/null; do sleep 0.05; done
  local ts=$(date +%s.%N) m0=$(cpu_ticks $mpid)
  "$work/pub" --broker $broker --messages $messages --qos $q > "$work/pub.out"
  echo "bare QoS $q: publisher $(awk -v n=$messages '{printf "%.0f msg/s, %.2f CPU s per million", n/$1, $2*1e6/n}' "$work/pub.out")" >&2
  wait $spid || true
  echo "bare QoS $q: mosquitto CPU s per million: $(cpu_per_million $(( $(cpu_ticks $mpid) - m0 )) $messages)" >&2
  read -r cnt secs cpu last < "$work/sub.out"
  [ "$cnt" = "$messages" ] || echo "warning: bare subscriber got $cnt of $messages at QoS $q" >&2
  # rate: from the publisher's start to the last message handled
  awk -v n=$cnt -v a=$ts -v b=$last -v c=$cpu 'BEGIN{printf "%.0f %.2f\n", n/(b-a), c*1e6/n}'
}

# edged QOS: prints "rate cpu_s_per_million peak_rss_mb write_bytes_per_million"
edged_run() {
  local q=$1
  local d="$work/edged-$q"
  mkdir -p "$d/pipelines"
  cat > "$d/pipelines/bench.yaml" <<YAML
apiVersion: edged/v1
kind: Pipeline
metadata: {name: bench}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["sensors/{sensor}/reading", "sentinel/reading"], qos: $q}
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: number}
        - {name: ts, type: time}
        - {name: temp, type: number}
        - {name: hum, type: number}
      eventTime: ts
      watermark: 2s
  steps:
    - name: per-sensor
      input: readings
      window:
        type: tumbling
        size: 1s
        keys: [sensor]
        output: append
        aggregates:
          - n: count()
          - avg_temp: avg(temp)
          - max_temp: max(temp)
  sinks:
    - {name: out, input: per-sensor, type: file, path: windows.jsonl}
YAML
  local api=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$d/edged.yaml" <<YAML
storage: {sync: always}
mqtt: {brokers: [$broker], clientID: bench-edged-$q}
YAML
  [ -z "${PROFILE_DIR:-}" ] || echo "api: {pprof: true}" >> "$d/edged.yaml"
  "$work/edged" run -c "$d/edged.yaml" --data-dir "$d/data" --pipelines-dir "$d/pipelines" --api $api 2> "$d/edged.log" & epid=$!
  until curl -sf http://$api/api/v1/status 2>/dev/null | grep -Eq '"state": *"connected"'; do sleep 0.05; done
  local c0=$(cpu_ticks $epid) w0=$(awk '/^write_bytes/{print $2}' /proc/$epid/io) m0=$(cpu_ticks $mpid)
  local t0=$(date +%s.%N)
  "$work/pub" --broker $broker --messages $messages --qos $q > "$work/pub.out" &
  local ppid=$! prof=
  if [ -n "${PROFILE_DIR:-}" ]; then
    mkdir -p "$PROFILE_DIR"
    { curl -sf -o "$PROFILE_DIR/edged-qos$q.cpu.pprof" "http://$api/debug/pprof/profile?seconds=${PROFILE_SECONDS:-10}"
      curl -sf -o "$PROFILE_DIR/edged-qos$q.heap-mid.pprof" "http://$api/debug/pprof/heap"; } & prof=$!
  fi
  # rate: from the publisher's start to the last message in the durable log
  # (polled every 50 ms in-process: a curl per poll would load the machine)
  local t1
  t1=$("$work/waitfor" --url http://$api/metrics --metric edged_mqtt_handed_off_total --value $messages --timeout 900s) ||
    { echo "FAIL: edged did not hand off $messages messages within 900 s (QoS $q)" >&2; exit 1; }
  wait $ppid
  echo "edged QoS $q: publisher $(awk -v n=$messages '{printf "%.0f msg/s, %.2f CPU s per million", n/$1, $2*1e6/n}' "$work/pub.out")" >&2
  echo "edged QoS $q: mosquitto CPU s per million: $(cpu_per_million $(( $(cpu_ticks $mpid) - m0 )) $messages)" >&2
  # every window closed (the sentinel pushed the watermark an hour ahead)
  local sum=0
  for _ in $(seq 600); do
    sum=$(python3 - "$d/data/out/windows.jsonl" <<'PY'
import json,sys
s=0
try:
    for l in open(sys.argv[1]):
        r=json.loads(l)
        if r.get("sensor") is not None: s+=r["n"]
except FileNotFoundError: pass
print(s)
PY
)
    [ "$sum" -ge "$messages" ] && break
    sleep 0.1
  done
  local c1=$(cpu_ticks $epid) w1=$(awk '/^write_bytes/{print $2}' /proc/$epid/io)
  local hwm=$(awk '/^VmHWM/{print $2}' /proc/$epid/status)
  echo "edged QoS $q: at the end: $(awk '/^(VmRSS|RssAnon|RssFile|RssShmem)/{printf "%s %d MB  ", $1, $2/1024}' /proc/$epid/status)" >&2
  if [ -n "$prof" ]; then
    wait $prof || true
    curl -sf -o "$PROFILE_DIR/edged-qos$q.heap.pprof" "http://$api/debug/pprof/heap" || true
  fi
  curl -sf http://$api/metrics | awk -v q=$q '/^edged_storage_bytes_written_by_kind_total/{split($1,a,"\""); printf "edged QoS %s: storage wrote %s: %.0f bytes\n", q, a[2], $2}' >&2 || true
  kill -TERM $epid; wait $epid || true; epid=
  if [ "$sum" != "$messages" ]; then echo "FAIL: edged window counts add up to $sum; sent $messages (QoS $q)" >&2; exit 1; fi
  echo "edged QoS $q: window outputs add up to $sum = messages sent" >&2
  awk -v n=$messages -v a=$t0 -v b=$t1 'BEGIN{printf "%.0f ", n/(b-a)}'
  cpu_per_million $((c1 - c0)) $messages
  awk -v k=$hwm -v w=$((w1 - w0)) -v n=$messages 'BEGIN{printf " %.1f %.0f\n", k/1024, w*1e6/n}'
}

if [ -n "$only" ]; then
  read -r b bc < <(bare $only)
  echo "bare  QoS $only: $b msg/s, $bc CPU s per million"
  read -r e ec rss wb < <(edged_run $only)
  echo "edged QoS $only: $e msg/s, $ec CPU s per million, peak RSS $rss MB, $wb bytes written per million"
  awk -v e=$e -v b=$b -v c=$ec -v bc=$bc 'BEGIN{printf "ratio=%.2f cpu_ratio=%.2f\n", e/b, c/bc}'
  exit 0
fi
read -r b0 bc0 < <(bare 0)
echo "bare  QoS 0: $b0 msg/s, $bc0 CPU s per million"
read -r e0 ec0 rss0 wb0 < <(edged_run 0)
echo "edged QoS 0: $e0 msg/s, $ec0 CPU s per million, peak RSS $rss0 MB, $wb0 bytes written per million"
read -r b1 bc1 < <(bare 1)
echo "bare  QoS 1: $b1 msg/s, $bc1 CPU s per million"
read -r e1 ec1 rss1 wb1 < <(edged_run 1)
echo "edged QoS 1: $e1 msg/s, $ec1 CPU s per million, peak RSS $rss1 MB, $wb1 bytes written per million"
awk -v e0=$e0 -v b0=$b0 -v e1=$e1 -v b1=$b1 -v c0=$ec0 -v bc=$bc0 -v r0=$rss0 -v r1=$rss1 'BEGIN{
  m = r0 > r1 ? r0 : r1
  printf "qos0_ratio=%.2f qos1_ratio=%.2f cpu_ratio=%.2f peak_rss_mb=%.0f\n", e0/b0, e1/b1, c0/bc, m }'
