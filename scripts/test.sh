#!/usr/bin/env bash
# The whole test suite (unit and privileged end-to-end tests), as root on Debian 12.
# This is the README's test command and what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "the tests need root (namespaces, mounts, cgroups, netlink)" >&2; exit 1; }
scripts/install-deps.sh
scripts/build.sh debug
image=target/test-images/busybox-oci.tar
[ -s "$image" ] || scripts/make-busybox-image.sh "$image"
export PODSHIM_BIN=$PWD/target/debug/podshim
export PODSHIM_PAUSE=$PWD/target/debug/pause
export PODSHIM_TEST_IMAGE=$PWD/$image
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --exclude podshim-pause -- --test-threads=4
scripts/check-leaks.sh
