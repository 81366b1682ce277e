# Shared by the MQTT crash harnesses (crash_mqtt.sh, crash_embedded.sh):
# source it after setting work, records, and the pid variables pid and ppid.
# Each run NAME has its config $work/NAME.yaml, data dir $work/NAME, log
# $work/NAME.log and pass-through output $work/NAME/out/pass.jsonl; api is
# the host:port of the running edged's API.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME: start edged for run NAME in the background; sets pid.
run() {
  "$work/edged" run -c "$work/$1.yaml" --data-dir "$work/$1" --pipelines-dir "$work/pipelines" \
    >/dev/null 2>>"$work/$1.log" &
  pid=$!
}

metric() { awk -v m="$1" '$1 == m {print $2; exit}' "$work/metrics"; }

# wait_state STATE WHAT: poll the API until edged's MQTT state is STATE
# ("connected" to a broker, "listening" as the embedded broker).
wait_state() {
  local deadline=$(( SECONDS + 60 ))
  until curl -sf "http://$api/api/v1/status" 2>/dev/null | grep -Eq "\"state\": *\"$1\""; do
    [ $SECONDS -lt $deadline ] || { echo "$2 within 60 s" >&2; exit 2; }
    sleep 0.05
  done
}

# drained: nothing is in flight from the broker or left in a spool.
drained() {
  curl -sf "http://$api/metrics" > "$work/metrics" 2>/dev/null || return 1
  [ "$(metric edged_mqtt_in_flight)" = 0 ] || return 1
  [ "$(awk '/^edged_sink_spool_depth/ && $2 != 0' "$work/metrics")" = "" ] || return 1
}

# wait_finished NAME: wait for the publisher (ppid), then until the sentinel
# (seq RECORDS, published after the broker acknowledged every reading) is in
# the pass-through output and everything is drained, twice a second apart.
# If the sentinel never comes (it was lost), the run is done once drained
# with no output growth for 10 s; the comparison then shows the loss.
# Prints the last edged process's counters and stops it.
wait_finished() {
  wait $ppid || { echo "publisher failed" >&2; exit 2; }
  ppid=
  local deadline=$(( SECONDS + 300 )) ok=0 idle=0 size=-1 s
  while [ $ok -lt 2 ] && [ $idle -lt 10 ]; do
    s=$(stat -c %s "$work/$1/out/pass.jsonl" 2>/dev/null || echo 0)
    if drained; then
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

# crash_loop NAME KILLS: SIGKILL edged at seeded random points KILLS times,
# restarting run NAME each time; sets k (kills done).
crash_loop() {
  k=0
  local mid=0
  while [ $k -lt "$2" ]; do
    sleep "0.$(printf %03d $(( RANDOM % 800 + 50 )))"
    kill -0 $ppid 2>/dev/null && mid=$((mid + 1))
    kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
    k=$((k + 1))
    run "$1"
  done
  echo "kills while the publisher was running: $mid of $k" >&2
}

# compare_runs: the crashed run's outputs against the reference run's
# (pipeline-mqtt.yaml: windows matched by window_start+sensor, the
# pass-through by seq). Last line: kills=K lost=L duplicated=D mismatched=M.
compare_runs() {
  go run ./scripts/chaos/compare -kills "$k" -key win.jsonl=window_start,sensor -key pass.jsonl=seq \
    -rows pass.jsonl=$((records + 1)) -sum win.jsonl:n=$records "$work/ref/out" "$work/crash/out"
}
