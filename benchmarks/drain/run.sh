#!/usr/bin/env bash
# Drain race benchmark (make bench-drain; docs/drain.md): on a 3-node lab whose nodes run
# the probe runtime (probe-runtime.sh: logs every runtime call, can hold `kill`), measure
# drain -> first kill -> exit -> replacement, the watcher's view, holds, and dump costs.
#
#   LAB=drb REPS=20 benchmarks/drain/run.sh [CASES]
#
# CASES (default all): timing hold ckpt hold-timeout partial dump unarmed unlabelled.
# Prints BENCH and PARTIAL lines (the recorded ones: benchmarks/drain/RESULTS.md); needs
# root; about 20 minutes in all. unarmed needs no lab; unlabelled brings up a lab of its
# own (LABu, after the probe lab is down) with the real wrapper as runtime, and runs
# REPS_UNLABELLED (default 5) repetitions per runtime.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${LAB:-drb}
REPS=${REPS:-20}
CASES=${*:-timing hold ckpt hold-timeout partial dump unarmed unlabelled}
STATE=/run/swarmckpt-drainbench
export PATH=/usr/local/sbin:$PATH
mkdir -p bin "$STATE"
go build -o bin/swarmckpt ./cmd/swarmckpt
CGO_ENABLED=0 go build -o bin/swarmckpt-runtime ./cmd/swarmckpt-runtime
go build -o bin/drainbench ./benchmarks/drain
sed -e "s|@STATE@|$STATE|g" -e "s|@REAL@|$PWD/bin/swarmckpt-runtime|g" benchmarks/drain/probe-runtime.sh >"$STATE/runtime"
chmod 0755 "$STATE/runtime"
: >"$STATE/calls.log"
rm -f "$STATE/hold"

probe=no
for c in $CASES; do case $c in unarmed | unlabelled) ;; *) probe=yes ;; esac; done
if [ $probe = yes ]; then
    bin/swarmckpt lab down --name "$LAB" >/dev/null 2>&1 || true
    bin/swarmckpt lab up --nodes 3 --name "$LAB" --runtime "$STATE/runtime" \
        --images "${SWARMCKPT_IMAGES:-build/workloads}" >&2
    trap 'bin/swarmckpt lab down --name "$LAB" >&2' EXIT
    echo "# $(date -u +%FT%TZ) $(uname -r) docker $(docker -H unix:///run/swarmckpt/$LAB/$LAB-1/docker.sock version -f '{{.Server.Version}}') $(nproc) cores" >&2
fi

for c in $CASES; do
    case $c in
    timing)
        bin/drainbench --lab "$LAB" --state "$STATE" --reps "$REPS" --grace 10s --network=true --case default-grace
        bin/drainbench --lab "$LAB" --state "$STATE" --reps "$REPS" --grace 120s --network=true --case long-grace
        bin/drainbench --lab "$LAB" --state "$STATE" --reps "$REPS" --grace 10s --network=false --case no-network
        ;;
    hold)   # the runtime holds the stop signal 8 s (< grace 30 s): does swarm wait?
        bin/drainbench --lab "$LAB" --state "$STATE" --reps 3 --grace 30s --hold 8s --case hold-8s
        ;;
    ckpt)   # design A's stand-in: the held kill runs `runc checkpoint` (exit) first
        bin/drainbench --lab "$LAB" --state "$STATE" --reps 3 --grace 30s --ckpt --case ckpt-small
        bin/drainbench --lab "$LAB" --state "$STATE" --reps 3 --grace 30s --ckpt --case ckpt-256mib \
            --image swarmckpt/memhog:dev --args=--mib,256,--dirty-fraction,0.05,--listen,:8080
        ;;
    hold-timeout)   # hold 75 s (> swarmkit's 60 s old-task timeout), grace 120 s
        bin/drainbench --lab "$LAB" --state "$STATE" --reps 1 --grace 120s --hold 75s --case hold-75s
        ;;
    partial)   # scale-down and pause behaviours the partial migration plan relies on
        benchmarks/drain/partial.sh "$LAB" "$STATE"
        ;;
    dump)
        benchmarks/drain/dumpcost.sh "$LAB"
        ;;
    unarmed)   # what the wrapper adds to the stop of an unlabelled container (no lab)
        benchmarks/drain/unarmed.sh bin/swarmckpt-runtime
        ;;
    unlabelled) ;; # below, once the probe lab is down
    esac
done
if [ $probe = yes ]; then
    bin/swarmckpt lab down --name "$LAB" >&2
    trap - EXIT
fi
case " $CASES " in
*" unlabelled "*) # an unlabelled stack's drain end to end: the real wrapper vs plain runc
    benchmarks/drain/unlabelled.sh "${LAB}u" "${REPS_UNLABELLED:-5}"
    ;;
esac
