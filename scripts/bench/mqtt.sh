#!/usr/bin/env bash
# MQTT end-to-end benchmark, measured to what a user receives: edged
# computing count, avg(temp), max(temp) per sensor per 1 s tumbling window,
# its window outputs published by an `mqtt` sink and received by a separate
# subscriber (scripts/bench/outs) that stops the clock on the output that
# completes the count, against a bare paho subscriber (scripts/bench/sub,
# configured like edged's MQTT source: OrderMatters, persistent session,
# 30 s keepalive, and by default edged's buffered reads) that stops the
# clock on the last message. Same publisher (scripts/bench/pub: at QoS 0 a
# minimal MQTT writer far cheaper than paho, so that it does not set the
# rate; paho at QoS 1), same messages: --messages readings over --sensors
# sensors with synthetic event times, --per-window readings per sensor in each
# 1 s window, then a final reading per sensor an hour later so every window
# closes. The parts run in one run, one after the other:
#   qos0      (a) mosquitto -> bare subscriber; (b) mosquitto -> edged;
#             (p) mosquitto -> scripts/bench/plain, the same windows in
#             memory (no log, no state) with its outputs through mosquitto
#             to the same outside subscriber: the ceiling of (b) when
#             mosquitto is the bottleneck; --rounds times (default 3),
#             alternating a, b, p, a, b, p, ...; then
#             (c) publisher -> edged's embedded broker
#   embedded  edged's embedded broker, QoS 1, K concurrent publishers (--clients)
#   drain     QoS 1: N messages queued in mosquitto for persistent sessions
#             while the subscribers are offline, then the drain timed from
#             process start to the last message (a) / last output (b)
#   sliding   edged with a 60 s window sliding by 1 s over the sensors (peak RSS)
#   catchup   `edged run --input` over the same readings as a file, to the
#             last output, against `edged batch` over the same file
# Rate = readings / (publish start, or process start for drain and catchup,
# to the end); CPU = user+system ticks of the process under test from
# /proc/PID/stat at the start and at the end of that same interval; peak RSS =
# VmHWM. A part whose counts do not add up (readings lost or counted twice)
# prints a FAIL line and its ratio shows FAIL; the other parts still run and
# the script exits 1 at the end. The windows of the finals, which edged's idle
# rule closes once the input stopped, are left out of the counts (finals_ts). Last line:
#   qos0_ratio=R0 embedded_ratio=RE qos1_drain_ratio=R1 cpu_ratio=C peak_rss_mb=M
# R0 = (b)/(a), RE = (c)/(a), R1 = drain (b)/(a), C = CPU per reading (b)/(a)
# at QoS 0, M = the largest VmHWM of edged over all parts. R0 and C are the
# medians of the rounds' ratios (each round's (a) and (b) run back to back,
# so a ratio compares runs a minute apart: the machine's load drifts less
# within a round than between rounds); RE uses the last round's (a).
#
# Usage: scripts/bench/mqtt.sh [--messages N] [--sensors S] [--per-window R]
#          [--clients "1 10 100"] [--rounds N] [--only qos0,embedded,drain,sliding,catchup]
# PROFILE_DIR=dir: every edged process writes a CPU profile of its whole run
# (edged run -cpuprofile) to dir/edged-PART.cpu.pprof; the top entries of
# the QoS 0 part (b) and of the others are printed. BARE_CONN=paho gives
# the bare subscriber paho's own unbuffered connection instead of edged's
# buffered one (the default, so that edged's read buffering does not flatter
# the CPU ratio). KEEP_WORK=1 keeps the work directory (logs). HEAP_DIR=dir:
# edged serves pprof and dir/edged-PART.heap.pprof is its heap profile taken
# at the highest resident set seen (sampled every 250 ms).
set -euo pipefail
messages=1000000 sensors=1000 perwin=50 clients="1 10 100" rounds=3
only=qos0,embedded,drain,sliding,catchup
usage="usage: $0 [--messages N] [--sensors S] [--per-window R] [--clients \"1 10 100\"] [--rounds N] [--only qos0,embedded,drain,sliding,catchup]"
while [ $# -gt 0 ]; do
  case $1 in
    --messages) messages=$2; shift 2 ;;
    --sensors) sensors=$2; shift 2 ;;
    --per-window) perwin=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "FAIL: --rounds must be a positive whole number, got '$rounds'" >&2; exit 2; }
