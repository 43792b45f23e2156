#!/usr/bin/env bash
# Raw `runc checkpoint` of a memhog under several fs.pipe-max-size values, alternated
# (docs/dataplane.md, "Pipe size"). Needs root and a running lab whose first node has
# the data plane's test image (benchmarks/dataplane/run.sh imports it):
#
#   LAB=dpq MIB=1024 REPS=3 PIPES="524288 1048576 4194304" benchmarks/dataplane/pipesize.sh
#
# Prints one line per dump: `PIPE pipe_max=N size_mib=M runc_s=S`. Puts the setting
# back to the value it found when it ends.
set -euo pipefail
LAB=${LAB:-dpbench}; MIB=${MIB:-1024}; REPS=${REPS:-3}; PIPES=${PIPES:-524288 1048576 4194304}
node=$LAB-1
sock=unix:///run/swarmckpt/$LAB/$node/docker.sock
root=/run/swarmckpt/$LAB/$node/exec/runtime-runc/moby
d() { docker -H "$sock" "$@"; }
data=$(d info -f '{{.DockerRootDir}}') || { echo "pipesize: lab $LAB is not up (swarmckpt lab up --name $LAB)" >&2; exit 2; }
orig=$(cat /proc/sys/fs/pipe-max-size)
dir=$data/swarmckpt/pipesize-bench
cleanup() { echo "$orig" >/proc/sys/fs/pipe-max-size; rm -f /run/criu.kdat; rm -rf "$dir"; d rm -f pipesize-hog >/dev/null 2>&1 || true; }
trap cleanup EXIT
for _ in $(seq "$REPS"); do
  for p in $PIPES; do
    echo "$p" >/proc/sys/fs/pipe-max-size
    rm -f /run/criu.kdat
    d rm -f pipesize-hog >/dev/null 2>&1 || true
    d run -d --name pipesize-hog swarmckpt/dptest:dev memhog "$MIB" >/dev/null
    for _ in $(seq 600); do d logs pipesize-hog 2>&1 | grep -q "sum " && break; sleep 0.1; done
    id=$(d inspect -f '{{.Id}}' pipesize-hog)
    rm -rf "$dir"; mkdir -p -m 0700 "$dir/work"
    sync
    t0=$(date +%s.%N)
    runc --root "$root" checkpoint --image-path "$dir/images" --work-path "$dir/work" --tcp-established "$id"
    t1=$(date +%s.%N)
    printf 'PIPE pipe_max=%s size_mib=%s runc_s=%.3f\n' "$p" "$MIB" "$(echo "$t1 - $t0" | bc)"
    rm -rf "$dir"
    d rm -f pipesize-hog >/dev/null
  done
done
