#!/usr/bin/env bash
# Embedded-broker QoS 1 benchmark (issue 11): messages per second that
# CLIENTS device clients (scripts/chaos/devices, each with WINDOW publishes
# in flight) get acknowledged by edged's embedded broker, for 1, 10 and 100
# clients, comparing this tree (PUBACK only once the message is in the
# durable input log, storage sync: always) with an older revision (OLD,
# default c325e8d: PUBACK on arrival, a loopback MQTT client feeding the
# log) in the same run, alternating. The pipeline counts messages per sensor
# per second (little output). Last lines: one per client count,
#   clients=C old_msgs_per_s=A new_msgs_per_s=B ratio=B/A
# Usage: scripts/bench/broker.sh [--messages N] [--window W] [--old REV] [--clients "1 10 100"]
set -euo pipefail
messages=40000; window=256; old=c325e8d; clients="1 10 100"
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --old) old=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    *) echo "usage: $0 [--messages N] [--window W] [--old REV] [--clients LIST]" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
epid=
trap 'kill -9 $epid 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$root"
go build -o "$work/new" ./cmd/edged
mkdir -p "$work/oldsrc"
git archive "$old" | tar -x -C "$work/oldsrc"
(cd "$work/oldsrc" && go build -o "$work/old" ./cmd/edged)
go build -o "$work/devices" ./scripts/chaos/devices
mkdir -p "$work/pipelines"
cat > "$work/pipelines/count.yaml" <<'YAML'
apiVersion: edged/v1
kind: Pipeline
metadata: {name: count}
spec:
  interval: 1s
  sources:
    - name: readings
      mqtt: {topics: ["chaos/{sensor}"], qos: 1}
      fields:
        - {name: sensor, type: string}
        - {name: seq, type: number}
  steps:
    - name: per-sensor
      input: readings
      dstreamWindow: {op: countByValueAndWindow, size: 1s, slide: 1s, value: sensor}
  sinks:
    - {name: out, input: per-sensor, type: file, path: counts.jsonl}
YAML
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# one BIN CLIENTS: msgs/s of one run on a fresh data dir.
one() {
  local port api d="$work/data-$1-$2"; port=$(free_port); api=127.0.0.1:$(free_port)
  rm -rf "$d"
  printf 'storage: {sync: always}\napi: {listen: "%s"}\nmqtt: {listen: "127.0.0.1:%s", clientID: bench}\n' "$api" "$port" > "$work/e.yaml"
  "$work/$1" run -c "$work/e.yaml" --data-dir "$d" --pipelines-dir "$work/pipelines" >/dev/null 2>"$work/$1.log" &
  epid=$!
  local deadline=$(( SECONDS + 60 ))
  # ready, and (old) its loopback client subscribed or (new) the broker open
  until curl -sf "http://$api/api/v1/status" 2>/dev/null | grep -Eq '"state": *"(connected|listening)"'; do
    [ $SECONDS -lt $deadline ] || { echo "$1 did not start" >&2; cat "$work/$1.log" >&2; exit 2; }
    sleep 0.05
  done
  local out secs
  out=$("$work/devices" --broker "tcp://127.0.0.1:$port" -n "$messages" -devices "$2" -window "$window")
  echo "$1 clients=$2: $out" >&2
  secs=$(sed -n 's/.* in \([0-9.]*\)s;.*/\1/p' <<< "$out")
  kill -TERM $epid; wait $epid || true; epid=
  rm -rf "$d"
  awk -v n="$messages" -v s="$secs" 'BEGIN {printf "%.0f", n / s}'
}

echo "messages=$messages window=$window old=$old storage.sync=always" >&2
declare -A res
for c in $clients; do
  res[old-$c]=$(one old "$c")
  res[new-$c]=$(one new "$c")
  echo "clients=$c old=${res[old-$c]} new=${res[new-$c]}" >&2
done
for c in $clients; do
  awk -v c="$c" -v a="${res[old-$c]}" -v b="${res[new-$c]}" \
    'BEGIN {printf "clients=%s old_msgs_per_s=%s new_msgs_per_s=%s ratio=%.2f\n", c, a, b, b / a}'
done
