#!/usr/bin/env bash
# Benchmark: `docker import` of a ~200 MiB root filesystem tarball against the limit
# set by hashing and writing its bytes once (sha256sum of the file plus a plain copy
# of it). Builds the release binary, makes the tarball from the host's /usr in a
# temporary directory, starts a fresh daemon there, and prints both times and the
# ratio. Needs root (the daemon unpacks with the archive's owners) and the docker CLI.
#
#   bench/import.sh [SIZE_MIB]      (default 200)
#   BENCH_DIR=/mnt/x bench/import.sh   (run on another filesystem)
set -euo pipefail

size_mib=${1:-200}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}

command -v docker >/dev/null || { echo "the docker CLI is needed (docker client only)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root: the daemon keeps file owners when unpacking" >&2; exit 1; }

(cd "$repo" && cargo build --release -j2 --quiet)
dockerd=$target/release/dockerd

# Both sides write to the same filesystem: BENCH_DIR (default /var/tmp, on disk).
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/dockerd-import-bench.XXXXXX")
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "building a ~${size_mib} MiB root filesystem tarball from /usr ..."
python3 - "$work/files" "$size_mib" <<'PY'
import os, sys
out, limit = sys.argv[1], int(sys.argv[2]) << 20
total = 0
with open(out, "w") as f:
    # A distribution's mix: many small files (share), libraries and programs;
    # single files over 16 MiB are left out so no one file dominates.
    for top in ("usr/share", "usr/bin", "usr/sbin", "usr/lib", "usr/libexec"):
        for root, dirs, files in os.walk("/" + top):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(root, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if st.st_size > 16 << 20:
                    continue
                f.write(p[1:] + "\n")
                total += st.st_size
                if total >= limit:
                    sys.exit(0)
PY
tar -C / --no-recursion -cf "$work/rootfs.tar" -T "$work/files" 2>/dev/null || true
bytes=$(stat -c %s "$work/rootfs.tar")
files=$(wc -l < "$work/files")
echo "tarball: $((bytes >> 20)) MiB, $files entries"

now() { date +%s.%N; }
# Warm the page cache so both measurements read the tarball from memory.
cat "$work/rootfs.tar" > /dev/null

t0=$(now); sha256sum "$work/rootfs.tar" > /dev/null; t1=$(now)
cp "$work/rootfs.tar" "$work/copy.tar"; t2=$(now)
sync -f "$work/copy.tar"; t3=$(now)
rm -f "$work/copy.tar"
hash_s=$(echo "$t1 - $t0" | bc -l)
copy_s=$(echo "$t2 - $t1" | bc -l)
sync_s=$(echo "$t3 - $t2" | bc -l)
limit_s=$(echo "$hash_s + $copy_s" | bc -l)

: > "$work/daemon.json"
"$dockerd" --data-root "$work/root" --exec-root "$work/exec" --pidfile "$work/pid" \
    -H "unix://$work/d.sock" --config-file "$work/daemon.json" --log-level warn \
    > "$work/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    docker -H "unix://$work/d.sock" version >/dev/null 2>&1 && break
    sleep 0.1
done
docker -H "unix://$work/d.sock" version >/dev/null

t4=$(now)
docker -H "unix://$work/d.sock" import "$work/rootfs.tar" bench/rootfs:1 > /dev/null
t5=$(now)
import_s=$(echo "$t5 - $t4" | bc -l)

mib() { echo "$bytes / 1048576 / $1" | bc -l; }
printf 'limit: sha256sum %.3fs + plain copy %.3fs = %.3fs  (%.0f MiB/s)\n' \
    "$hash_s" "$copy_s" "$limit_s" "$(mib "$limit_s")"
printf 'docker import (hash, unpack, syncfs, commit): %.3fs  (%.0f MiB/s)\n' \
    "$import_s" "$(mib "$import_s")"
printf 'ratio import/limit: %.2f (target <= 1.5)\n' "$(echo "$import_s / $limit_s" | bc -l)"
printf '(for reference: flushing the copy to disk took another %.3fs; the import includes its own flush)\n' "$sync_s"
