#!/usr/bin/env bash
# upgrade.sh [KILLS]: an upgrade from edged 0.1 under crashes. Each round
# extracts node/testdata/upgrade-0.1.tar.gz (a data dir that edged 0.1 was
# SIGKILLed on with unconsumed input; see node/upgrade_test.go), starts this
# version on it, SIGKILLs it after a random 0-250 ms (in or around the
# upgrade and the first epochs), runs it again to the end, and compares the
# sinks' rows (without ids) with a run that was not killed.
# Prints "kills=K mismatched=M"; exits 1 on a mismatch.
set -euo pipefail
kills=${1:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/edged-upgrade.XXXXXX)
trap 'rm -rf "$work"' EXIT
go -C "$root" build -o "$work/edged" ./cmd/edged
cd "$work"
python3 -c "
for i in range(20000):
    print('{\"sensor\": \"s-%02d\", \"ts\": %d, \"temp\": %s}' % (i % 13, 1732450000000 + i*100, repr(((i*7) % 50) * 0.25)))
" > input.jsonl
printf 'logLevel: info\napi: {listen: "127.0.0.1:0"}\nmqtt: {listen: ""}\n' > edged.yaml
rows() { python3 -c "
import json, sys, hashlib
rows = sorted(json.dumps({k: v for k, v in json.loads(l).items() if k != '_id'}, sort_keys=True) for l in open(sys.argv[1]))
print(len(rows), len(set(rows)), hashlib.sha1(chr(10).join(rows).encode()).hexdigest()[:12])" "$1"; }
fresh() { rm -rf "$1" && mkdir "$1" && tar -xzf "$root/node/testdata/upgrade-0.1.tar.gz" -C "$1"; }
start() { ./edged run -c edged.yaml --data-dir "$1/data" --pipelines-dir "$1/pipes" --output-dir "$1/out" --input input.jsonl --virtual-time >> "$1/edged.log" 2>&1 & pid=$!; }
to_end() { # run until the sinks' files stop growing
	start "$1"; local last="" cur
	for _ in $(seq 1 120); do sleep 0.5; cur=$(cat "$1"/out/*.jsonl | wc -l); [ "$cur" = "$last" ] && break; last=$cur; done
	kill "$pid"; wait "$pid" 2>/dev/null || true
}
fresh ref; to_end ref
want="$(rows ref/out/win.jsonl) / $(rows ref/out/mq.jsonl)"
echo "uncrashed: $want"
bad=0
for k in $(seq 1 "$kills"); do
	fresh c; start c
	sleep "$(printf '0.%03d' $((RANDOM % 250)))"; kill -9 "$pid"; wait "$pid" 2>/dev/null || true
	up=$(grep -c "pipeline upgraded" c/edged.log || true)
	to_end c
	got="$(rows c/out/win.jsonl) / $(rows c/out/mq.jsonl)"
	[ "$got" = "$want" ] || { bad=$((bad + 1)); echo "kill $k: $got (pipelines upgraded before the kill: $up)"; }
done
echo "kills=$kills mismatched=$bad"
[ "$bad" = 0 ]
