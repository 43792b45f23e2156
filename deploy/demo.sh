#!/usr/bin/env bash
# The README's main command (make demo runs setup, build and images first): a 3-node swarm
# lab on this machine, an example stack deployed across it, proven to run.
# Later stages (snapshot, migrate, verify) run when the coordinator is built in.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/sbin:$PATH
BIN=${BIN:-bin/swarmckpt}
LAB=${LAB:-demo}
step() { printf '\n== %s\n' "$*"; }
proved=()

step "lab: 3 nodes (removing an earlier demo lab first)"
$BIN lab down --name "$LAB" >/dev/null 2>&1 || true
$BIN lab up --name "$LAB" --nodes 3
export DOCKER_HOST=$($BIN lab env --name "$LAB" | awk -F= '/^export/{print $2}')

step "deploy the echo stack (client and server on different nodes)"
$BIN lab deploy --name "$LAB" deploy/examples/echo.yml echo
docker service ps echo_client echo_server --format '{{.Name}} on {{.Node}}: {{.CurrentState}}'

client_status() {
  local node id
  node=$(docker service ps echo_client --filter desired-state=running --format '{{.Node}}' | head -1)
  id=$(DOCKER_HOST=unix:///run/swarmckpt/$LAB/$node/docker.sock docker ps -q --filter label=com.docker.swarm.service.name=echo_client | head -1)
  DOCKER_HOST=unix:///run/swarmckpt/$LAB/$node/docker.sock docker exec "$id" /echo get /status
}
replies() { grep -o '"replies": *[0-9]*' | grep -o '[0-9]*$'; }
r1=""; for i in $(seq 1 120); do
  s=$(client_status 2>/dev/null || true); r=$(replies <<<"$s")
  if [ -n "$r" ] && [ "$r" -gt 0 ]; then
    if [ -z "$r1" ]; then r1=$r; t1=$(date +%s.%N); elif [ "$r" -ge $((r1 + 50)) ]; then break; fi
  fi
  sleep 0.5
done
r2=${r:-0}
grep -E '"(replies|gaps|duplicates|reconnects|remote_addr)"' <<<"$s" | tr -d ' ,' | paste -sd' '
if [ -n "$r1" ] && [ "$r2" -ge $((r1 + 50)) ]; then
  proved+=("echo replies flow across nodes over one TCP connection ($r1 -> $r2 replies)")
else
  echo "demo: echo replies do not flow across nodes; see docker service logs echo_client" >&2; exit 1
fi

step "summary"
for p in "${proved[@]}"; do echo "PROVED: $p"; done
echo "The lab stays up: eval \"\$($BIN lab env --name $LAB)\"; docker service ls. Remove it with: $BIN lab down --name $LAB"
