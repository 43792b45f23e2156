#!/usr/bin/env bash
# The README's main command (make demo runs setup, build and images first): a 3-node swarm
# lab on this machine with swarmckpt's coordinator (embedded NATS + etcd) and a worker and
# agent per node; the bank and echo stacks deployed across it; the bank stack snapshotted
# with every algorithm and each cut verified; a snapshot restored on other nodes with the
# money total holding; the echo stack migrated to another node keeping its TCP connection;
# bank's own labels (deploy/examples/bank.yml) schedule a chandy-lamport snapshot every
# 15 s throughout, each image set copied to a second node, retention keeping the newest 2
# (a command of the demo that meets a scheduled run waits for it).
# It prints what it proved, and leaves the lab up for you to explore.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/sbin:$PATH
BIN=${BIN:-bin/swarmckpt}
LAB=${LAB:-demo}
ALGORITHMS=${ALGORITHMS:-blocking chandy-lamport uncoordinated minimal}
step() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
proved=()

step "lab: 3 nodes, coordinator + a worker and agent per node (removing an earlier demo lab first)"
$BIN lab down --name "$LAB" >/dev/null 2>&1 || true
$BIN lab up --name "$LAB" --nodes 3
eval "$($BIN lab env --name "$LAB")"   # DOCKER_HOST, SWARMCKPT_NATS, SWARMCKPT_DATA_DIR
NODES=$($BIN lab status --name "$LAB" --output json | grep -o '"name": *"'"$LAB"'-[0-9]*"' | grep -o "$LAB-[0-9]*")

