#!/usr/bin/env bash
# The whole test suite (unit and privileged end-to-end tests), as root on Debian 12.
# This is the README's test command and what .ci/run runs.
# usage: scripts/test.sh [--smoke]   (--smoke: only a few end-to-end tests, see below)
#        scripts/test.sh --smoke-list  (print the smoke subset's tests of tests/pod.rs, one a line)
set -euo pipefail
cd "$(dirname "$0")/.."
# The smoke subset (.ci/run runs it inside Docker with scripts/test-in-docker.sh, and
# scripts/test-in-vm.sh --smoke in a cgroup v2 + systemd VM): one Pod with two containers,
# emptyDirs on disk and in memory, the Pod IP, graceful stop, a data root on overlayfs refused;
# each test checks its teardown, check-leaks.sh the whole machine.
smoke=(two_containers_talk_over_localhost
    empty_dirs_are_shared_on_disk_and_in_memory
    containers_share_the_pod_ip_and_hostname
    sigterm_stops_every_container_and_tears_down
    a_data_root_on_overlayfs_is_refused_with_the_fix_before_anything_is_created)
if [ "${1:-}" = --smoke-list ]; then printf '%s\n' "${smoke[@]}"; exit 0; fi
export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] || { echo "the tests need root (namespaces, mounts, cgroups, netlink)" >&2; exit 1; }
scripts/install-deps.sh
scripts/build.sh debug
image=target/test-images/busybox-oci.tar
[ -s "$image" ] || scripts/make-busybox-image.sh "$image"
# podshim's pause as the containerd tests' sandbox image, remade whenever pause was rebuilt.
pause_image=target/test-images/pause-oci.tar
[ "$pause_image" -nt target/pause/release/pause ] || scripts/pause-image.sh "$pause_image" >/dev/null
export PODSHIM_BIN=$PWD/target/debug/podshim
export PODSHIM_PAUSE=$PWD/target/debug/pause
export PODSHIM_TEST_IMAGE=$PWD/$image
export PODSHIM_PAUSE_IMAGE=$PWD/$pause_image
# podshim's containerd shim (built by build.sh with the other binaries): the containerd tests
# run it through a private containerd 1.6 and fail, never skip, when containerd is missing.
export PODSHIM_SHIM=$PWD/target/debug/containerd-shim-podshim-v1
if [ "${1:-}" = --smoke ]; then
    cargo test -p podshim-tests --test pod -- --exact "${smoke[@]}"
else
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -q -- -D warnings
    # --no-fail-fast: one run reports every failing test binary, not only the first.
    cargo test --workspace --exclude podshim-pause --no-fail-fast -- --test-threads=4
fi
scripts/check-leaks.sh
