#!/usr/bin/env bash
# Integration tests on real labs (make test-integration; part of make test).
# Needs root, make setup, make build images. Brings up one 2-node lab shared by the
# packages whose tests take nodes from SWARMCKPT_TEST_NODES (worker data plane), runs every
# package with SWARMCKPT_INTEGRATION=1 one package at a time (2 cores), then removes the
# lab, also when a test fails or the run is interrupted. Tests that bring up labs of
# their own (deploy/lab, coordinator) use other lab names.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/sbin:$PATH
BIN=$PWD/bin/swarmckpt
LAB=${ITLAB:-itnodes}
mkdir -p build
cleanup() { "$BIN" lab down --name "$LAB" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
"$BIN" lab up --name "$LAB" --nodes 2 --images build/workloads
socks=$("$BIN" lab status --name "$LAB" --output json | grep -o '"socket": *"[^"]*"' | sed 's/.*"\(\/[^"]*\)"/unix:\/\/\1/' | paste -sd' ')
echo "integration: nodes $socks"
export SWARMCKPT_INTEGRATION=1 SWARMCKPT_BIN=$BIN SWARMCKPT_IMAGES=$PWD/build/workloads SWARMCKPT_TEST_NODES="$socks"
set +e
go test -count=1 -p 1 -timeout 50m -v "${@:-./...}" >build/integration.log 2>&1
rc=$?
set -e
grep -E '^(--- |ok |FAIL|PASS$)|SKIP|INTEGRATION|panic:' build/integration.log | grep -v '^=== ' || true
echo "integration: full log in build/integration.log (exit $rc)"
exit $rc
