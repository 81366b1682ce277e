#!/usr/bin/env bash
# Crash harness, embedded broker (issue 11): `scripts/chaos/crash.sh --source
# embedded` runs this. DEVICES device clients (scripts/chaos/devices) publish
# the fixed input (RECORDS readings over 1,000 keys, each payload unique by
# its sequence number, then a sentinel an hour of event time later) at QoS 1
# to edged's own embedded broker, with no broker configured, while edged is
# SIGKILLed at random points KILLS times (seeded) and restarted on the same
# data dir and port. Like real devices, they reconnect and resend every
# message that was not acknowledged. The embedded broker acknowledges a
# message only once it is in the durable input log, so nothing acknowledged
# may be lost; resent copies must be dropped by the input log's dedup. The
# final outputs are compared with a run that was never killed, as for
# --source mqtt (pipeline-mqtt.yaml: event-time windows matched by
# window_start+sensor, a pass-through matched by seq).
# Last line: kills=K lost=L duplicated=D mismatched=M.
#
#   scripts/chaos/crash_embedded.sh [--seed N] [--kills K] [--records N] [--rate R] [--devices D]
#
# Negative control: --dedup-horizon -1 turns off edged's redelivery dedup in
# the crashed run (expect duplicated > 0).
set -euo pipefail
seed=$(( (RANDOM << 15) | RANDOM )); kills=20; records=200000; rate=0; devices=20; horizon=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2;;
    --kills) kills=$2; shift 2;;
    --records) records=$2; shift 2;;
    --rate) rate=$2; shift 2;;
    --devices) devices=$2; shift 2;;
    --dedup-horizon) horizon=$2; shift 2;;
    *) echo "usage: $0 [--seed N] [--kills K] [--records N] [--rate R] [--devices D]" >&2; exit 2;;
  esac
done
echo "seed=$seed kills=$kills records=$records devices=$devices source=embedded"
RANDOM=$seed
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pid=; ppid=
# The work directory (data dirs and edged logs) is kept when the run fails.
trap 'rc=$?; kill -9 $pid $ppid 2>/dev/null || true; if [ $rc = 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi' EXIT
cd "$root"
go build -o "$work/edged" ./cmd/edged
go build -o "$work/devices" ./scripts/chaos/devices
mkdir -p "$work/pipelines"; cp scripts/chaos/pipeline-mqtt.yaml "$work/pipelines/chaos.yaml"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# setup NAME [HORIZON]: edged config for run NAME with its embedded broker on
# a free port (sets broker, api).
setup() {
  local storage="sync: always" port; port=$(free_port)
  [ "${2:-0}" = 0 ] || storage="$storage, dedupHorizon: $2"
  broker=tcp://127.0.0.1:$port
  api=127.0.0.1:$(free_port)
  cat > "$work/$1.yaml" <<YAML
storage: {$storage}
api: {listen: "$api"}
mqtt: {listen: "127.0.0.1:$port"}
YAML
}
# run NAME: start edged for run NAME in the background; sets pid.
run() {
  "$work/edged" run -c "$work/$1.yaml" --data-dir "$work/$1" --pipelines-dir "$work/pipelines" \
    >/dev/null 2>>"$work/$1.log" &
  pid=$!
}
metric() { awk -v m="$1" '$1 == m {print $2; exit}' "$work/metrics"; }
wait_listening() {
  local deadline=$(( SECONDS + 60 ))
  until curl -sf "http://$api/api/v1/status" 2>/dev/null | grep -Eq '"state": *"listening"'; do
    [ $SECONDS -lt $deadline ] || { echo "edged's embedded broker did not listen within 60 s" >&2; exit 2; }
    sleep 0.05
  done
}
# drained: nothing waits for the input log or in a spool.
drained() {
  curl -sf "http://$api/metrics" > "$work/metrics" 2>/dev/null || return 1
  [ "$(metric edged_mqtt_in_flight)" = 0 ] || return 1
  [ "$(awk '/^edged_sink_spool_depth/ && $2 != 0' "$work/metrics")" = "" ] || return 1
}
# wait_finished NAME: as in crash_mqtt.sh: wait for the devices, then until
# the sentinel is in the pass-through output and everything is drained, twice
# a second apart (or no output growth for 10 s).
wait_finished() {
  wait $ppid || { echo "devices failed" >&2; exit 2; }
  ppid=
  local deadline=$(( SECONDS + 300 )) ok=0 idle=0 size=-1 s
  while [ $ok -lt 2 ] && [ $idle -lt 10 ]; do
    s=$(stat -c %s "$work/$1/out/pass.jsonl" 2>/dev/null || echo 0)
    if drained "$1"; then
      if grep -qF "\"seq\":$records," "$work/$1/out/pass.jsonl" 2>/dev/null; then ok=$((ok + 1)); else ok=0; fi
      if [ "$s" = "$size" ]; then idle=$((idle + 1)); else idle=0; fi
    else
      ok=0; idle=0
    fi
    size=$s
    [ $SECONDS -lt $deadline ] || { echo "timeout: run $1 did not finish within 300 s" >&2; break; }
    sleep 1
  done
  [ $ok -ge 2 ] || echo "$1: the sentinel never reached the output; comparing what arrived" >&2
  awk -v run="$1" '/^edged_step_records_late_total/ {late += $2}
    $1 == "edged_mqtt_redelivered_total" {re = $2} $1 == "edged_ingest_dedup_dropped_total" {dd = $2}
    $1 == "edged_mqtt_broker_handoff_batches_total" {b = $2} $1 == "edged_mqtt_handed_off_total" {h = $2}
    END {printf "%s (last process): late=%d redelivered=%d dedup_dropped=%d handed_off=%d batches=%d\n", run, late, re, dd, h, b}' "$work/metrics" >&2
  kill -TERM $pid; wait $pid || true
}
publish() {
  "$work/devices" --broker "$broker" -n "$records" -keys 1000 -devices "$devices" -rate "$rate" >&2 & ppid=$!
}

# Reference: never killed.
setup ref; run ref; wait_listening; publish; wait_finished ref

# Crashed run: the devices start once edged listens; edged is killed and
# restarted KILLS times on the same port while they publish and resend.
setup crash "$horizon"; run crash; wait_listening; publish
k=0; mid=0
while [ $k -lt "$kills" ]; do
  sleep "0.$(printf %03d $(( RANDOM % 800 + 50 )))"
  kill -0 $ppid 2>/dev/null && mid=$((mid + 1))
  kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  k=$((k + 1))
  run crash
done
echo "kills while the devices were publishing: $mid of $k" >&2
wait_finished crash
go run ./scripts/chaos/compare -kills "$k" -key win.jsonl=window_start,sensor -key pass.jsonl=seq \
  -rows pass.jsonl=$((records + 1)) -sum win.jsonl:n=$records "$work/ref/out" "$work/crash/out"
