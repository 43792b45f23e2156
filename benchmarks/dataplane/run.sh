#!/usr/bin/env bash
# Data-plane benchmark (make bench-dataplane): dump, restore and cold migration through
# the swarmckpt worker vs `docker checkpoint` and raw `runc checkpoint`, on a 2-node lab;
# and the product's `swarmckpt migrate` per copy mode vs Docker's path and raw CRIU
# (case product: the lab's coordinator; benchmarks/dataplane/product.go).
# Prints BENCH lines; see benchmarks/dataplane/RESULTS.md for recorded results.
#
#   SIZES=64,256,1024 LAB=dpbench benchmarks/dataplane/run.sh
#
# Needs root, the lab (swarmckpt lab) and swarmckpt-runtime installed as the nodes'
# default runtime (this script installs it from cmd/swarmckpt-runtime when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${LAB:-dpbench}
SIZES=${SIZES:-64,256,1024}
IMAGE=swarmckpt/dptest:dev
mkdir -p build
go build -o build/swarmckpt ./cmd/swarmckpt
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o build/swarmckpt-runtime ./cmd/swarmckpt-runtime
if ! cmp -s build/swarmckpt-runtime /usr/local/bin/swarmckpt-runtime; then
    install -m 0755 build/swarmckpt-runtime /usr/local/bin/swarmckpt-runtime
fi
CGO_ENABLED=0 go build -o build/dptest ./worker/internal/testimg

started=
if ! build/swarmckpt lab status --name "$LAB" >/dev/null 2>&1; then
    # absent, or left behind by an ended session (status exits 1 when a node is down)
    build/swarmckpt lab down --name "$LAB" >/dev/null 2>&1 || true
    build/swarmckpt lab up --nodes 2 --name "$LAB" >&2
    started=1
fi
cleanup() { [ -n "$started" ] && build/swarmckpt lab down --name "$LAB" >&2 || true; }
trap cleanup EXIT

nodes=()
for i in 1 2; do
    sock="unix:///run/swarmckpt/$LAB/$LAB-$i/docker.sock"
    nodes+=(--node "$sock")
    if ! docker -H "$sock" image inspect "$IMAGE" >/dev/null 2>&1; then
        tmp=$(mktemp -d)
        mkdir -p "$tmp/tmp" "$tmp/etc" && cp build/dptest "$tmp/testimg"
        tar -C "$tmp" -c . | docker -H "$sock" import --change 'ENTRYPOINT ["/testimg"]' - "$IMAGE" >/dev/null
        rm -rf "$tmp"
    fi
done
echo "# $(date -u +%FT%TZ) $(uname -r) criu $(criu --version | awk '/Version/{print $2}') $(nproc) cores" >&2
# --lab: the product case migrates through this lab's coordinator (swarmckpt migrate).
go run ./benchmarks/dataplane --swarmckpt build/swarmckpt --image "$IMAGE" --sizes "$SIZES" "${nodes[@]}" \
    --lab "$LAB" --workloads "${SWARMCKPT_IMAGES:-build/workloads}" --dptest build/dptest "$@"
