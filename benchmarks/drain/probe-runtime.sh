#!/bin/bash
# Probe OCI runtime for the drain benchmark (benchmarks/drain/run.sh); NOT a production
# path. run.sh installs a copy with @STATE@ and @REAL@ filled in and registers it as the
# lab nodes' default runtime. It appends one line per call to @STATE@/calls.log:
#
#   <unix time, µs> <pid> <subcommand> <all arguments>
#
# and then execs the real swarmckpt-runtime (@REAL@) with the same arguments. While the
# file @STATE@/hold holds a number N, every `kill` with a signal other than KILL (9)
# sleeps N seconds before it is passed on (a stand-in for "the worker dumps first"),
# logging hold-begin and hold-end lines; when it holds the word ckpt instead, the kill
# first runs `runc checkpoint` (exit) of the container into @STATE@/ckpt/ID (a stand-in
# for design A's dump at the held stop), logging ckpt-rc. bash's $EPOCHREALTIME: no fork
# per call.
state=@STATE@
real=@REAL@
t=$EPOCHREALTIME
cmd= sig= root= i=0 args=("$@")
while [ $i -lt ${#args[@]} ]; do
    a=${args[$i]}
    case $a in
    --root) root=${args[$((i + 1))]}; i=$((i + 2)); continue ;;
    --log|--log-format|--criu) i=$((i + 2)); continue ;;
    -*) i=$((i + 1)); continue ;;
    esac
    cmd=$a
    break
done
echo "$t $$ $cmd $*" >>"$state/calls.log"
if [ "$cmd" = kill ]; then
    sig=${args[$((${#args[@]} - 1))]}
    if [ -s "$state/hold" ] && [ "$sig" != 9 ] && [ "$sig" != KILL ] && [ "$sig" != SIGKILL ]; then
        n=$(<"$state/hold")
        echo "$EPOCHREALTIME $$ hold-begin $n $*" >>"$state/calls.log"
        if [ "$n" = ckpt ]; then
            id=${args[$((${#args[@]} - 2))]}
            mkdir -p "$state/ckpt/$id"
            rc=0
            "$real" --root "$root" --criu /usr/local/sbin/criu checkpoint \
                --image-path "$state/ckpt/$id/images" --work-path "$state/ckpt/$id/work" "$id" \
                >"$state/ckpt/$id/out" 2>&1 || rc=$?
            echo "$EPOCHREALTIME $$ ckpt-rc $rc $*" >>"$state/calls.log"
        else
            sleep "$n"
        fi
        echo "$EPOCHREALTIME $$ hold-end $n $*" >>"$state/calls.log"
    fi
fi
exec "$real" "$@"
