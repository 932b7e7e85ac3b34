#!/usr/bin/env bash
# Benchmark podshim's containerd shim against containerd-shim-runc-v2 in one private containerd
# 1.6 (tests/containerd/bench.rs), interleaved: `ctr run --rm` of busybox `true`, the CRI path
# (RunPodSandbox + CreateContainer/StartContainer of two containers), and the idle memory
# (VmRSS, Pss) of the shim serving a Pod of pause + two containers.
# Goals (issue 13): memory at most 0.25x, each timing at most 0.7x runc's.
#
# usage: scripts/bench-shim.sh [-n ITERATIONS] [--no-build]     (as root; default 10 iterations)
# Report: stdout and target/bench/bench-shim.md. Everything it makes lives under
# /tmp/podshim-test-* and the cgroup /podshim-test-*, removed at the end (the harness checks).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

iterations=10 build=1
usage() { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || usage; iterations=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $iterations =~ ^[1-9][0-9]*$ ]] || { echo "-n needs a positive integer" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (containerd, containers)" >&2; exit 1; }
for t in containerd ctr containerd-shim-runc-v2 runc umoci; do
    command -v $t >/dev/null || { echo "missing $t (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ "$build" = 1 ]; then
    # The shim under test in release; the rest (podshim-bridge, pause, the harness) as the
    # test suite builds them.
    cargo build -q --release -p containerd-shim-podshim
    scripts/build.sh debug >/dev/null
fi
image=target/test-images/busybox-oci.tar
[ -s "$image" ] || scripts/make-busybox-image.sh "$image"
pause_image=target/test-images/pause-oci.tar
[ -s "$pause_image" ] || scripts/pause-image.sh "$pause_image" >/dev/null
export PODSHIM_TEST_IMAGE=$PWD/$image PODSHIM_PAUSE_IMAGE=$PWD/$pause_image
export PODSHIM_SHIM=$PWD/target/release/containerd-shim-podshim-v1
[ -x "$PODSHIM_SHIM" ] || { echo "missing $PODSHIM_SHIM (run without --no-build)" >&2; exit 1; }
export PODSHIM_BENCH_N=$iterations PODSHIM_BENCH_REPORT=$PWD/target/bench/bench-shim.md
cargo test -q -p podshim-tests --test containerd_bench -- --ignored --nocapture --test-threads=1
