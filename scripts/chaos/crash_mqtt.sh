#!/usr/bin/env bash
# Crash harness, MQTT source (issue 5): `scripts/chaos/crash.sh --source mqtt`
# runs this. The fixed input (RECORDS readings over 1,000 keys, each payload
# unique by its sequence number, then a sentinel an hour of event time
# later) is published at QoS 1 through a real mosquitto configured as the
# docs require (max_queued_messages 0, persistence true) while edged is
# SIGKILLed at random points KILLS times (seeded) and restarted on the same
# data dir with the same client id, so its persistent session resumes. The
# final outputs are compared with a run on a fresh broker and data dir that
# was never killed.
#
# Epoch boundaries of a live MQTT run depend on arrival timing, so the
# pipeline (pipeline-mqtt.yaml) only produces outputs that do not: event-time
# tumbling windows in append mode (matched by window_start+sensor) and a
# per-record pass-through (matched by seq). Ids may differ between the runs;
# within the crashed run a logical key seen twice counts as duplicated.
# Last line: kills=K lost=L duplicated=D mismatched=M.
#
#   scripts/chaos/crash_mqtt.sh [--seed N] [--kills K] [--records N] [--rate R]
#
# Negative controls (they must make the harness fail; they apply to the
# crashed run only): --max-queued N gives its broker mosquitto's limit of N
# queued messages per offline client (the default is 1000: expect lost > 0);
# --dedup-horizon -1 turns off edged's redelivery dedup (expect
# duplicated > 0).
set -euo pipefail
seed=$(( (RANDOM << 15) | RANDOM )); kills=20; records=200000; rate=0
maxq=0; horizon=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2;;
    --kills) kills=$2; shift 2;;
    --records) records=$2; shift 2;;
    --rate) rate=$2; shift 2;;
    --max-queued) maxq=$2; shift 2;;
    --dedup-horizon) horizon=$2; shift 2;;
    *) echo "usage: $0 [--seed N] [--kills K] [--records N] [--rate R]" >&2; exit 2;;
  esac
done
echo "seed=$seed kills=$kills records=$records source=mqtt"
RANDOM=$seed
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pid=; mpid=; ppid=
# The work directory (data dirs, broker and edged logs) is kept when the run fails.
trap 'rc=$?; kill -9 $pid $mpid $ppid 2>/dev/null || true; if [ $rc = 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi' EXIT
cd "$root"
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosq" ] || { echo "mosquitto not found (apt-get install -y mosquitto mosquitto-clients)" >&2; exit 2; }
go build -o "$work/edged" ./cmd/edged
go build -o "$work/pub" ./scripts/chaos/mqttpub
mkdir -p "$work/pipelines"; cp scripts/chaos/pipeline-mqtt.yaml "$work/pipelines/chaos.yaml"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# setup NAME [MAXQ [HORIZON]]: a fresh mosquitto (sets mpid, broker) and
# edged config for run NAME.
setup() {
  local d="$work/$1-mosq" port; port=$(free_port)
  local storage="sync: always"
  [ "${3:-0}" = 0 ] || storage="$storage, dedupHorizon: $3"
  mkdir -p "$d"
  {
    echo "listener $port 127.0.0.1"
    echo "allow_anonymous true"
    # as documented: never drop queued QoS 1 messages of an offline
    # persistent client, and keep sessions and queues across a broker restart
    echo "max_queued_messages ${2:-0}"
    echo "max_inflight_messages 100"
    echo "persistence true"
    echo "persistence_location $d/"
    echo "log_dest file $d/mosquitto.log"
    # as root, mosquitto drops privileges to user "mosquitto", which cannot
    # write the work directory
    [ "$(id -u)" != 0 ] || echo "user $(id -un)"
  } > "$d/mosquitto.conf"
  "$mosq" -c "$d/mosquitto.conf" >> "$d/mosquitto.log" 2>&1 & mpid=$!
  for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  broker=tcp://127.0.0.1:$port
  api=127.0.0.1:$(free_port)
  cat > "$work/$1.yaml" <<YAML
storage: {$storage}
api: {listen: "$api"}
mqtt: {brokers: ["$broker"], clientID: chaos-$1}
YAML
}
# run NAME: start edged for run NAME in the background; sets pid.
run() {
  "$work/edged" run -c "$work/$1.yaml" --data-dir "$work/$1" --pipelines-dir "$work/pipelines" \
    >/dev/null 2>>"$work/$1.log" &
  pid=$!
}
metric() { awk -v m="$1" '$1 == m {print $2; exit}' "$work/metrics"; }
wait_connected() {
  local deadline=$(( SECONDS + 60 ))
  until curl -sf "http://$api/api/v1/status" 2>/dev/null | grep -Eq '"state": *"connected"'; do
    [ $SECONDS -lt $deadline ] || { echo "edged did not connect to $broker within 60 s" >&2; exit 2; }
    sleep 0.05
  done
}
# drained NAME: nothing is in flight from the broker or left in a spool.
drained() {
  curl -sf "http://$api/metrics" > "$work/metrics" 2>/dev/null || return 1
  [ "$(metric edged_mqtt_in_flight)" = 0 ] || return 1
  [ "$(awk '/^edged_sink_spool_depth/ && $2 != 0' "$work/metrics")" = "" ] || return 1
}
# wait_finished NAME: wait for the publisher, then until the sentinel (seq
# RECORDS, published after the broker acknowledged every reading) is in the
# pass-through output and everything is drained, twice a second apart. If
# the sentinel never comes (it was lost), the run is done once drained with
# no output growth for 10 s; the comparison then shows the loss.
wait_finished() {
  wait $ppid || { echo "publisher failed" >&2; exit 2; }
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
  # counters of the last edged process only
  awk -v run="$1" '/^edged_step_records_late_total/ {late += $2}
    $1 == "edged_mqtt_redelivered_total" {re = $2} $1 == "edged_ingest_dedup_dropped_total" {dd = $2}
    END {printf "%s (last process): late=%d redelivered=%d dedup_dropped=%d\n", run, late, re, dd}' "$work/metrics" >&2
  kill -TERM $pid; wait $pid || true
  kill -TERM $mpid; wait $mpid || true
}
publish() { "$work/pub" --broker "$broker" -n "$records" -keys 1000 -rate "$rate" >&2 & ppid=$!; }

# Reference: never killed.
setup ref; run ref; wait_connected; publish; wait_finished ref

# Crashed run: edged subscribes once (creating its persistent session), then
# the publisher starts and edged is killed and restarted KILLS times.
setup crash "$maxq" "$horizon"; run crash; wait_connected; publish
k=0; mid=0
while [ $k -lt "$kills" ]; do
  sleep "0.$(printf %03d $(( RANDOM % 800 + 50 )))"
  kill -0 $ppid 2>/dev/null && mid=$((mid + 1))
  kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  k=$((k + 1))
  run crash
done
echo "kills while the publisher was running: $mid of $k" >&2
wait_finished crash
go run ./scripts/chaos/compare -kills "$k" -key win.jsonl=window_start,sensor -key pass.jsonl=seq \
  -rows pass.jsonl=$((records + 1)) -sum win.jsonl:n=$records "$work/ref/out" "$work/crash/out"
