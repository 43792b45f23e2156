#!/usr/bin/env bash
# Swarm behaviours the partial migration plan of docs/drain.md relies on, on a running
# lab whose runtime is the probe (run.sh calls it with the lab name and the probe's state
# directory). Service s2: 2 replicas, at most 1 per node, on 3 nodes.
#   1. scale-down during a held drain stop: which task goes, the pending replacement or
#      the running one on another node?
#   2. scale-down right after a task's container died (as after a dump with exit)
#   3. node paused, a task's container killed: where and when is it replaced, with the
#      default restart delay (5 s) and with 0 s?
# Prints PARTIAL lines.
set -euo pipefail
LAB=${1:-drb}
S=${2:-/run/swarmckpt-drainbench}
export DOCKER_HOST=unix:///run/swarmckpt/$LAB/$LAB-1/docker.sock
sock() { echo "unix:///run/swarmckpt/$LAB/$1/docker.sock"; }
tasks() { docker service ps s2 --format '{{.Name}}@{{.Node}}:{{.DesiredState}}/{{.CurrentState}}' | awk '{print $1}' | tr '\n' ' '; }
running2() {
    for _ in $(seq 1 120); do
        [ "$(docker service ps s2 --filter desired-state=running --format '{{.CurrentState}}' | grep -c Running)" = 2 ] && return 0
        sleep 0.5
    done
    echo "s2: not 2 tasks running" >&2
    return 1
}
first_node() { docker service ps s2 --filter desired-state=running --format '{{.Node}}' | sort | head -1; }
task_container() { docker -H "$(sock "$1")" ps -q --no-trunc --filter label=com.docker.swarm.service.name=s2; }

docker service create -q -d --name s2 --replicas 2 --replicas-max-per-node 1 --endpoint-mode dnsrr \
    swarmckpt/counter:dev --interval 100ms >/dev/null 2>&1
running2

# 1
n=$(first_node)
echo 20 >"$S/hold"
docker node update --availability drain "$n" >/dev/null
sleep 2.5 # the first kill comes ~1.1 s after the drain (no network); it is held 20 s
echo "PARTIAL scale-down-during-held-drain before: $(tasks)"
docker service scale -d s2=1 >/dev/null
sleep 2
echo "PARTIAL scale-down-during-held-drain after:  $(tasks)"
rm -f "$S/hold"
sleep 18
docker node update --availability active "$n" >/dev/null
docker service scale -d s2=2 >/dev/null
running2

# 2
n=$(first_node)
docker -H "$(sock "$n")" kill "$(task_container "$n")" >/dev/null
sleep 0.3
docker service scale -d s2=1 >/dev/null
sleep 3
echo "PARTIAL scale-down-after-exit killed-on=$n after: $(tasks)"
docker service scale -d s2=2 >/dev/null

# 3
pause_kill() {
    running2
    local n c off t0 l
    n=$(first_node)
    c=$(task_container "$n")
    docker node update --availability pause "$n" >/dev/null
    off=$(stat -c %s "$S/calls.log")
    t0=$EPOCHREALTIME
    docker -H "$(sock "$n")" kill "$c" >/dev/null
    l=
    for _ in $(seq 1 100); do
        l=$(tail -c +$((off + 1)) "$S/calls.log" | grep " create " | grep -v "/$n/" | head -1 || true)
        [ -n "$l" ] && break
        sleep 0.1
    done
    awk -v a="$t0" -v b="${l%% *}" -v d="$1" -v n="$n" -v to="$(echo "$l" | grep -o "$LAB-[0-9]*" | head -1)" \
        'BEGIN{printf "PARTIAL pause-and-kill restart_delay=%s paused=%s replacement_on=%s create_after_s=%.2f\n", d, n, to, b-a}'
    docker node update --availability active "$n" >/dev/null
}
pause_kill 5s
pause_kill 5s
docker service update -d --restart-delay 0s s2 >/dev/null 2>&1
sleep 1
pause_kill 0s
pause_kill 0s
docker service rm s2 >/dev/null
