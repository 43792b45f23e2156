#!/usr/bin/env bash
# Prints the markdown comparison table of docs/algorithms.md ("Comparison (simulator)")
# from real simulator runs: every algorithm on the same scenarios (same seed, same
# containers, memory sizes and traffic), one row per algorithm and scenario.
#
# Usage: benchmarks/sim/table.sh > /tmp/table.md
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/swarmckpt}
SEED=${SEED:-1}
mkdir -p "$(dirname "$BIN")"
go build -o "$BIN" ./cmd/swarmckpt

# scenario: containers:nodes:graph:faults[:extra flag]
SCENARIOS=${SCENARIOS:-"1000:100:ring:none 1000:100:all-to-all:none 1000:100:tiers:none 1000:100:pipeline:none 10000:1000:all-to-all:none 1000:100:tiers:none:--criu-lock=false 1000:100:tiers:worker-crash=1 1000:100:tiers:coordinator-crash=1 1000:100:tiers:loss=0.001"}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "| scenario | algorithm | outcome | latency (s) | downtime p50 / p99 / max (s) | conn. hold p99 (s) | messages | dumped (GiB) | cut |"
echo "|---|---|---|---:|---:|---:|---:|---:|---|"
for sc in $SCENARIOS; do
	IFS=: read -r n m g f x <<<"$sc"
	out=$("$BIN" sim --quiet --algorithm all --containers "$n" --nodes "$m" --graph "$g" --seed "$SEED" --faults "$f" ${x:+"$x"} 2>/dev/null || true)
	while read -r line; do
		case "$line" in BENCH*) ;; *) continue ;; esac
		s() { awk -v v="$(field "$line" "$1")" 'BEGIN{ printf "%.2f", v / 1000 }'; }
		gib=$(awk -v v="$(field "$line" bytes_dumped)" 'BEGIN{ printf "%.0f", v / 1073741824 }')
		label="$g, $n on $m"
		[ "$f" != none ] && label="$label, $f"
		[ -n "$x" ] && label="$label, $x"
		echo "| $label | $(field "$line" algorithm) | $(field "$line" outcome) | $(s latency_ms) | $(s downtime_p50_ms) / $(s downtime_p99_ms) / $(s downtime_max_ms) | $(s hold_p99_ms) | $(field "$line" messages) | $gib | $(field "$line" consistent) |"
	done <<<"$out"
done
