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
if [ "$rc" != 0 ]; then
	# What each failing test said (its t.Log/t.Fatal lines just before its FAIL line), so
	# a CI report that shows only this output still names the cause.
	echo "integration: the 80 log lines before each FAIL:"
	awk '{ buf[NR] = $0 }
	     /^ *--- FAIL: / { from = NR - 80; if (from <= last) from = last + 1; if (from < 1) from = 1
	                       for (i = from; i <= NR; i++) print "| " buf[i]; last = NR }' build/integration.log
fi
echo "integration: full log in build/integration.log (exit $rc)"
exit $rc
