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

. scripts/chaos/lib.sh

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
publish() {
  "$work/devices" --broker "$broker" -n "$records" -keys 1000 -devices "$devices" -rate "$rate" >&2 & ppid=$!
}

# Reference: never killed.
setup ref; run ref; wait_state listening "edged's embedded broker did not listen"; publish; wait_finished ref

# Crashed run: the devices start once edged listens; edged is killed and
# restarted KILLS times on the same port while they publish and resend.
setup crash "$horizon"; run crash; wait_state listening "edged's embedded broker did not listen"; publish
crash_loop crash "$kills"
wait_finished crash
compare_runs
