#!/usr/bin/env bash
# Algorithm benchmark (make bench-algorithms): every algorithm and baseline on every
# stack shape of a 3-node lab, K repetitions interleaved; writes results.json,
# results.csv and the plots, and prints BENCH lines (see RESULTS.md beside this file).
#
#   benchmarks/algorithms/run.sh [--reps 3] [--shapes bank-5,mixed] [--out DIR]
#   QUICK=1 benchmarks/algorithms/run.sh      one repetition of bank-5 and scale-3 (CI)
#   benchmarks/algorithms/run.sh --shapes idle --reps 3
#                                             the idle shape alone: minimal's reuse
#                                             (writes idle.json, idle.md; nothing else)
#
# Needs root, make setup (CRIU, Docker, Podman), make build and make images. Brings up
# its own lab (LAB, default benchalgo) and removes it at the end, also on failure.
# QUICK=1 writes to build/bench-algorithms-quick unless --out is given.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/sbin:$PATH
LAB=${LAB:-benchalgo}
IMAGES=${IMAGES:-$PWD/build/workloads}
BIN=$PWD/bin/swarmckpt
args=()
if [ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ]; then
	args+=(--quick --strict --out build/bench-algorithms-quick)
fi
[ -x "$BIN" ] || { echo "bench-algorithms: $BIN missing: run 'make build' first" >&2; exit 2; }
[ -f "$IMAGES/bank.tar" ] || { echo "bench-algorithms: no workload images in $IMAGES: run 'make images' first" >&2; exit 2; }
cleanup() { "$BIN" lab down --name "$LAB" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
"$BIN" lab up --name "$LAB" --nodes 3 --images "$IMAGES" >&2
echo "# $(date -u +%FT%TZ) $(uname -r) criu $(criu --version | awk '/Version/{print $2}') $(nproc) cores" >&2
go run ./benchmarks/algorithms --swarmckpt "$BIN" --lab "$LAB" --images "$IMAGES" "${args[@]}" "$@"
