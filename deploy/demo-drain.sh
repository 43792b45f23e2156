#!/usr/bin/env bash
# make demo-drain (docs/drain.md): draining a node moves the bank holders on it with
# their memory. A 3-node lab with swarmckpt's coordinator, workers and agents; the
# bank stack (5 holders) deployed labelled swarmckpt.on-drain: migrate (swarm mode);
# then
#   1. 'swarmckpt node drain' of one node: the orchestrated path; for a swarm-mode
#      stack it is the drain hold of step 2 (the holders there armed, the node set to
#      drain, each held stop checkpointed and restored elsewhere), and the command
#      waits for each replacement and prints its downtime;
#   2. a plain 'docker node update --availability drain' of another node: the runtime
#      wrapper holds each holder's stop there until it is checkpointed, and swarm's
#      replacement is restored from it on another node, readdressed by the address
#      map, while the holders that stay translate its old address to the new one
#      (docs/drain.md, "The address map of a held task");
#   3. 'swarmckpt migrate bank --mode swarm --from NODE': no drain; a placement
#      constraint makes swarm replace only the holders on NODE, through the same hold
#      (docs/drain.md, "Partial migration in swarm mode").
# After each: every moved holder is the same instance (same process memory) with no
# fewer transfers than before, and the bank audit must conserve the money total with
# no transfer lost in flight. 'swarmckpt events' follows throughout and is printed at
# the end. Prints PROVED lines and removes the lab (KEEP=1 leaves it up).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/sbin:$PATH
BIN=${BIN:-bin/swarmckpt}
LAB=${LAB:-drain}
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%T)"; }
die() { echo "demo-drain: $*" >&2; exit 1; }
proved=()
work=$(mktemp -d)

