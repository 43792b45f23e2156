#!/usr/bin/env bash
# swarmckpt machine setup: installs what is missing and nothing else.
#
#   - Docker engine from Debian's packages (docker.io), experimental features on;
#   - CRIU >= 4.2: an installed criu that passes `criu check` and dumps a TCP socket is
#     reused; otherwise criu 4.2 from Debian sid is unpacked into a private prefix
#     (SWARMCKPT_CRIU_PREFIX, default /opt/swarmckpt/criu) and run through that prefix's
#     own dynamic loader, so the host libc is never upgraded;
#   - /etc/criu/runc.conf with the options swarmckpt needs;
#   - nftables, iproute2, util-linux (nsenter), iptables;
#   - fs.pipe-max-size = 512 KiB (SWARMCKPT_PIPE_MAX_SIZE; "keep" leaves it): CRIU dumps
#     faster with smaller page pipes on some hosts, see section 5.
#
# Idempotent: a second run changes nothing and takes seconds.
# Exit codes: 0 ok, 2 wrong user/OS, 3 a package could not be installed, 4 CRIU check failed.
set -euo pipefail

PREFIX=${SWARMCKPT_CRIU_PREFIX:-/opt/swarmckpt/criu}
WRAPPER=/usr/local/sbin/criu
STAMP_DIR=/var/lib/swarmckpt/setup
export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup: %s\n' "$*"; }
die() { local code=$1; shift; printf 'setup: error: %s\n' "$*" >&2; exit "$code"; }

[ "$(id -u)" = 0 ] || die 2 "must run as root (it installs packages and writes /etc/criu); run: sudo make setup"
[ -r /etc/os-release ] || die 2 "cannot read /etc/os-release; swarmckpt setup supports Debian 12 (bookworm) only"
. /etc/os-release
if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
  die 2 "this is ${PRETTY_NAME:-an unknown OS}; swarmckpt setup supports Debian 12 (bookworm) only. On another OS install Docker (experimental on), CRIU >= 4.2 and nftables yourself, then run 'swarmckpt lab up'"
fi
[ "$(uname -m)" = x86_64 ] || die 2 "architecture $(uname -m) is not supported (x86_64 only)"
mkdir -p "$STAMP_DIR"; chmod 0700 "$STAMP_DIR"

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    apt-get update -qq >/dev/null || die 3 "apt-get update failed; check that Debian's mirror is reachable"
    apt_updated=1
  fi
}

