#!/usr/bin/env bash
# Builds docker-load-able image archives of third-party servers from the Debian packages
# installed on this machine (deploy/setup/setup.sh installs them, services not started),
# with no Docker daemon and no registry (deploy/thirdparty/mkthirdparty: the program, its
# ldd libraries, a minimal /etc):
#
#   build/thirdparty/redis.tar        swarmckpt-thirdparty/redis:deb        redis-server (+ redis-cli), user redis
#   build/thirdparty/redis-tools.tar  swarmckpt-thirdparty/redis-tools:deb  busybox sh + redis-cli, redis-benchmark
#   build/thirdparty/memcached.tar    swarmckpt-thirdparty/memcached:deb    memcached, user memcache
#   build/thirdparty/busybox.tar      swarmckpt-thirdparty/busybox:deb      busybox (sh, nc, ...)
#
# Idempotent and fast on re-run: an archive is rewritten only when its inputs changed
# (same bytes otherwise). With a package missing it says which and exits 3.
# Load one with: docker load -i build/thirdparty/redis.tar (swarmckpt lab up --images build/thirdparty).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-build/thirdparty}
mkdir -p "$out"

missing=()
for f in /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/redis-benchmark /bin/busybox /usr/bin/memcached; do
  [ -e "$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "thirdparty: missing ${missing[*]}: run 'make setup' (installs redis-server redis-tools busybox-static memcached)" >&2
  exit 3
fi

mk=$out/mkthirdparty
CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$mk" ./deploy/thirdparty/mkthirdparty

# Every busybox applet as a symlink in /bin (busybox-static: no libraries).
bblinks=()
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || bblinks+=(--link "/bin/$a=busybox")
done

build() { # NAME, then mkthirdparty flags
  local name=$1; shift
  "$mk" --tag "swarmckpt-thirdparty/$name:deb" --out "$out/$name.tar.new" \
    --label org.swarmckpt.thirdparty.source=debian "$@" >/dev/null
  if cmp -s "$out/$name.tar.new" "$out/$name.tar"; then
    rm -f "$out/$name.tar.new"
    echo "thirdparty: swarmckpt-thirdparty/$name:deb unchanged ($out/$name.tar)"
  else
    mv "$out/$name.tar.new" "$out/$name.tar"
    echo "thirdparty: swarmckpt-thirdparty/$name:deb written ($out/$name.tar)"
  fi
}

# redis-server with no persistence: the dataset lives only in memory (only a
# checkpoint can keep it). protected-mode off: clients come from the overlay network.
build redis \
  --file /usr/bin/redis-server --file /usr/bin/redis-cli \
  --user redis:999:999:/data --run-as redis --dir /data:0750:redis --workdir /data \
  --entrypoint '["/usr/bin/redis-server"]' \
  --cmd '["--save","","--appendonly","no","--protected-mode","no","--bind","0.0.0.0"]' \
  --expose 6379/tcp --label org.swarmckpt.thirdparty.package=redis-server
build redis-tools \
  --file /bin/busybox "${bblinks[@]}" \
  --file /usr/bin/redis-cli --file /usr/bin/redis-benchmark \
  --entrypoint '["/bin/sh"]' --env HOME=/tmp --label org.swarmckpt.thirdparty.package=redis-tools
build memcached \
  --file /usr/bin/memcached \
  --user memcache:998:998 --run-as memcache \
  --entrypoint '["/usr/bin/memcached"]' --cmd '["-m","64","-p","11211","-U","0"]' \
  --expose 11211/tcp --label org.swarmckpt.thirdparty.package=memcached
build busybox \
  --file /bin/busybox "${bblinks[@]}" \
  --entrypoint '["/bin/sh"]' --label org.swarmckpt.thirdparty.package=busybox-static
