#!/usr/bin/env bash
# What the checkpoint of one drained container costs (docs/drain.md), on a running lab:
# a small one (counter) and one holding 256 MiB (memhog), each DUMP_REPS times
#   - through swarmckpt (`swarmckpt snapshot --algorithm minimal`: the worker's dump of
#     one container, leave running; dump_ms as the worker measured it, total_ms the
#     coordinator's snapshot from start to commit), and
#   - raw `runc checkpoint --leave-running` of the same container (the floor).
# Usage: benchmarks/drain/dumpcost.sh LAB   (run.sh calls it; prints BENCH dumpcost lines)
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${1:-drb}
REPS=${DUMP_REPS:-5}
export PATH=/usr/local/sbin:$PATH
eval "$(bin/swarmckpt lab env --name "$LAB" | grep '^export')"
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%d", (b-a)*1000}'; }
for st in counter memhog; do
    bin/swarmckpt lab deploy --name "$LAB" "deploy/examples/$st.yml" "$st" >&2
done
sleep 3 # memhog fills its 256 MiB after start
for st in counter memhog; do
    for r in $(seq 1 "$REPS"); do
        s=$EPOCHREALTIME
        out=$(bin/swarmckpt snapshot "$st" --algorithm minimal --output json)
        e=$EPOCHREALTIME
        echo "$out" | jq -r --arg st "$st" --arg r "$r" --arg wall "$(ms "$s" "$e")" \
            '"BENCH dumpcost stack=\($st) path=swarmckpt rep=\($r) wall_ms=\($wall) total_ms=\(.total_ms) dump_ms=\(.containers[0].dump_ms) images_mib=\((([.containers[0].images.files[].size]|add)/104857.6|floor)/10)"'
        bin/swarmckpt rm "$(echo "$out" | jq -r .id)" >/dev/null
    done
    for i in 1 2 3; do
        node=$LAB-$i
        cid=$(docker -H "unix:///run/swarmckpt/$LAB/$node/docker.sock" ps -q --no-trunc --filter "label=com.docker.swarm.service.name=${st}_${st}")
        [ -n "$cid" ] || continue
        for r in $(seq 1 "$REPS"); do
            dir=$(mktemp -d /var/lib/swarmckpt/drainbench-XXXXXX)
            s=$EPOCHREALTIME
            runc --root "/run/swarmckpt/$LAB/$node/exec/runtime-runc/moby" checkpoint --leave-running \
                --image-path "$dir/images" --work-path "$dir/work" "$cid"
            e=$EPOCHREALTIME
            echo "BENCH dumpcost stack=$st path=runc rep=$r wall_ms=$(ms "$s" "$e") images_mib=$(du -sm "$dir/images" | cut -f1)"
            rm -rf "$dir"
        done
    done
done
for st in counter memhog; do docker stack rm "$st" >/dev/null 2>&1 || true; done # the lab goes down next
