#!/usr/bin/env bash
# Third-party demo (make demo-thirdparty): Debian's redis-server, not a program of this
# project, on a 3-node lab: a memory-only dataset and two long-lived client connections,
# snapshotted with blocking and chandy-lamport, each cut verified, the snapshot restored on
# other nodes; prints what it proved. Needs make setup, make build and make
# images-thirdparty. The lab stays up (LAB, default tpdemo); remove it with
# `bin/swarmckpt lab down --name tpdemo`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/sbin:$PATH
BIN=${BIN:-bin/swarmckpt}
LAB=${LAB:-tpdemo}
IMAGES=${IMAGES:-build/thirdparty}
step() { printf '\n== %s\n' "$*"; }
die() { echo "demo-thirdparty: $*" >&2; exit 1; }
proved=()

[ -f "$IMAGES/redis.tar" ] || die "no $IMAGES/redis.tar: run 'make images-thirdparty'"
step "lab $LAB: 3 nodes with the third-party images (removing an earlier one first)"
$BIN lab down --name "$LAB" >/dev/null 2>&1 || true
$BIN lab up --name "$LAB" --nodes 3 --images "$IMAGES" | tail -5
eval "$($BIN lab env --name "$LAB")"
$BIN lab deploy --name "$LAB" --images "$IMAGES" deploy/examples/redis.yml redis
docker service ps redis_server redis_writer redis_subscriber --filter desired-state=running --format '{{.Name}} on {{.Node}}'

cli() { docker run --rm --network redis_net --entrypoint redis-cli swarmckpt-thirdparty/redis-tools:deb -h server "$@"; }
client_id() { cli CLIENT LIST | grep -E "$1" | grep -o '^id=[0-9]*' | head -1; }
# log is 1..n with no hole (one connection, nothing lost): prints n, fails otherwise
log_ok() {
  local r; r=$(cli EVAL "local it = redis.call('LRANGE', 'log', 0, -1) for i = 1, #it do if tonumber(it[i]) ~= i then return -i end end return #it" 0)
  [ "$r" -gt 0 ] || die "the writer's list has a hole at $((-r)): a command was lost"
  echo "$r"
}
for _ in $(seq 1 120); do w=$(client_id 'name=writer' || true); s=$(client_id 'flags=P' || true); [ -n "$w" ] && [ -n "$s" ] && break; sleep 0.5; done
[ -n "$w" ] && [ -n "$s" ] || die "writer or subscriber not connected; see docker service logs redis_writer"
run_id=$(cli INFO server | grep -o 'run_id:[0-9a-f]*')
cli EVAL "for i = 1, 20000 do redis.call('SET', 'pop:' .. i, i) end return 1" 0 >/dev/null
sum() { cli EVAL "local s = 0 for i = 1, 20000 do s = s + tonumber(redis.call('GET', 'pop:' .. i)) end return s" 0; }
want=$(sum)
echo "redis $(cli INFO server | grep -o 'redis_version:[0-9.]*'), $run_id, save='$(cli CONFIG GET save | tail -1)', 20000 keys (sum $want), writer $w, subscriber $s"
proved+=("Debian's redis-server runs in the swarm with its dataset only in memory (no RDB, no AOF) and two long-lived client connections ($w writer, $s subscriber)")

step "snapshot the redis stack with blocking and chandy-lamport, verify each cut"
for a in blocking chandy-lamport; do
  id="tpdemo-redis-$a"
  $BIN rm "$id" >/dev/null 2>&1 || true
  $BIN snapshot redis --algorithm "$a" --id "$id" | tail -2 || die "snapshot with $a failed"
  v=$($BIN inspect "$id" --verify | grep -i 'cut check' | head -1) || die "inspect --verify $id failed"
  echo "$id: $v"
  proved+=("redis stack snapshot with $a: $v")
done
n=$(log_ok)

step "restore the chandy-lamport snapshot on other nodes"
$BIN restore tpdemo-redis-chandy-lamport | tail -5 || die "restore failed"
[ "$(cli INFO server | grep -o 'run_id:[0-9a-f]*')" = "$run_id" ] || die "redis was restarted, not restored (run_id changed)"
[ "$(sum)" = "$want" ] || die "the memory-only dataset did not survive"
n1=$(log_ok); for _ in $(seq 1 240); do n2=$(log_ok); [ "$n2" -ge $((n1 + 20)) ] && break; sleep 0.5; done
[ "$n2" -ge $((n1 + 20)) ] || die "the writer does not write after the restore"
[ "$(client_id 'name=writer')" = "$w" ] || die "the writer's connection did not survive (redis-cli reconnected)"
[ "$(client_id 'flags=P')" = "$s" ] || die "the subscriber's connection did not survive"
proved+=("restored on other nodes: same redis process ($run_id), 20000 keys with the same sum, writer ($w) and subscriber ($s) on their original connections, the writer's list 1..$n2 with no hole")

step "summary"
for p in "${proved[@]}"; do echo "PROVED: $p"; done
echo
echo "The lab stays up: eval \"\$($BIN lab env --name $LAB)\"; $BIN ls; docker service ls"
echo "Remove it with: $BIN lab down --name $LAB"
