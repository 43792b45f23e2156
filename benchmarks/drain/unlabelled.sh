#!/usr/bin/env bash
# An unlabelled stack's drain end to end, with swarmckpt-runtime as the nodes' default
# runtime (as `lab up --runtime auto` sets it) against plain runc (docs/drain.md,
# "Unlabelled stacks"). One 3-node lab of its own (daemons on, as `lab up` defaults);
# between repetitions every node's daemon.json default-runtime is switched ("swarmckpt"
# <-> "runc") and dockerd reloaded with SIGHUP (default-runtime is a live-reloadable
# option; no restart, the swarm stays as it is), checked with `docker info`. The modes
# alternate rep by rep (plain, wrapper, plain, ...). Each repetition:
#   deploy stack u (service c: the counter, 6 replicas, no swarmckpt label, on an
#   overlay network), check that the drained node's task containers run under the
#   mode's runtime, drain that node (`docker node update --availability drain`), wait
#   until the 6 tasks run elsewhere, then read the nodes' event history since the drain:
#     stopped_ms: drain -> the last of the node's old task containers died
#     running_ms: drain -> the last replacement container started on another node
#   then set the node active and remove the stack.
# Prints one BENCH drain-unlabelled line per rep and, per metric, the medians of both
# modes and their ratio (vs_plain = wrapper / plain).
#
#   benchmarks/drain/unlabelled.sh [LAB] [REPS per mode]   (needs root, bin/ built)
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${1:-dbu}
REPS=${2:-5}
REPLICAS=${REPLICAS:-6}
export PATH=/usr/local/sbin:$PATH
[ -x bin/swarmckpt-runtime ] || { echo "bin/swarmckpt-runtime missing: run 'make build'" >&2; exit 1; }
bin/swarmckpt lab down --name "$LAB" >/dev/null 2>&1 || true
bin/swarmckpt lab up --nodes 3 --name "$LAB" --runtime "$PWD/bin/swarmckpt-runtime" \
    --images "${SWARMCKPT_IMAGES:-build/workloads}" >&2
trap 'rm -f /tmp/drain-unlabelled-$LAB.yml /tmp/drain-unlabelled-$LAB.starts; bin/swarmckpt lab down --name "$LAB" >&2' EXIT
P=/run/swarmckpt/$LAB/lab.json
mapfile -t NODES < <(jq -r '.nodes[].name' "$P")
sock() { jq -r --arg n "$1" '.nodes[] | select(.name == $n) | "unix://" + .socket' "$P"; }
export DOCKER_HOST=$(sock "${NODES[0]}")
echo "# $(date -u +%FT%TZ) $(uname -r) docker $(docker version -f '{{.Server.Version}}') $(nproc) cores load $(cut -d' ' -f1 /proc/loadavg)" >&2

set_runtime() { # runc | swarmckpt, on every node
    local n cfg pid
    for n in "${NODES[@]}"; do
        cfg=$(jq -r --arg n "$n" '.nodes[] | select(.name == $n) | .config_dir' "$P")/daemon.json
        pid=$(cat "$(jq -r --arg n "$n" '.nodes[] | select(.name == $n) | .pid_file' "$P")")
        jq --arg r "$1" '."default-runtime" = $r' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg"
        kill -HUP "$pid"
        for _ in $(seq 1 100); do
            [ "$(docker -H "$(sock "$n")" info -f '{{.DefaultRuntime}}')" = "$1" ] && continue 2
            sleep 0.1
        done
        echo "node $n: default runtime did not become $1 after SIGHUP (see its dockerd.log)" >&2
        return 1
    done
}
running() { # tasks of u_c running, optionally not on node $1
    docker service ps u_c --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' |
        awk -v x="${1:-}" '$2 == "Running" && $1 != x' | wc -l
}
wait_running() {
    for _ in $(seq 1 600); do
        [ "$(running "${1:-}")" = "$REPLICAS" ] && return 0
        sleep 0.2
    done
    echo "u_c: $REPLICAS tasks not running (${1:+outside $1 }) after 120 s" >&2
    return 1
}
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%d", (b - a) / 1e6}'; }

docker network create -d overlay --attachable --subnet 10.240.9.0/24 unet >/dev/null
cat >/tmp/drain-unlabelled-$LAB.yml <<EOF
version: "3.8"
services:
  c:
    image: swarmckpt/counter:dev
    command: ["--interval", "100ms", "--listen", ":8080"]
    networks: [unet]
    deploy:
      endpoint_mode: dnsrr
      replicas: $REPLICAS
networks:
  unet:
    external: true
EOF

