#!/usr/bin/env bash
# Crash harness (issue 4): runs real edged processes over a fixed input of
# RECORDS records across 1,000 keys through a pipeline with a DStream window
# and updateStateByKey, SIGKILLs edged at random points KILLS times (seeded),
# restarts it each time, and compares the final outputs (by id and content)
# with a run that was never killed. Epochs run in virtual time with a fixed
# number of records each (--virtual-time --epoch-records), so both runs cut
# the same epochs. Last line: kills=K lost=L duplicated=D mismatched=M.
#
#   scripts/chaos/crash.sh [--seed N] [--kills K] [--records N] [--source file|mqtt|embedded [--rate R]]
#                          [--pipeline dstream|events] [--max-outputs N]
#
# --pipeline events (file source) runs scripts/chaos/pipeline-events.yaml
# instead: a filter and an append-mode event-time window, whose epochs the
# node feeds to the executor in chunks of 300 records (epochs.feedRecords),
# so kills also land between the chunks of an epoch. --max-outputs N sets
# epochs.maxOutputs (file source): with N below a window's rows, every
# window waits for an epoch of its own, so kills also land while closed
# windows wait to be emitted.
#
# --source mqtt publishes the input through a real mosquitto at QoS 1 while
# edged is killed (scripts/chaos/crash_mqtt.sh); --rate limits the
# publisher (records/s; default unlimited).
#
# --source embedded has 20 device clients publish the same input at QoS 1 to
# edged's own embedded broker, resending what was not acknowledged after
# each kill (scripts/chaos/crash_embedded.sh).
set -euo pipefail
seed=$(( (RANDOM << 15) | RANDOM )); kills=20; records=200000; source=file; rate=0; pipeline=dstream; maxout=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2;;
    --kills) kills=$2; shift 2;;
    --records) records=$2; shift 2;;
    --source) source=$2; shift 2;;
    --rate) rate=$2; shift 2;;
    --pipeline) pipeline=$2; shift 2;;
    --max-outputs) maxout=$2; shift 2;;
    *) echo "usage: $0 [--seed N] [--kills K] [--records N] [--source file|mqtt|embedded [--rate R]] [--pipeline dstream|events] [--max-outputs N]" >&2; exit 2;;
  esac
done
case "$pipeline" in
  dstream|events) ;;
  *) echo "$0: --pipeline must be dstream or events" >&2; exit 2;;
esac
case "$source" in
  file) ;;
  mqtt) exec bash "$(dirname "$0")/crash_mqtt.sh" --seed "$seed" --kills "$kills" --records "$records" --rate "$rate";;
  embedded) exec bash "$(dirname "$0")/crash_embedded.sh" --seed "$seed" --kills "$kills" --records "$records" --rate "$rate";;
  *) echo "$0: --source must be file, mqtt or embedded" >&2; exit 2;;
esac
echo "seed=$seed kills=$kills records=$records pipeline=$pipeline$( [ "$maxout" = 0 ] || echo " max_outputs=$maxout")"
RANDOM=$seed
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
# The work directory (data dirs and edged logs) is kept when the run fails.
trap 'rc=$?; kill -9 $pid 2>/dev/null || true; if [ $rc = 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi' EXIT
pid=
cd "$root"
go build -o "$work/edged" ./cmd/edged
mkdir -p "$work/pipelines"
if [ "$pipeline" = events ]; then
  go run ./scripts/chaos/gen -n "$records" -keys 1000 -ts > "$work/input.jsonl"
  cp scripts/chaos/pipeline-events.yaml "$work/pipelines/"
  feed="epochs: {feedRecords: 300, maxOutputs: $maxout}"
else
  go run ./scripts/chaos/gen -n "$records" -keys 1000 > "$work/input.jsonl"
  cp scripts/chaos/pipeline.yaml "$work/pipelines/"
  feed="epochs: {maxOutputs: $maxout}"
fi
cat > "$work/edged.yaml" <<YAML
storage: {sync: always}
api: {listen: ""}
$feed
YAML
total=$(wc -l < "$work/input.jsonl")

# run DIR: start edged on DIR in the background; sets pid.
run() {
  "$work/edged" run -c "$work/edged.yaml" --data-dir "$1" --pipelines-dir "$work/pipelines" \
    --input "$work/input.jsonl" --virtual-time --epoch-records 2000 >/dev/null 2>>"$1.log" &
  pid=$!
}
# done DIR: the whole input is consumed and every output delivered.
finished() {
  local out=$1/out
  [ -f "$1.log" ] && grep -q 'input file appended' "$1.log" || return 1
  # every record is in an epoch: the totals sink has written the last epoch
  # (records/5000 epochs, rounded up), and nothing is left in the spool.
  local epochs=$(( (total + 1999) / 2000 ))
  if [ "$pipeline" = events ]; then
    # The window before the last (the watermark never passes the last one).
    local last=$(( (total - 1) / 1000 * 1000 - 1000 ))
    grep -q "\"window_start\":$last," "$out/win.jsonl" 2>/dev/null || return 1
  else
    grep -q "\"_id\":\"chaos/0/1/$epochs/" "$out/tot.jsonl" 2>/dev/null || return 1
  fi
}
wait_finished() {
  local deadline=$(( SECONDS + 600 ))
  until finished "$1"; do
    [ $SECONDS -lt $deadline ] || { echo "timeout waiting for $1" >&2; exit 1; }
    sleep 0.2
  done
  sleep 1 # let the sinks drain the last batch (the spool is re-delivered on restart anyway)
  kill -TERM $pid; wait $pid || true
}

run "$work/ref"; wait_finished "$work/ref"

k=0; mid=0
run "$work/crash"
while [ $k -lt "$kills" ]; do
  sleep "0.$(printf %03d $(( RANDOM % 130 + 20 )))"
  finished "$work/crash" || mid=$((mid + 1))
  kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  k=$((k + 1))
  run "$work/crash"
done
echo "kills before the input was fully processed: $mid of $k"
wait_finished "$work/crash"
# A final clean restart delivers anything spooled but not yet written.
run "$work/crash"; sleep 2; kill -TERM $pid; wait $pid || true
go run ./scripts/chaos/compare -kills "$k" "$work/ref/out" "$work/crash/out"
