#!/usr/bin/env bash
# Builds the workload binaries (static, CGO_ENABLED=0, standard library only) and one
# docker-load-able image archive per workload, with no Docker daemon and no registry:
#
#   build/workloads/bin/<name>     the static binary
#   build/workloads/<name>.tar     image swarmckpt/<name>:${TAG:-dev}, FROM scratch,
#                                  /<name> with ENTRYPOINT ["/<name>"]
#
# Idempotent and reproducible: a second run rewrites byte-identical files (the Go build
# is -trimpath with an empty build id and no VCS stamp; mkimage uses fixed timestamps).
# Load one with: docker load -i build/workloads/counter.tar
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-build/workloads}
tag=${TAG:-dev}
workloads=(counter echo memhog bank)
declare -A expose=(
  [counter]=8080/tcp
  [echo]=7000/tcp,8080/tcp
  [memhog]=8080/tcp
  [bank]=8080/tcp,9000/tcp
)

mkdir -p "$out/bin"
pkgs=()
for w in "${workloads[@]}"; do pkgs+=("./benchmarks/workloads/$w"); done
CGO_ENABLED=0 GOOS=linux GOARCH="${GOARCH:-amd64}" \
  go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$out/bin/" "${pkgs[@]}"
CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$out/mkimage" ./benchmarks/workloads/mkimage

for w in "${workloads[@]}"; do
  "$out/mkimage" --binary "$out/bin/$w" --tag "swarmckpt/$w:$tag" --out "$out/$w.tar" \
    --expose "${expose[$w]}" --arch "${GOARCH:-amd64}"
done
