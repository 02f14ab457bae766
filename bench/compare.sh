#!/usr/bin/env bash
# Side-by-side benchmark of this daemon against Docker Engine 20.10 (Debian's docker.io).
#
#   sudo bench/compare.sh [--rounds N] [--out DIR] [--only GROUP ...]
#
# Builds this project in release mode, installs docker.io if missing, starts both daemons
# isolated (own data-root, exec-root, unix socket, pidfile, and each in a network namespace
# of its own), runs every workload alternately against the two, writes results.json and
# chart.svg into the output directory (default bench/results), and stops both daemons,
# leaving no processes, mounts or network state behind.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench/compare.sh must run as root (it starts container engines)" >&2
    exit 1
fi

need=()
command -v /usr/sbin/dockerd >/dev/null || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v systemd-socket-activate >/dev/null || need+=(systemd)
command -v ip >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)
command -v docker-registry >/dev/null || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi
if [ ! -x /usr/local/bin/docker ] && ! command -v docker >/dev/null; then
    echo "the docker CLI is needed (docker.io provides one)" >&2
    exit 1
fi

cargo build --release --bin dockerd --example loadclient
exec python3 bench/compare.py "$@"
