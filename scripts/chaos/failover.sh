#!/usr/bin/env bash
# Mesh failover harness (issue 13): a real mosquitto and three real edged
# processes in one mesh, a steady load from `edgectl sim` over 1,000
# sensors into 1s event-time tumbling windows for 40s (at least 30s),
# seeded SIGKILLs of an owner of several partitions, each victim
# restarted 4s later; the union of the windows the three nodes emitted is
# compared with the windows computed from every message the broker
# delivered. The last line is exactly
#   kills=K lost_windows=L duplicate_windows=D max_takeover_s=T
# and the exit status is non-zero unless L and D are 0 and T <= 2.
#
#   scripts/chaos/failover.sh [--seed N] [--duration 40s] [--kills 3] [--rate 2000] [--short]
#
# The work directory (data dirs, edged and mosquitto logs) is kept when the
# run fails. The flags are those of scripts/chaos/failover (go run ... -h).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cd "$root"
go build -o "$bin/edged" ./cmd/edged
go build -o "$bin/edgectl" ./cmd/edgectl
go build -o "$bin/failover" ./scripts/chaos/failover
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seed|--duration|--kills|--rate|--sensors|--down|--work) args+=("-${1#--}" "$2"); shift 2;;
    --short) args+=(-short); shift;;
    *) echo "usage: $0 [--seed N] [--duration D] [--kills K] [--rate R] [--sensors N] [--down D] [--work DIR] [--short]" >&2; exit 2;;
  esac
done
"$bin/failover" -edged "$bin/edged" -edgectl "$bin/edgectl" "${args[@]}"