# --- 1. Debian packages ---------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v nft >/dev/null || need+=(nftables)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
command -v xz >/dev/null || need+=(xz-utils)
# External control-plane servers, used by the tests of `coordinator --nats/--etcd` and by
# `lab up --external-control-plane` (3-member etcd, 3-server NATS); never started by setup
# (the embedded servers are the default).
command -v nats-server >/dev/null || need+=(nats-server)
command -v etcd >/dev/null || need+=(etcd-server)
# Third-party servers packed into images by deploy/thirdparty/build.sh (make
# images-thirdparty) to try swarmckpt on software that is not the project's; never started.
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v memcached >/dev/null || need+=(memcached)
command -v busybox >/dev/null || need+=(busybox-static)
# Podman: a baseline of the algorithm benchmark (benchmarks/algorithms, make
# bench-algorithms), the single-container checkpoint tool users pick today; never started.
command -v podman >/dev/null || need+=(podman)
if [ ${#need[@]} -gt 0 ]; then
  apt_update
  say "installing ${need[*]}"
  # Packages must not start services here (etcd-server would start etcd on 2379).
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  rc=0
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die 3 "apt-get install ${need[*]} failed"
else
  say "packages present (docker.io, nftables, iptables, iproute2, util-linux, nats-server, etcd-server, redis-server, redis-tools, memcached, busybox, podman)"
fi

# --- 2. Docker configuration ----------------------------------------------------------
mkdir -p /etc/docker
if ! grep -q '"experimental": *true' /etc/docker/daemon.json 2>/dev/null; then
  if [ -s /etc/docker/daemon.json ] && [ "$(tr -d ' \n' </etc/docker/daemon.json)" != "{}" ]; then
    die 3 "/etc/docker/daemon.json exists without \"experimental\": true; add it by hand (swarmckpt does not rewrite your daemon config)"
  fi
  say "writing /etc/docker/daemon.json (experimental on)"
  printf '{\n  "experimental": true\n}\n' >/etc/docker/daemon.json
fi

# --- 3. CRIU >= 4.2 -------------------------------------------------------------------
# Reused only if it is >= 4.2, passes `criu check` AND dumps an established TCP
# connection (4.1 passes `criu check` on this kernel but fails on TCP: "Can't get 1:16 opt").
criu_ok() { # $1 = criu binary; checks version >= 4.2 and `criu check`
  local bin=$1 v
  v=$("$bin" --version 2>/dev/null | awk '/^Version:/{print $2}') || return 1
  [ -n "$v" ] || return 1
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  { [ "$major" -gt 4 ] || { [ "$major" = 4 ] && [ "$minor" -ge 2 ]; }; } || return 1
  "$bin" check >/dev/null 2>&1 || return 1
  criu_tcp_ok "$bin"
}

# criu_tcp_ok: the binary really dumps an established TCP connection (in a throwaway
# network namespace; deploy/setup/tcpcheck). Skipped with a warning when Go is missing.
criu_tcp_ok() {
  local root
  root=$(cd "$(dirname "$0")/../.." && pwd)
  if ! command -v go >/dev/null; then
    say "warning: go not on PATH; cannot run the TCP dump check of $1"
    return 0
  fi
  (cd "$root" && go run ./deploy/setup/tcpcheck -criu "$1") >/dev/null 2>"$STAMP_DIR/tcpcheck.err" || {
    say "criu at $1 fails the TCP dump check: $(tail -3 "$STAMP_DIR/tcpcheck.err" | tr '\n' ' ')"
    return 1
  }
}

have_criu=""
if command -v criu >/dev/null 2>&1 && criu_ok "$(command -v criu)"; then
  have_criu=$(command -v criu)
fi
if [ -z "$have_criu" ]; then
  if [ -x "$PREFIX/usr/sbin/criu" ] && [ -x "$WRAPPER" ] && criu_ok "$WRAPPER"; then
    have_criu=$WRAPPER
  fi
fi
if [ -z "$have_criu" ]; then
  say "installing criu 4.2 from Debian sid into $PREFIX (host libc untouched)"
  src=/etc/apt/sources.list.d/swarmckpt-newer.sources
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  if [ ! -f "$src" ]; then
    cat >"$src" <<EOF
Types: deb
URIs: $uri
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >/etc/apt/preferences.d/swarmckpt-newer <<'EOF'
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: *
Pin: release n=sid
Pin-Priority: 40
EOF
    apt_updated=0
  fi
  apt_update
  dl=$(mktemp -d /tmp/swarmckpt-criu-debs.XXXXXX); chmod 0700 "$dl"
  ( cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root -t sid criu libcompel1 libnet9 libnl-3-200 >/dev/null ) \
    || die 3 "could not download criu from Debian sid; check the mirror"
  ( cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root -t trixie libc6 libgnutls30t64 libnftables1 libprotobuf-c1 libbsd0 \
      libuuid1 libmnl0 libnftnl11 libjansson4 libxtables12 libidn2-0 libunistring5 \
      libtasn1-6 libnettle8t64 libhogweed6t64 libgmp10 libp11-kit0 libffi8 libmd0 \
      libedit2 libtinfo6 libgcc-s1 >/dev/null ) \
    || die 3 "could not download criu's libraries from Debian trixie; check the mirror"
  rm -rf "$PREFIX.new"; mkdir -p "$PREFIX.new"
  for f in "$dl"/*.deb; do dpkg -x "$f" "$PREFIX.new"; done
  rm -rf "$dl" "$PREFIX"; mv "$PREFIX.new" "$PREFIX"
  cat >"$WRAPPER" <<EOF
#!/bin/sh
# swarmckpt: criu $(basename "$PREFIX") from a private prefix, run through its own loader
exec $PREFIX/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $PREFIX/usr/lib/x86_64-linux-gnu $PREFIX/usr/sbin/criu "\$@"
EOF
  chmod 0755 "$WRAPPER"
  criu_ok "$WRAPPER" || die 4 "criu in $PREFIX fails 'criu check': $("$WRAPPER" check 2>&1 | tail -3 | tr '\n' ' ')"
  have_criu=$WRAPPER
fi
say "criu: $have_criu ($("$have_criu" --version | awk '/^Version:/{print $2}'), criu check and TCP dump check: ok)"

# --- 4. /etc/criu/runc.conf -----------------------------------------------------------
mkdir -p /etc/criu
# skip-in-flight: a listener with connections in its accept queue (handshake done, not
# accept()ed yet) would fail the dump; those connections are left out instead and the
# client's end is restored unpaired (docs/algorithms.md, "TCP states at the cut").
want_conf='# written by swarmckpt setup: options runc passes to CRIU on every checkpoint/restore
tcp-established
skip-in-flight
file-locks
network-lock nftables
'
if ! cmp -s <(printf '%s' "$want_conf") /etc/criu/runc.conf 2>/dev/null; then
  say "writing /etc/criu/runc.conf"
  printf '%s' "$want_conf" >/etc/criu/runc.conf
fi
# --- 5. kernel settings -------------------------------------------------------------
# fs.pipe-max-size caps CRIU's page pipes, and so the size of each splice of pages into
# an image file. On VMs whose memory the host backs lazily, big splices allocate big
# page-cache folios that are slow to fill: a raw runc checkpoint of 1 GiB took 0.8-1.2 s
# at 512 KiB and 3.0-6.3 s at 4 MiB (docs/dataplane.md, "Pipe size"). Post-copy's lazy
# page server needs 4 MiB: the worker raises the setting while one serves pages and puts
# it back after (worker/pipemax). SWARMCKPT_PIPE_MAX_SIZE=keep leaves the setting alone.
want_pipe=${SWARMCKPT_PIPE_MAX_SIZE:-524288}
if [ "$want_pipe" != keep ] && [ "$(cat /proc/sys/fs/pipe-max-size)" != "$want_pipe" ]; then
  say "sysctl fs.pipe-max-size=$want_pipe (CRIU's page pipes; SWARMCKPT_PIPE_MAX_SIZE=keep leaves it)"
  sysctl -qw fs.pipe-max-size="$want_pipe" || say "warning: could not set fs.pipe-max-size; dumps may be slower (docs/dataplane.md, \"Pipe size\")"
fi
say "done"