# on_node NODE docker-args...: plain docker against one lab node
on_node() { local n=$1; shift; DOCKER_HOST=unix:///run/swarmckpt/$LAB/$n/docker.sock docker "$@"; }
# where SERVICE: prints "NODE CONTAINER" of the running container of a service, wherever it is
where() {
  local n id
  for n in $NODES; do
    # a swarm task, or a container restored from one (swarm's labels are not carried)
    id=$(on_node "$n" ps -q --filter "label=com.docker.swarm.service.name=$1" | head -1)
    [ -n "$id" ] || id=$(on_node "$n" ps -q --filter "label=io.swarmckpt.service=$1" | head -1)
    if [ -n "$id" ]; then echo "$n $id"; return 0; fi
  done
  return 1
}
field() { grep -o "\"$1\": *[^,}]*" | head -1 | sed 's/^"[^"]*": *//; s/"//g'; }
echo_status() { local w; w=$(where echo_client) || return 1; on_node ${w% *} exec ${w#* } /echo get /status; }
bank_query() { docker run --rm --network bank_net swarmckpt/bank:dev query --service holder --count 5 --settle 90s; }

step "deploy the echo stack (client and server on different nodes) and the bank stack (5 holders)"
$BIN lab deploy --name "$LAB" deploy/examples/echo.yml echo
$BIN lab deploy --name "$LAB" deploy/examples/bank.yml bank
docker service ps echo_client echo_server bank_holder --filter desired-state=running --format '{{.Name}} on {{.Node}}'

r1=""; for _ in $(seq 1 120); do
  s=$(echo_status 2>/dev/null || true); r=$(field replies <<<"$s")
  if [ -n "$r" ] && [ "$r" -gt 0 ]; then
    if [ -z "$r1" ]; then r1=$r; elif [ "$r" -ge $((r1 + 50)) ]; then break; fi
  fi
  sleep 0.5
done
[ -n "$r1" ] && [ "${r:-0}" -ge $((r1 + 50)) ] || die "echo replies do not flow across nodes; see docker service logs echo_client"
conn_before=$(field conn_id <<<"$s"); remote_before=$(field remote_addr <<<"$s")
proved+=("echo replies flow across nodes over one TCP connection ($r1 -> $r replies, connection $remote_before)")

# Snapshot a formed mesh: a connection one holder has and its peer has not accepted yet
# is in no process's images (the checker would rightly call it a missing endpoint).
meshed=""; for _ in $(seq 1 120); do
  if docker run --rm --network bank_net swarmckpt/bank:dev query --service holder --count 5 --connected >/dev/null 2>&1; then meshed=1; break; fi
  sleep 0.5
done
[ -n "$meshed" ] || die "the bank holders did not all connect to each other; see docker service logs bank_holder"

step "snapshot the bank stack with every algorithm, verify each cut"
for a in $ALGORITHMS; do
  id="demo-bank-$a"
  $BIN snapshot bank --algorithm "$a" --id "$id" | tail -3 || die "snapshot with $a failed"
  rc=0; out=$($BIN inspect "$id" --verify 2>&1) || rc=$?
  verdict=$(grep -i "cut check" <<<"$out" | head -1)
  echo "$id: $verdict"
  if [ "$a" = uncoordinated ]; then
    # Independent checkpoints promise no consistent cut; the checker must say which it is.
    [ -n "$verdict" ] || { echo "$out"; die "inspect --verify of $id gave no verdict"; }
    grep -E 'VIOLATION' <<<"$out" | head -3 || true
    proved+=("bank snapshot with uncoordinated: the checker judged its cut ($verdict); uncoordinated promises no consistent cut")
  else
    [ "$rc" = 0 ] || { echo "$out"; die "inspect --verify of $id failed"; }
    proved+=("bank snapshot with $a: $verdict")
  fi
done
$BIN ls bank

step "bank total after the snapshots (live)"
bank_query | tail -3 || die "bank total does not hold"
proved+=("bank total holds on the live stack after 4 snapshots")

step "restore the chandy-lamport snapshot of bank on other nodes"
$BIN restore demo-bank-chandy-lamport | tail -8 || die "restore failed"
bank_query | tail -3 || die "bank total does not hold after restore"
proved+=("bank restored on other nodes from the chandy-lamport cut; transfers continue and the total holds")

step "remove a snapshot: its manifest and its image sets on the nodes go"
out=$($BIN rm demo-bank-blocking) || die "rm failed"
echo "$out"
n=$(grep -o '([0-9]* image set' <<<"$out" | grep -o '[0-9]*')
[ "${n:-0}" -ge 5 ] || die "rm deleted ${n:-0} image sets, want 5"
! $BIN inspect demo-bank-blocking >/dev/null 2>&1 || die "demo-bank-blocking still listed after rm"
proved+=("rm demo-bank-blocking deleted the manifest and $n image sets on the nodes")

step "migrate the echo stack: move the client off its node"
w=$(where echo_client) || die "echo client not found"
from=${w% *}
$BIN migrate echo --from "$from" | tail -6 || die "migrate failed"
w=$(where echo_client) || die "echo client not running after migrate"
echo "echo client moved from $from to ${w% *}"
[ "${w% *}" != "$from" ] || die "echo client still on $from"
s0=$(echo_status); sleep 2; s=$(echo_status)
echo "$s" | grep -E '"(replies|gaps|duplicates|reconnects|conn_id|remote_addr)"' | tr -d ' ,' | paste -sd' '
[ "$(field conn_id <<<"$s")" = "$conn_before" ] || die "echo client is on a new connection"
[ "$(field reconnects <<<"$s")" = 0 ] && [ "$(field gaps <<<"$s")" = 0 ] && [ "$(field duplicates <<<"$s")" = 0 ] || die "echo client saw gaps, duplicates or reconnects"
[ "$(field replies <<<"$s")" -gt "$(field replies <<<"$s0")" ] || die "echo replies stopped after migrate"
proved+=("echo client migrated $from -> ${w% *}: same TCP connection ($remote_before), no gap, duplicate or reconnect, replies continue")

step "scheduled snapshots: bank.yml's labels schedule them, 2 copies of each image set, retention keeps the newest 2"
$BIN policy bank
removed=""; kept=""; for _ in $(seq 1 60); do
  out=$($BIN policy bank --output json)
  kept=$(field kept <<<"$out")
  removed=$(grep -A3 '"removed"' <<<"$out" | grep -o '"bank-[^"]*"' | head -1 | tr -d '"' || true)
  [ "$kept" = 2 ] && [ -n "$removed" ] && ! grep -q '"running"' <<<"$out" && break
  sleep 2
done
[ "$kept" = 2 ] && [ -n "$removed" ] || { echo "$out"; die "no scheduled run of bank was followed by retention within 2 minutes"; }
$BIN ls bank | grep -E '^ID| schedule ' || true
n=$($BIN ls bank | grep -cE ' committed +[a-z-]+ +schedule ' || true)
[ "$n" = 2 ] || die "$n scheduled snapshots of bank listed, want 2 (retain 2)"
! $BIN inspect "$removed" >/dev/null 2>&1 || die "$removed still listed after retention removed it"
left=$({ ls -d /var/lib/swarmckpt/"$LAB"/*/docker/swarmckpt/sets/"$removed".* 2>/dev/null || true; } | wc -l)
[ "$left" = 0 ] || die "retention removed $removed but $left of its image sets are still on the nodes' disks"
# swarmckpt.replicas "2": every set of a kept scheduled snapshot (the older of the 2, whose
# copies are done) is on 2 nodes' disks.
kept1=$($BIN ls bank | grep -E ' committed +[a-z-]+ +schedule ' | head -1 | awk '{print $1}')
on=$({ ls -d /var/lib/swarmckpt/"$LAB"/*/docker/swarmckpt/sets/"$kept1".* 2>/dev/null || true; } | xargs -rn1 basename | sort | uniq -c | awk '{print $1}' | sort -u | paste -sd,)
[ "$on" = 2 ] || die "the image sets of $kept1 are on $on nodes each, want 2 (swarmckpt.replicas 2)"
$BIN inspect "$kept1" | grep -E '^CONTAINER|holder' || true
proved+=("bank.yml's labels schedule a chandy-lamport snapshot every 15 s: 'swarmckpt ls' lists the newest 2 scheduled ones, each image set on 2 nodes' disks (replicas 2), retention removed $removed with its image sets and their copies on every node")

step "summary"
for p in "${proved[@]}"; do echo "PROVED: $p"; done
echo
echo "The lab stays up: eval \"\$($BIN lab env --name $LAB)\"; $BIN ls; docker service ls"
echo "Remove it with: $BIN lab down --name $LAB"