declare -A vals
for r in $(seq 1 $((2 * REPS))); do
    if ((r % 2)); then mode=plain rt=runc; else mode=wrapper rt=swarmckpt; fi
    set_runtime "$rt"
    docker stack deploy --resolve-image never -c "/tmp/drain-unlabelled-$LAB.yml" u >/dev/null
    wait_running
    # the drained node: node 1, 2, 3, 1, ... for each pair of reps (both modes drain the
    # same nodes), if it runs tasks (swarm spreads them: 2 each), else the busiest
    node=${NODES[$(((r - 1) / 2 % ${#NODES[@]}))]}
    if [ "$(docker service ps u_c --filter desired-state=running --filter node="$node" -q | wc -l)" = 0 ]; then
        node=$(docker service ps u_c --filter desired-state=running --format '{{.Node}}' | sort | uniq -c | sort -k1,1nr -k2 | awk 'NR == 1 {print $2}')
    fi
    ns=$(sock "$node")
    mapfile -t old < <(docker -H "$ns" ps -q --filter label=com.docker.swarm.service.name=u_c)
    got=$(docker -H "$ns" inspect -f '{{.HostConfig.Runtime}}' "${old[@]}" | sort -u | tr '\n' ' ')
    [ "$got" = "$rt " ] || { echo "rep $r: $node's task containers run under '$got', not $rt" >&2; exit 1; }
    t0=$(date +%s%N)
    docker node update --availability drain "$node" >/dev/null
    wait_running "$node"
    for _ in $(seq 1 100); do # the old containers' exits
        [ -z "$(docker -H "$ns" ps -q --filter label=com.docker.swarm.service.name=u_c)" ] && break
        sleep 0.1
    done
    t1=$(date +%s%N)
    since=$((t0 / 1000000000 - 1)) until=$((t1 / 1000000000)).$(printf %09d $((t1 % 1000000000)))
    die=$(docker -H "$ns" events --since "$since" --until "$until" --filter type=container --filter event=die \
        --filter label=com.docker.swarm.service.name=u_c --format '{{.TimeNano}}' | awk -v t="$t0" '$1 >= t' | sort -n | tail -1)
    start=
    for n in "${NODES[@]}"; do
        [ "$n" = "$node" ] && continue
        docker -H "$(sock "$n")" events --since "$since" --until "$until" --filter type=container --filter event=start \
            --filter label=com.docker.swarm.service.name=u_c --format '{{.TimeNano}}'
    done | awk -v t="$t0" '$1 >= t' | sort -n >/tmp/drain-unlabelled-$LAB.starts
    start=$(tail -1 /tmp/drain-unlabelled-$LAB.starts)
    nstart=$(wc -l </tmp/drain-unlabelled-$LAB.starts)
    [ -n "$die" ] && [ -n "$start" ] || { echo "rep $r: no die or start event since the drain" >&2; exit 1; }
    s=$(ms "$t0" "$die") u=$(ms "$t0" "$start")
    vals[$mode.stopped]+="$s " vals[$mode.running]+="$u "
    echo "BENCH drain-unlabelled rep=$r mode=$mode runtime=$rt node=$node old_tasks=${#old[@]} replacements=$nstart stopped_ms=$s running_ms=$u load=$(cut -d' ' -f1 /proc/loadavg)"
    docker node update --availability active "$node" >/dev/null
    docker stack rm u >/dev/null
    for _ in $(seq 1 300); do
        left=0
        for n in "${NODES[@]}"; do
            left=$((left + $(docker -H "$(sock "$n")" ps -aq --filter label=com.docker.swarm.service.name=u_c | wc -l)))
        done
        [ "$left" = 0 ] && break
        sleep 0.2
    done
done
set_runtime swarmckpt
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
spread() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[NR] - a[1]}'; }
# diff_ms: wrapper median - plain median; plain_spread_ms: max - min of the plain reps
# (the run-to-run noise of swarm's own path)
for m in stopped running; do
    p=$(echo "${vals[plain.$m]}" | med) w=$(echo "${vals[wrapper.$m]}" | med)
    echo "BENCH drain-unlabelled metric=${m}_ms reps=$REPS plain_median=$p wrapper_median=$w diff_ms=$(awk -v a="$w" -v b="$p" 'BEGIN {print a - b}') plain_spread_ms=$(echo "${vals[plain.$m]}" | spread) plain=[${vals[plain.$m]% }] wrapper=[${vals[wrapper.$m]% }] vs_plain=$(awk -v a="$w" -v b="$p" 'BEGIN {printf "%.3f", a / b}')x"
done
