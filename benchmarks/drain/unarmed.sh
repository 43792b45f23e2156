#!/usr/bin/env bash
# What swarmckpt-runtime adds to the stop of an unlabelled (unarmed) container
# (docs/drain.md, "Unlabelled stacks"): the runtime's `kill ID 15` through the wrapper
# (a Go process that reads the bundle's config.json, stats the arm file, then execs
# runc) against the same call straight to "runc". runc is /bin/true here, so that
# only the wrapper's own cost is measured (the real runc's kill is the same on both
# paths). No lab needed. Prints one BENCH line, then the Go benchmark of the decision.
#
#   N=300 benchmarks/drain/unarmed.sh [path to swarmckpt-runtime]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-300}
RT=${1:-bin/swarmckpt-runtime}
[ -x "$RT" ] || CGO_ENABLED=0 go build -o "$RT" ./cmd/swarmckpt-runtime
RT=$(readlink -f "$RT")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
mkdir -p "$T/data/containers/$ID" "$T/data/swarmckpt/drain" "$T/bundle" "$T/root"
: >"$T/data/containers/$ID/hostname"
# A config.json of about a Docker bundle's size (16 KiB), with the hostname mount the
# wrapper finds the data-root by.
pad=$(head -c 16384 /dev/zero | tr '\0' X)
printf '{"process":{"env":["PAD=%s"]},"mounts":[{"destination":"/etc/hostname","source":"%s"}]}' \
    "$pad" "$T/data/containers/$ID/hostname" >"$T/bundle/config.json"
cd "$T/bundle"
args=(--root "$T/root" --log "$T/log.json" --log-format json kill "$ID" 15)
measure() { # prints N call times in µs
    local i t0 t1
    for ((i = 0; i < N; i++)); do
        t0=$EPOCHREALTIME
        "$@" >/dev/null 2>&1
        t1=$EPOCHREALTIME
        echo $(( (${t1/./} - ${t0/./}) ))
    done
}
stats() { sort -n | awk '{a[NR]=$1} END {printf "%.2f %.2f %.2f\n", a[int(NR*0.5)]/1000, a[int(NR*0.95)]/1000, a[NR]/1000}'; }
read -r dm dp dx < <(measure /bin/true "${args[@]}" | stats)
read -r wm wp wx < <(SWARMCKPT_RUNC=/bin/true measure "$RT" "${args[@]}" | stats)
added=$(awk -v a="$wm" -v b="$dm" 'BEGIN {printf "%.2f", a-b}')
echo "BENCH unarmed-kill n=$N direct_ms median=$dm p95=$dp max=$dx wrapper_ms median=$wm p95=$wp max=$wx added_median_ms=$added load=$(cut -d' ' -f1 /proc/loadavg)"
cd - >/dev/null
go test -run '^$' -bench BenchmarkKillDecisionUnarmed -benchtime 2000x ./worker/ociwrap/ | grep '^Benchmark' | sed 's/^/BENCH go: /'