step "lab: 3 nodes, coordinator + a worker and agent per node (removing an earlier one first)"
$BIN lab down --name "$LAB" >/dev/null 2>&1 || true
$BIN lab up --name "$LAB" --nodes 3
cleanup() {
  [ -n "${events_pid:-}" ] && kill -INT "$events_pid" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then $BIN lab down --name "$LAB" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
eval "$($BIN lab env --name "$LAB")"   # DOCKER_HOST, SWARMCKPT_NATS, SWARMCKPT_DATA_DIR

step "swarmckpt events follows the coordinator's event stream"
$BIN events >"$work/events.log" 2>&1 &
events_pid=$!

step "deploy bank (5 holders) labelled swarmckpt.on-drain: migrate"
# bank.yml's own labels plus on-drain; no schedule, so that only the drains act.
sed -e 's|        swarmckpt.enable: "true"|        swarmckpt.enable: "true"\n        swarmckpt.on-drain: migrate|' \
    -e '/swarmckpt.schedule:/d; /swarmckpt.retain:/d' deploy/examples/bank.yml >"$work/bank.yml"
grep -q 'swarmckpt.on-drain: migrate' "$work/bank.yml" || die "bank.yml changed: could not add the on-drain label"
$BIN lab deploy --name "$LAB" "$work/bank.yml" bank

# bank_json: the audit of the live stack (pauses the holders until the channels are
# drained; exit 0 iff the total is conserved), as JSON.
bank_json() { docker run --rm --network bank_net swarmckpt/bank:dev query --service holder --count 5 --settle 90s --json; }
# holders FILE: "ID INSTANCE TRANSFERS_SENT" per holder from a bank_json output.
# ("instance" is the last field of a holder's state.)
holders() { awk '/^      "id": /{gsub(/,/,"",$2); id=$2} /^      "transfers_sent": /{gsub(/,/,"",$2); sent=$2} /^      "instance": /{gsub(/[",]/,"",$2); print id, $2, sent}' "$1" | sort -n; }
# placement: "SLOT NODE" of every running holder task.
placement() { docker service ps bank_holder --filter desired-state=running --format '{{.Name}} {{.Node}} {{.CurrentState}}' |
  awk '$3=="Running"{sub(/^bank_holder\./,"",$1); print $1, $2}' | sort -n; }
# armed NODE: every holder container on NODE has its arm file (the worker writes
# <data-root>/swarmckpt/drain/arm-<ID> when the coordinator arms it).
armed() {
  local id ids
  ids=$(DOCKER_HOST=unix:///run/swarmckpt/$LAB/$1/docker.sock docker ps -q --no-trunc --filter label=com.docker.swarm.service.name=bank_holder)
  [ -n "$ids" ] || return 1
  for id in $ids; do [ -e "/var/lib/swarmckpt/$LAB/$1/docker/swarmckpt/drain/arm-$id" ] || return 1; done
}

meshed=""; for _ in $(seq 1 120); do
  if docker run --rm --network bank_net swarmckpt/bank:dev query --service holder --count 5 --connected >/dev/null 2>&1; then meshed=1; break; fi
  sleep 0.5
done
[ -n "$meshed" ] || die "the bank holders did not all connect to each other; see docker service logs bank_holder"

# drain_and_check HOW NODE: drains NODE (HOW: docker or swarmckpt), then checks that the
# holders that ran there run elsewhere as the same instances with their transfers.
drain_and_check() {
  local how=$1 node=$2 moved=() slot n
  placement >"$work/before.place"
  while read -r slot n; do [ "$n" = "$node" ] && moved+=("$slot"); done <"$work/before.place"
  [ ${#moved[@]} -gt 0 ] || die "no bank holder on $node to drain (placement: $(tr '\n' ' ' <"$work/before.place"))"
  # Every holder on the node armed (the coordinator's policy pass).
  for _ in $(seq 1 120); do armed "$node" && break; sleep 0.5; done
  armed "$node" || die "the holders on $node were not all armed for drains within 60 s (arm files in /var/lib/swarmckpt/$LAB/$node/docker/swarmckpt/drain)"
  bank_json >"$work/before.json" || { cat "$work/before.json"; die "bank total not conserved before the drain"; }
  holders "$work/before.json" >"$work/before.holders"
  echo "holders on $node: ${moved[*]}; before: $(tr '\n' ';' <"$work/before.holders")"
  local t0=$EPOCHREALTIME
  case $how in
  docker) docker node update --availability drain "$node" >/dev/null ;;
  swarmckpt) $BIN node drain "$node" ;;
  migrate) $BIN migrate bank --mode swarm --from "$node" ;;
  esac
  local ok="" t
  for _ in $(seq 1 240); do
    placement >"$work/after.place"
    if [ "$(wc -l <"$work/after.place")" = 5 ] && ! grep -q " $node\$" "$work/after.place"; then ok=1; break; fi
    sleep 0.5
  done
  t=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN {printf "%.1f", a-b}')
  [ -n "$ok" ] || die "after the drain of $node, holders are not all running elsewhere: $(tr '\n' ' ' <"$work/after.place")"
  echo "all 5 holders running off $node ${t}s after the drain: $(tr '\n' ' ' <"$work/after.place")"
  local audit=ok total
  bank_json >"$work/after.json" || audit=failed
  total=$(grep -o '"total": *[0-9]*' "$work/after.json" | grep -o '[0-9]*$' || true)
  if [ "$audit" != ok ]; then
    sed -n '/"problems"/,/]/p' "$work/after.json"
    die "bank audit failed after the $how drain of $node (total $total; problems above)"
  fi
  holders "$work/after.json" >"$work/after.holders"
  local same=() s bi bs ai as to
  for s in "${moved[@]}"; do
    read -r _ bi bs < <(grep "^$s " "$work/before.holders")
    read -r _ ai as < <(grep "^$s " "$work/after.holders")
    to=$(awk -v s="$s" '$1==s{print $2}' "$work/after.place")
    [ "$ai" = "$bi" ] || die "holder $s moved $node -> $to as a new instance ($bi -> $ai): its memory was lost"
    [ "$as" -ge "$bs" ] || die "holder $s has $as transfers sent on $to, $bs before: state lost"
    same+=("holder $s $node->$to instance $ai transfers_sent $bs->$as")
  done
  local what="$how drain"
  [ "$how" = migrate ] && what="swarmckpt migrate --mode swarm --from"
  proved+=("$what of $node: the holders there (${moved[*]}) moved with their memory (${same[*]}); all 5 running elsewhere ${t}s after the drain; bank total $total conserved, no transfer lost in flight")
}

N2="$LAB-2"; N3="$LAB-3"
step "1. swarmckpt node drain $N2 (the orchestrated path)"
drain_and_check swarmckpt "$N2"
$BIN node activate "$N2"

step "2. docker node update --availability drain $N3 (plain swarm command)"
# After the first drain no holder may be left on $N3: the drain needs one there.
if ! placement | grep -q " $N3\$"; then N3=$(placement | awk '{print $2}' | sort | uniq -c | sort -rn | awk '{print $2; exit}'); fi
drain_and_check docker "$N3"
docker node update --availability active "$N3" >/dev/null

step "3. swarmckpt migrate bank --mode swarm --from NODE (no drain: a placement constraint moves only the holders there)"
N4="$LAB-1"
if ! placement | grep -q " $N4\$"; then N4=$(placement | awk '{print $2}' | sort | uniq -c | sort -rn | awk '{print $2; exit}'); fi
drain_and_check migrate "$N4"
av=$(docker node inspect --format '{{.Spec.Availability}}' "$N4")
[ "$av" = active ] || die "$N4 is $av after swarmckpt migrate --from: a migration must not drain the node"
if docker service inspect --format '{{json .Spec.TaskTemplate.Placement.Constraints}}' bank_holder | grep -q "node.hostname!=$N4"; then
  die "bank_holder keeps the migration's placement constraint node.hostname!=$N4"
fi

step "swarmckpt events (what the coordinator decided and did)"
kinds="task-held checkpointed restored migrated node-drain"
seen_all() { local k; for k in $kinds; do grep -q " $k " "$work/events.log" || return 1; done; }
for _ in $(seq 1 40); do seen_all && break; sleep 0.5; done
kill -INT "$events_pid" 2>/dev/null || true; wait "$events_pid" 2>/dev/null || true; events_pid=""
cat "$work/events.log"
for k in $kinds; do
  grep -q " $k " "$work/events.log" || die "swarmckpt events showed no $k event"
done
proved+=("swarmckpt events showed the drain hold (task-held, checkpointed, restored) and the orchestrated drain (migrated, node-drain)")

step "summary"
for p in "${proved[@]}"; do echo "PROVED: $p"; done
