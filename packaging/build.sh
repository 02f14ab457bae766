#!/usr/bin/env bash
# Builds the dockerd packages: a .deb (cargo-deb) and an .rpm (cargo-generate-rpm).
#
#   packaging/build.sh [OUTPUT_DIR]        # default: dist/ in the repository
#
# Needs: a Rust toolchain, dpkg-dev (dpkg-shlibdeps works out the .deb's
# dependencies), gzip and strip (binutils). cargo-deb and cargo-generate-rpm
# are installed with `cargo install --locked` when missing. CARGO_TARGET_DIR is
# honoured; CARGO_BUILD_JOBS (default 2) sets the build's parallelism.
#
# The man page and the shell completions are generated from the flag definitions
# by build.rs into cargo's OUT_DIR; this script asks cargo where that is and
# stages them, with a stripped copy of the binary, in
# <target>/release/package-assets/, where the packaging metadata in Cargo.toml
# expects them.
#
# No tmpfiles.d entry is shipped: the daemon creates its data root
# (/var/lib/docker) and exec root (/run/docker) itself, mode 0700, and nothing
# in them may be aged or cleaned by systemd-tmpfiles.
set -euo pipefail

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(realpath -m "${1:-$repo/dist}")
cd "$repo"
jobs=${CARGO_BUILD_JOBS:-2}

die() {
    echo "packaging/build.sh: $*" >&2
    exit 1
}

for tool in dpkg-shlibdeps gzip strip; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is missing: install it with 'apt-get install -y dpkg-dev binutils gzip'"
done

# The cargo subcommands, at the versions this packaging was written for.
install_tool() { # install_tool <crate> <version> <cargo subcommand>
    local have
    have=$(cargo "$3" --version 2>/dev/null || true)
    if [[ "$have" != *"$2"* ]]; then
        echo "==> installing $1 $2"
        cargo install --locked -j "$jobs" "$1@$2"
    fi
}
install_tool cargo-deb "$CARGO_DEB_VERSION" deb
install_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION" generate-rpm

target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
[[ -n "$target_dir" ]] || die "cannot find cargo's target directory (cargo metadata)"
export CARGO_TARGET_DIR=$target_dir

echo "==> building dockerd (release)"
messages=$(mktemp)
trap 'rm -f "$messages"' EXIT
cargo build --release --locked -j "$jobs" --bin dockerd \
    --message-format=json-render-diagnostics >"$messages"
# Cargo reports the build script's OUT_DIR whether or not it ran this time.
out_dir=$(grep '"reason":"build-script-executed"' "$messages" |
    grep '#dockerd@' | grep -o '"out_dir":"[^"]*"' | cut -d'"' -f4 | tail -n1)
[[ -n "$out_dir" && -f "$out_dir/man/dockerd.8" ]] ||
    die "build.rs did not report the generated man page (looked in '${out_dir:-?}')"

assets=$target_dir/release/package-assets
echo "==> staging generated files in $assets"
rm -rf "$assets"
mkdir -p "$assets"
gzip -9 -n -c "$out_dir/man/dockerd.8" >"$assets/dockerd.8.gz"
cp "$out_dir/completions/dockerd.bash" "$out_dir/completions/_dockerd" \
    "$out_dir/completions/dockerd.fish" "$assets/"
strip -o "$assets/dockerd" "$target_dir/release/dockerd"

mkdir -p "$out"
echo "==> building the .deb"
# Stripped like the .rpm's copy: the release profile keeps line tables for backtraces.
cargo deb --no-build --locked --strip --output "$out"
echo "==> building the .rpm"
cargo generate-rpm --target-dir "$target_dir" --output "$out"

echo "==> packages in $out:"
ls -l "$out"/dockerd_*.deb "$out"/dockerd-*.rpm
