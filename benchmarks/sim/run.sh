#!/usr/bin/env bash
# Simulator benchmark: every algorithm at 10,000 containers on 1,000 nodes (the scale
# target: under 30 s wall and 2 GiB memory per run on this machine), on each
# communication graph. Each output line is the simulator's BENCH line (simulated
# figures) plus the real wall_s and maxrss_mib of that run, measured by /usr/bin/time,
# and the wall-time ratio to the blocking run of the same graph (the baseline); cpu_s is
# the run's user + system time (on a shared machine the wall time also counts waiting).
# make bench-sim-1m runs it at 1,000,000 containers on 100,000 nodes (ring; ~5 GiB).
#
# Usage: benchmarks/sim/run.sh            (env: CONTAINERS NODES GRAPHS ALGORITHMS SEED FAULTS)
set -euo pipefail
cd "$(dirname "$0")/../.."

CONTAINERS=${CONTAINERS:-10000}
NODES=${NODES:-1000}
GRAPHS=${GRAPHS:-"all-to-all ring tiers pipeline"}
ALGORITHMS=${ALGORITHMS:-"blocking chandy-lamport uncoordinated minimal"}
SEED=${SEED:-1}
FAULTS=${FAULTS:-none}
BIN=${BIN:-build/swarmckpt}

if [ ! -x /usr/bin/time ]; then
	echo "run.sh: /usr/bin/time is missing (apt-get install time)" >&2
	exit 1
fi
mkdir -p "$(dirname "$BIN")"
go build -o "$BIN" ./cmd/swarmckpt

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "# swarmckpt sim benchmark: containers=$CONTAINERS nodes=$NODES seed=$SEED faults=$FAULTS $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores"
for g in $GRAPHS; do
	base=""
	for a in $ALGORITHMS; do
		set +e
		line=$(/usr/bin/time -f '%e %M %U %S' -o "$tmp" "$BIN" sim --quiet --algorithm "$a" \
			--containers "$CONTAINERS" --nodes "$NODES" --graph "$g" --seed "$SEED" --faults "$FAULTS" 2>&1)
		rc=$?
		set -e
		if [ $rc -eq 2 ]; then
			echo "# $a: not available in this build ($(echo "$line" | tail -1))"
			continue
		fi
		read -r wall rss usr sys <"$tmp"
		cpu=$(awk -v u="$usr" -v s="$sys" 'BEGIN{ printf "%.1f", u + s }')
		rss_mib=$((rss / 1024))
		[ -z "$base" ] && [ "$a" = blocking ] && base=$wall
		ratio=""
		if [ -n "$base" ]; then
			ratio=" wall_ratio_vs_blocking=$(awk -v w="$wall" -v b="$base" 'BEGIN{ if (b > 0) printf "%.2f", w / b; else print "n/a" }')"
		fi
		bench=$(echo "$line" | grep '^BENCH' || true)
		if [ -z "$bench" ]; then
			echo "# $a $g: failed (exit $rc): $(echo "$line" | tail -3 | tr '\n' ' ')"
			continue
		fi
		echo "$bench wall_s=$wall cpu_s=$cpu maxrss_mib=$rss_mib$ratio exit=$rc"
	done
done