want() { [[ ",$only," == *",$1,"* ]]; }
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosq" ] || { echo "FAIL: mosquitto not found (apt-get install mosquitto)" >&2; exit 1; }
command -v curl > /dev/null || { echo "FAIL: curl not found" >&2; exit 1; }
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
cd "$root"
[ -z "${PROFILE_DIR:-}" ] || { mkdir -p "$PROFILE_DIR"; PROFILE_DIR=$(cd "$PROFILE_DIR" && pwd); }
[ -z "${HEAP_DIR:-}" ] || { mkdir -p "$HEAP_DIR"; HEAP_DIR=$(cd "$HEAP_DIR" && pwd); }
for t in pub sub outs plain; do go build -o "$work/$t" ./scripts/bench/$t; done
go build -o "$work/edged" ./cmd/edged
echo "load at start: $(uptime)"
bare_conn=${BARE_CONN:-edged}
echo "messages=$messages sensors=$sensors per_window=$perwin (+$sensors finals an hour later); bare subscriber connection: $bare_conn"
total=$((messages + sensors))

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() {
  for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done
  echo "FAIL: nothing listens on 127.0.0.1:$1 after 10 s ($2)" >&2; exit 1
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
waitready() { # FILE PID
  until grep -q ready "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { echo "FAIL: $(cat "$1")" >&2; exit 1; }
    sleep 0.02
  done
}

mport=$(freeport)
cat > "$work/mosquitto.conf" <<CONF
listener $mport 127.0.0.1
allow_anonymous true
# Never drop queued QoS 1 messages of an offline persistent session (the
# default keeps 1000), as the README tells users to configure.
max_queued_messages 0
max_inflight_messages 1000
persistence false
CONF
"$mosq" -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 & mpid=$!; pids+=($mpid)
disown $mpid # no "Killed" line when the trap stops it
waitport $mport "mosquitto -c $work/mosquitto.conf: $(cat "$work/mosquitto.log")"
mosquitto=tcp://127.0.0.1:$mport

# pipeline DIR QOS SOURCE_KIND [SLIDE]: writes DIR/pipelines/bench.yaml, a
# 1 s tumbling window (with SLIDE: a 60 s window sliding by SLIDE).
# SOURCE_KIND mqtt reads sensors/{sensor}/reading; file reads --input lines.
pipeline() {
  local d=$1 q=$2 kind=$3
  local win="type: tumbling
        size: 1s"
  [ -z "${4:-}" ] || win="type: sliding
        size: 60s
        slide: $4"
  local src="mqtt: {topics: [\"sensors/{sensor}/reading\"], qos: $q}"
  [ "$kind" = file ] && src="format: json"
  mkdir -p "$d/pipelines"
  cat > "$d/pipelines/bench.yaml" <<YAML
apiVersion: edged/v1
kind: Pipeline
metadata: {name: bench}
spec:
  interval: 1s
  sources:
    - name: readings
      $src
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
        $win
        keys: [sensor]
        output: append
        aggregates:
          - n: count()
          - avg_temp: avg(temp)
          - max_temp: max(temp)
  sinks:
    - {name: out, input: per-sensor, type: mqtt, topic: "out/{sensor}"}
YAML
}

# start_edged DIR CONFIG_YAML [ARGS...]: starts edged (pid in $epid, API in
# $api) and waits until its MQTT client is connected (or its embedded
# broker listens).
start_edged() {
  local d=$1 conf=$2; shift 2
  api=127.0.0.1:$(freeport)
  printf '%s\n' "$conf" > "$d/edged.yaml"
  [ -z "${HEAP_DIR:-}" ] || echo "api: {pprof: true}" >> "$d/edged.yaml"
  "$work/edged" run -c "$d/edged.yaml" --data-dir "$d/data" --pipelines-dir "$d/pipelines" --api $api $(profile_args "$d") "$@" 2>> "$d/edged.log" &
  epid=$!; pids+=($epid)
  [ -z "${HEAP_DIR:-}" ] || { heap_sampler "$(basename "$d")" $epid $api & pids+=($!); }
  for _ in $(seq 400); do
    curl -sf http://$api/api/v1/status 2>/dev/null | grep -Eq '"state": *"(connected|listening)"' && return 0
    kill -0 $epid 2>/dev/null || { echo "FAIL: edged exited: $(tail -3 "$d/edged.log")" >&2; exit 1; }
    sleep 0.05
  done
  echo "FAIL: edged's MQTT client did not connect within 20 s: $(tail -3 "$d/edged.log")" >&2; exit 1
}
# heap_sampler PART PID API: while edged runs, fetches its heap profile
# (/debug/pprof/heap) each time its resident set reaches a new high, to
# HEAP_DIR/edged-PART.heap.pprof: the heap as it was near the peak RSS.
heap_sampler() {
  local top=0 rss
  while kill -0 $2 2>/dev/null; do
    rss=$(awk '/^VmRSS/{print $2}' /proc/$2/status 2>/dev/null || echo 0)
    if [ "${rss:-0}" -gt $((top + 2048)) ]; then
      top=$rss
      curl -sf -o "$HEAP_DIR/edged-$1.heap.tmp" "http://$3/debug/pprof/heap" 2>/dev/null &&
        mv "$HEAP_DIR/edged-$1.heap.tmp" "$HEAP_DIR/edged-$1.heap.pprof" && grep -E "VmRSS|RssAnon|RssFile" /proc/$2/status > "$HEAP_DIR/edged-$1.heap.rss"
    fi
    sleep 0.25
  done
}
profile_args() { [ -z "${PROFILE_DIR:-}" ] || echo "-cpuprofile $PROFILE_DIR/edged-$(basename "$1").cpu.pprof"; }
# show_profile PART NODES: the top entries of edged's CPU profile of PART
show_profile() {
  local f="${PROFILE_DIR:-}/edged-$1.cpu.pprof"
  [ -n "${PROFILE_DIR:-}" ] && [ -s "$f" ] || return 0
  echo "-- edged CPU profile of $1 (whole process life; $f), top $2 by own time:"
  go tool pprof -top -nodecount=$2 "$work/edged" "$f" 2>/dev/null | sed -n "5,$(($2 + 6))p"
}
show_profile_cum() {
  local f="${PROFILE_DIR:-}/edged-$1.cpu.pprof"
  [ -n "${PROFILE_DIR:-}" ] && [ -s "$f" ] || return 0
  echo "-- same, top $2 by cumulative time:"
  go tool pprof -top -cum -nodecount=$2 "$work/edged" "$f" 2>/dev/null | sed -n "6,$(($2 + 6))p"
}
# log_reads: where edged's epochs read the input log (its in-memory tail or
# the file), from its metrics.
log_reads() {
  curl -sf http://$api/metrics 2>/dev/null | awk '/^edged_storage_log_reads_total/{split($1, a, "\""); r[a[2]]=$2} END{if (length(r)) printf "  input-log reads: %d from memory, %d from the file\n", r["memory"], r["file"]}' || true
}
stop_edged() { kill -TERM $epid 2>/dev/null || true; wait $epid 2>/dev/null || true; }

# after_pub: seconds from the publisher's end ($pstart + $pelapsed) to $end
after_pub() { awk -v s=$pstart -v e=$pelapsed -v t=$end 'BEGIN{printf "%.2f", t-s-e}'; }
fmt_rate() { awk -v n=$1 -v a=$2 -v b=$3 'BEGIN{printf "%.0f", n/(b-a)}'; }
fmt_cpu() { awk -v t=$1 -v n=$2 'BEGIN{printf "%.2f", t/100*1e6/n}'; } # ticks -> CPU s per million

# finals_ts PERWIN: the event time of the publisher's finals (unix ms). outs
# leaves the outputs of windows ending after it out of its sum: the windows
# of the finals, which edged's idle rule (idleTimeout, default 10 s) closes
# from about 13 s after the input stopped, each with n = 1. A run whose last
# window outputs take longer than that to arrive (the sliding part at a
# million readings) would otherwise count some of them and fail as if
# readings had been counted twice.
finals_ts() { "$work/pub" --messages $messages --sensors $sensors --per-window $1 --finals-ts; }
# finals_note N: says how many outputs of the finals' windows outs saw.
finals_note() { [ "${1:-0}" = 0 ] || echo " (+$1 outputs of the finals' windows, closed by the idle rule, not counted)"; }

failed=0
# lost MESSAGE: a part whose counts do not add up.
lost() { echo "FAIL: $*" >&2; failed=1; }
# median X...: the median of the ratios (FAIL if any is FAIL).
median() {
  case " $* " in *" FAIL "*) echo FAIL; return ;; esac
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{printf "%.2f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}
# ratio A B: A/B, or FAIL when either is missing.
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then awk -v a=$1 -v b=$2 'BEGIN{printf "%.2f", a/b}'; else echo FAIL; fi; }
# edged_warnings DIR: how often edged's MQTT client lost its connection.
edged_warnings() {
  local n; n=$(grep -c 'mqtt connection lost' "$1/edged.log" || true)
  [ "$n" = 0 ] || echo "  edged's MQTT client lost its connection $n times: $(grep -m1 'mqtt connection lost' "$1/edged.log" | sed 's/.*err=//')"
}

# bare QOS ID: (a) a bare subscriber already connected, publish, count.
# Sets rate cpu; returns 1 when readings were lost or duplicated.
bare() {
  local q=$1 id=$2
  "$work/sub" --broker $mosquitto --messages $total --qos $q --id $id --conn $bare_conn > "$work/sub.out" 2> "$work/sub.err" & local spid=$!; pids+=($spid)
  waitready "$work/sub.err" $spid
  local c0 m0; c0=$(ticks $spid) m0=$(ticks $mpid)
  "$work/pub" --broker $mosquitto --messages $messages --sensors $sensors --per-window $perwin --qos $q > "$work/pub.out"
  local ok=0; wait $spid || ok=$?
  mosq_cpu=$(fmt_cpu $(($(ticks $mpid) - m0)) $messages)
  read -r pstart pelapsed pcpu < "$work/pub.out"
  read -r cnt dups end t1 < "$work/sub.out"
  echo "  publisher: $(awk -v n=$total -v e=$pelapsed 'BEGIN{printf "%.0f", n/e}') msg/s, $pcpu CPU s; mosquitto $mosq_cpu CPU s per million; last reading $(after_pub) s after the last publish"
  if [ $ok != 0 ] || [ "$cnt" != $total ] || [ "$dups" != 0 ]; then
    lost "bare subscriber QoS $q counted $cnt of $total readings, $dups duplicates"; return 1
  fi
  rate=$(fmt_rate $messages $pstart $end) cpu=$(fmt_cpu $((t1 - c0)) $messages)
}

# outs_pub DIR PID PUB_BROKER QOS K EXPECT PERWIN: the outside subscriber
# on the outputs of process PID (edged or plain), then publish. Sets ok
# (0: the counts added up), c0 (PID's CPU ticks at the start), sum outputs
# dupouts end t1 hwm finouts (from outs), mosq_cpu, and pstart pelapsed pcpu
# (from the publisher).
outs_pub() {
  local d=$1 pid=$2 pubbroker=$3 q=$4 k=$5 expect=$6 pw=$7
  "$work/outs" --broker $pubbroker --expect $expect --finals $(finals_ts $pw) --pid $pid > "$d/outs.out" 2> "$d/outs.err" & local opid=$!; pids+=($opid)
  waitready "$d/outs.err" $opid
  local m0; c0=$(ticks $pid) m0=$(ticks $mpid)
  "$work/pub" --broker $pubbroker --messages $messages --sensors $sensors --per-window $pw --qos $q --clients $k > "$d/pub.out"
  ok=0; wait $opid || ok=$?
  mosq_cpu=$(fmt_cpu $(($(ticks $mpid) - m0)) $messages)
  read -r pstart pelapsed pcpu < "$d/pub.out"
  read -r sum outputs dupouts end t1 hwm finouts < "$d/outs.out"
}
# pub_line: the publisher's rate and CPU, and what outs counted.
pub_line() {
  echo "  publisher: $(awk -v n=$total -v e=$pelapsed 'BEGIN{printf "%.0f", n/e}') msg/s, $pcpu CPU s; $outputs window outputs add up to $sum readings$( [ "$dupouts" != 0 ] && echo " ($dupouts outputs delivered twice, same id)")$(finals_note $finouts)"
}

# edged_pub NAME QOS BROKER_CONF PUB_BROKER K [SLIDE EXPECT PERWIN]:
# (b)/(c) edged running, the outside subscriber on its outputs, publish.
# Sets rate cpu hwm_mb; returns 1 when the window counts do not add up.
edged_pub() {
  local name=$1 q=$2 conf=$3 pubbroker=$4 k=$5 win=${6:-} expect=${7:-$messages} pw=${8:-$perwin}
  local d="$work/$name"
  pipeline "$d" $q mqtt "$win"
  start_edged "$d" "$conf"
  outs_pub "$d" $epid $pubbroker $q $k $expect $pw
  log_reads
  stop_edged
  pub_line
  [ "$pubbroker" != "$mosquitto" ] || echo "  mosquitto $mosq_cpu CPU s per million; last output $(after_pub) s after the last publish"
  edged_warnings "$d"
  if [ $ok != 0 ]; then
    lost "$name: edged's window outputs add up to $sum readings, want $expect ($( [ "$sum" -lt "$expect" ] && echo lost || echo counted twice))"
    return 1
  fi
  rate=$(fmt_rate $messages $pstart $end) cpu=$(fmt_cpu $((t1 - c0)) $messages)
  hwm_mb=$(awk -v k=$hwm 'BEGIN{printf "%.1f", k/1024}')
  peak=$(awk -v a=$peak -v b=$hwm_mb 'BEGIN{print (b > a ? b : a)}')
}

# plain_pub NAME: (p) the same windows computed in memory by
# scripts/bench/plain, its outputs through mosquitto to the outside
# subscriber: the ceiling of (b). Sets rate cpu; returns 1 when the window
# counts do not add up.
plain_pub() {
  local d="$work/$1"; mkdir -p "$d"
  "$work/plain" --broker $mosquitto 2> "$d/plain.err" & local ppid=$!; pids+=($ppid)
  waitready "$d/plain.err" $ppid
  outs_pub "$d" $ppid $mosquitto 0 1 $messages $perwin
  kill -TERM $ppid 2>/dev/null || true; wait $ppid 2>/dev/null || true
  pub_line
  echo "  mosquitto $mosq_cpu CPU s per million; last output $(after_pub) s after the last publish"
  if [ $ok != 0 ]; then
    lost "$1: plain's window outputs add up to $sum readings, want $messages ($(sed -n 1p "$d/plain.err"))"
    return 1
  fi
  rate=$(fmt_rate $messages $pstart $end) cpu=$(fmt_cpu $((t1 - c0)) $messages)
}

peak=0
r0=- re=- r1=- cr=-
if want qos0; then
  echo "== QoS 0: publish start to the last message (a) / last window output (b, c)"
  c_rate= rratios= cratios= pratios=
  for round in $(seq $rounds); do
    [ $rounds = 1 ] || echo "-- round $round of $rounds"
    a_rate= a_cpu= b_rate= b_cpu= p_rate=
    if bare 0 bare-q0-$round-$$; then
      a_rate=$rate a_cpu=$cpu
      echo "(a) bare subscriber via mosquitto: $a_rate msg/s, $a_cpu CPU s per million"
    fi
    name=qos0-mosquitto; [ $round = 1 ] || name=qos0-mosquitto-$round
    if edged_pub $name 0 "mqtt: {brokers: [$mosquitto], clientID: bench-q0-$round-$$}" $mosquitto 1; then
      b_rate=$rate b_cpu=$cpu
      echo "(b) edged via mosquitto:          $b_rate msg/s, $b_cpu CPU s per million, peak RSS $hwm_mb MB"
    fi
    if plain_pub plain-$round; then
      p_rate=$rate
      echo "(p) plain in-memory windows:      $p_rate msg/s, $cpu CPU s per million (no log, no state: the ceiling of (b))"
    fi
    rr=$(ratio "$b_rate" "$a_rate") cc=$(ratio "$b_cpu" "$a_cpu") pp=$(ratio "$p_rate" "$a_rate")
    echo "   round $round: rate (b)/(a) $rr, CPU per reading (b)/(a) $cc; ceiling (p)/(a) $pp"
    rratios="$rratios $rr" cratios="$cratios $cc" pratios="$pratios $pp"
  done
  eport=$(freeport)
  if edged_pub qos0-embedded 0 "mqtt: {listen: 127.0.0.1:$eport, clientID: bench-e0-$$}" tcp://127.0.0.1:$eport 1; then
    c_rate=$rate
    echo "(c) edged, embedded broker:       $c_rate msg/s, $cpu CPU s per million, peak RSS $hwm_mb MB"
  fi
  r0=$(median $rratios) cr=$(median $cratios) re=$(ratio "$c_rate" "$a_rate") p0=$(median $pratios)
  echo "medians of $rounds rounds: rate (b)/(a) $r0 (rounds:$rratios), CPU per reading (b)/(a) $cr (rounds:$cratios)"
  echo "ceiling: rate (p)/(a) $p0 (rounds:$pratios): the same windows in memory, outputs through the same mosquitto"
  show_profile qos0-mosquitto 25
  show_profile_cum qos0-mosquitto 30
  show_profile qos0-embedded 12
fi

if want embedded; then
  echo "== embedded broker, QoS 1, K concurrent publishers: publish start to the last window output"
  for k in $clients; do
    eport=$(freeport)
    if edged_pub qos1-embedded-k$k 1 "mqtt: {listen: 127.0.0.1:$eport, clientID: bench-e1-$k-$$}" tcp://127.0.0.1:$eport $k; then
      echo "(c) K=$k: $rate msg/s, $cpu CPU s per million, peak RSS $hwm_mb MB"
    fi
    show_profile qos1-embedded-k$k 12
  done
fi

if want drain; then
  echo "== QoS 1 drain: $total messages queued in mosquitto while the subscribers were offline; process start to the last message (a) / last window output (b)"
  d="$work/drain"
  pipeline "$d" 1 mqtt
  "$work/sub" --broker $mosquitto --qos 1 --id bare-drain-$$ --setup
  start_edged "$d" "mqtt: {brokers: [$mosquitto], clientID: bench-drain-$$}"
  stop_edged
  "$work/pub" --broker $mosquitto --messages $messages --sensors $sensors --per-window $perwin --qos 1 --clients 10 > "$work/pub.out"
  echo "  queued by 10 QoS 1 publishers in $(awk '{print $2}' "$work/pub.out") s"
  da_rate= db_rate=
  t0=$(date +%s.%N)
  ok=0; "$work/sub" --broker $mosquitto --messages $total --qos 1 --id bare-drain-$$ --conn $bare_conn > "$work/sub.out" 2> "$work/sub.err" || ok=$?
  read -r cnt dups end t1 < "$work/sub.out"
  if [ $ok != 0 ] || [ "$cnt" != $total ] || [ "$dups" != 0 ]; then
    lost "bare subscriber drain counted $cnt of $total readings, $dups duplicates"
  else
    da_rate=$(fmt_rate $messages $t0 $end) da_cpu=$(fmt_cpu $t1 $messages)
    echo "(a) bare subscriber drain: $da_rate msg/s, $da_cpu CPU s per million"
  fi
  "$work/outs" --broker $mosquitto --expect $messages --finals $(finals_ts $perwin) --pid-file "$d/edged.pid" > "$d/outs.out" 2> "$d/outs.err" & opid=$!; pids+=($opid)
  waitready "$d/outs.err" $opid
  t0=$(date +%s.%N)
  api=127.0.0.1:$(freeport)
  "$work/edged" run -c "$d/edged.yaml" --data-dir "$d/data" --pipelines-dir "$d/pipelines" --api $api $(profile_args "$d") 2>> "$d/edged.log" & epid=$!; pids+=($epid)
  echo $epid > "$d/edged.pid"
  ok=0; wait $opid || ok=$?
  read -r sum outputs dupouts end t1 hwm finouts < "$d/outs.out"
  stop_edged
  edged_warnings "$d"
  if [ $ok != 0 ]; then
    lost "drain: edged's window outputs add up to $sum readings, want $messages"
  else
    db_rate=$(fmt_rate $messages $t0 $end) db_cpu=$(fmt_cpu $t1 $messages)
    hwm_mb=$(awk -v k=$hwm 'BEGIN{printf "%.1f", k/1024}')
    peak=$(awk -v a=$peak -v b=$hwm_mb 'BEGIN{print (b > a ? b : a)}')
    echo "(b) edged drain:           $db_rate msg/s, $db_cpu CPU s per million, peak RSS $hwm_mb MB; $outputs window outputs$(finals_note $finouts)"
  fi
  r1=$(ratio "$db_rate" "$da_rate")
  show_profile drain 12
fi

if want sliding; then
  # 10 readings per sensor per second: the 60 s window fills within the data
  # (100 s of event time per million readings).
  echo "== sliding window: 60 s sliding by 1 s over $sensors sensors, QoS 0 via mosquitto (each reading is in 60 windows)"
  if edged_pub sliding 0 "mqtt: {brokers: [$mosquitto], clientID: bench-sl-$$}" $mosquitto 1 1s $((messages * 60)) 10; then
    echo "sliding: $rate msg/s, $cpu CPU s per million, peak RSS $hwm_mb MB"
  fi
  show_profile sliding 12
fi

if want catchup; then
  echo "== catch-up: the same readings from a file; edged run --input to the last window output vs edged batch"
  d="$work/catchup"
  pipeline "$d" 0 file
  "$work/pub" --messages $messages --sensors $sensors --per-window $perwin --write "$d/readings.jsonl"
  cb_rate= cr_rate=
  t0=$(date +%s.%N)
  "$work/edged" batch -f "$d/pipelines/bench.yaml" --input "$d/readings.jsonl" --output "$d/batch.jsonl" 2> "$d/batch.err" & bpid=$!
  bt=0; while kill -0 $bpid 2>/dev/null; do bt=$(ticks $bpid 2>/dev/null || echo $bt); sleep 0.02; done
  t1=$(date +%s.%N)
  if ! wait $bpid; then
    lost "edged batch: $(cat "$d/batch.err")"
  else
    bsum=$(python3 -c 'import json,sys; print(sum(int(json.loads(l).get("n",0)) for l in open(sys.argv[1]) if l.strip()))' "$d/batch.jsonl")
    # the finals' windows are open at the end of a stream but closed at the end of a batch
    if [ "$bsum" != $total ]; then
      lost "edged batch outputs add up to $bsum readings, want $total"
    else
      cb_rate=$(fmt_rate $messages $t0 $t1)
      echo "edged batch:       $cb_rate records/s (CPU ~$(fmt_cpu $bt $messages) s per million, sampled every 20 ms)"
    fi
  fi
  "$work/outs" --broker $mosquitto --expect $messages --finals $(finals_ts $perwin) --pid-file "$d/edged.pid" > "$d/outs.out" 2> "$d/outs.err" & opid=$!; pids+=($opid)
  waitready "$d/outs.err" $opid
  printf '%s\n' "mqtt: {brokers: [$mosquitto], clientID: bench-cu-$$}" > "$d/edged.yaml"
  t0=$(date +%s.%N)
  "$work/edged" run -c "$d/edged.yaml" --data-dir "$d/data" --pipelines-dir "$d/pipelines" --api 127.0.0.1:$(freeport) --input "$d/readings.jsonl" $(profile_args "$d") 2>> "$d/edged.log" & epid=$!; pids+=($epid)
  echo $epid > "$d/edged.pid"
  ok=0; wait $opid || ok=$?
  read -r sum outputs dupouts end t1 hwm finouts < "$d/outs.out"
  stop_edged
  if [ $ok != 0 ]; then
    lost "catch-up: edged's window outputs add up to $sum readings, want $messages"
  else
    cr_rate=$(fmt_rate $messages $t0 $end)
    hwm_mb=$(awk -v k=$hwm 'BEGIN{printf "%.1f", k/1024}')
    peak=$(awk -v a=$peak -v b=$hwm_mb 'BEGIN{print (b > a ? b : a)}')
    echo "edged run --input: $cr_rate records/s, $(fmt_cpu $t1 $messages) CPU s per million, peak RSS $hwm_mb MB$(finals_note $finouts)"
  fi
  show_profile catchup 12
  echo "catchup_ratio=$(ratio "$cr_rate" "$cb_rate") (edged run --input / edged batch)"
fi

echo "load at end: $(uptime)"
[ $failed = 0 ] || echo "FAIL: some readings were lost or counted twice (see the FAIL lines above)"
echo "qos0_ratio=$r0 embedded_ratio=$re qos1_drain_ratio=$r1 cpu_ratio=$cr peak_rss_mb=$(awk -v m=$peak 'BEGIN{printf "%.0f", m}')"
exit $failed
