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

. scripts/chaos/lib.sh

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
publish() { "$work/pub" --broker "$broker" -n "$records" -keys 1000 -rate "$rate" >&2 & ppid=$!; }

# Reference: never killed.
setup ref; run ref; wait_state connected "edged did not connect to $broker"; publish; wait_finished ref; kill -TERM $mpid; wait $mpid || true

# Crashed run: edged subscribes once (creating its persistent session), then
# the publisher starts and edged is killed and restarted KILLS times.
setup crash "$maxq" "$horizon"; run crash; wait_state connected "edged did not connect to $broker"; publish
crash_loop crash "$kills"
wait_finished crash; kill -TERM $mpid; wait $mpid || true
compare_runs
