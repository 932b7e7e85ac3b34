#!/usr/bin/env bash
# Benchmark whole Pod cycles (start, containers run `true` and exit, teardown), interleaved in one run:
#   (a) a 1-container Pod: podshim vs `runc run` of a bundle of the same image vs podman kube play
#   (b) a 2-container Pod sharing an emptyDir: podshim vs podman kube play
#   (c) a detached 2-container Pod: `run -d` and `rm -f` times and the per-Pod processes' memory
#       (supervisor + pause) vs podman kube play + pod rm (conmons + infra)
# plus the resident memory of podshim and pause while a `sleep 5` Pod runs.
# Goals (issue 16): (a) podshim <= 1.5x `runc run`; (b) <= 0.1x podman; the detached
# two-container start (c) <= 40 ms. (b) <= 50 ms is the older goal of issue 3.
#
# usage: scripts/bench-pod.sh [-n ITERATIONS] [--no-podman] [--no-build]     (as root)
# BENCH_BASELINE=/path/to/podshim (its pause next to it) also measures that build in the same loop
# (variants base-a/b/d, ratios against them), to compare two commits under the same load.
# Report: stdout and target/bench/bench-pod.md. Everything runs in a private podshim instance
# (--root under a temp dir in /var/tmp, --state under one in /run, bridge psbench0, subnet 10.123.0.0/24), a private
# runc root and a private podman configuration/storage; all of it is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

iterations=20 podman=1 build=1
usage() { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || usage; iterations=$2; shift 2 ;;
        -n*) iterations=${1#-n}; shift ;;
        --no-podman) podman=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $iterations =~ ^[1-9][0-9]*$ ]] || { echo "-n needs a positive integer" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (namespaces, mounts, cgroups, netlink)" >&2; exit 1; }
"$(dirname "$0")/install-deps.sh" --bench
for t in runc umoci python3; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done

[ "$build" = 1 ] && scripts/build.sh release
for b in target/release/podshim target/release/pause; do
    [ -x "$b" ] || { echo "missing $b (run without --no-build)" >&2; exit 1; }
done
image=target/bench/busybox-oci.tar
[ -s "$image" ] || scripts/make-busybox-image.sh "$image" >/dev/null

bridge=psbench0 subnet=10.123.0.0/24
podman_bridge=psbpod0 podman_subnet=10.124.0.0/24
[ -e /sys/class/net/$bridge ] && { echo "$bridge already exists: another benchmark running?" >&2; exit 1; }

# What exists before we start, so cleanup removes only what this run created.
had_fwd=0; iptables -S NETAVARK_FORWARD >/dev/null 2>&1 && had_fwd=1
had_nat=0; iptables -t nat -S NETAVARK-HOSTPORT-DNAT >/dev/null 2>&1 && had_nat=1
had_libpod_parent=0; [ -d /sys/fs/cgroup/memory/libpod_parent ] && had_libpod_parent=1

tmp=$(mktemp -d /var/tmp/podshim-bench.XXXXXX)
# Live state on tmpfs, where each tool keeps it by default (/run/podshim, /run/runc,
# /run/containers/storage); images and data on disk.
run=$(mktemp -d /run/podshim-bench.XXXXXX)
export BENCH_TMP=$tmp BENCH_RUN=$run

cleanup() {
    local rc=$?
    set +e
    # podman: every Pod of the private store, then its mounts (overlay, netns, shm).
    if [ -f "$tmp/containers.conf" ] && command -v podman >/dev/null; then
        local pm=(podman --root "$tmp/podman/root" --runroot "$run/podman" --tmpdir "$run/podman-tmp")
        CONTAINERS_CONF=$tmp/containers.conf "${pm[@]}" pod rm -a -f -t 0 >/dev/null 2>&1
        CONTAINERS_CONF=$tmp/containers.conf "${pm[@]}" rm -a -f -t 0 >/dev/null 2>&1
        CONTAINERS_CONF=$tmp/containers.conf "${pm[@]}" volume rm -a -f >/dev/null 2>&1
    fi
    # runc: any container of the private root, and the cgroup parent of its bundle.
    if [ -d "$run/runc" ]; then
        for id in $(runc --root "$run/runc" list -q 2>/dev/null); do runc --root "$run/runc" delete -f "$id"; done
    fi
    for d in /sys/fs/cgroup/*/psbench; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    # podman's cgroupfs manager leaves its per-Pod cgroups behind (name=systemd and unified).
    if [ "$had_libpod_parent" = 0 ]; then
        for d in /sys/fs/cgroup/*/libpod_parent; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    fi
    # netavark's firewall chains, when this run created them.
    if [ "$had_fwd" = 0 ] && iptables -S NETAVARK_FORWARD >/dev/null 2>&1; then
        iptables -D FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD 2>/dev/null
        iptables -F NETAVARK_FORWARD; iptables -X NETAVARK_FORWARD
    fi
    if [ "$had_nat" = 0 ] && iptables -t nat -S NETAVARK-HOSTPORT-DNAT >/dev/null 2>&1; then
        iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT 2>/dev/null
        iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT 2>/dev/null
        iptables -t nat -D POSTROUTING -j NETAVARK-HOSTPORT-MASQ 2>/dev/null
        for c in NETAVARK-HOSTPORT-DNAT NETAVARK-HOSTPORT-MASQ NETAVARK-HOSTPORT-SETMARK; do
            iptables -t nat -F $c 2>/dev/null; iptables -t nat -X $c 2>/dev/null
        done
    fi
    # podshim's kept bridge and its node rules (masquerade, forward chain).
    "$PWD/target/release/podshim" --root "$tmp/podshim/root" --state "$run/podshim" \
        --bridge $bridge --subnet $subnet reset >/dev/null 2>&1
    # Bridges: netavark removes psbpod0 after its last Pod.
    ip netns list | grep -qw psbench-floor && ip netns del psbench-floor
    for br in $bridge ${bridge}n $podman_bridge psbfloor0 psbfloorv; do
        if [ -e /sys/class/net/$br ]; then echo "cleanup: removing leftover bridge $br" >&2; ip link del $br; fi
    done
    # A pause process of this benchmark has one of our Pod hostnames (psbench-*).
    local left=()
    for p in $(pgrep -x pause); do
        h=$(nsenter -t "$p" -u hostname 2>/dev/null) || continue
        [[ $h == psbench-* ]] && left+=("$p")
    done
    if [ ${#left[@]} -gt 0 ]; then
        echo "cleanup: pause process(es) of the benchmark left: ${left[*]}; killing them" >&2
        kill -9 "${left[@]}"; rc=1
    fi
    # Every mount under the temp dirs (podman's overlay/netns/shm, podshim's if a Pod failed), deepest first.
    for t in "$tmp" "$run"; do
        awk -v t="$t" '$5 == t || index($5, t "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
            while read -r m; do umount -l "$m"; done
    done
    rm -rf "$tmp" "$run"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BENCH_PODMAN=$podman BENCH_ITERATIONS=$iterations BENCH_IMAGE=$image \
BENCH_BRIDGE=$bridge BENCH_SUBNET=$subnet BENCH_SUBNET_NOKEEP=10.125.0.0/24 BENCH_PODMAN_BRIDGE=$podman_bridge \
BENCH_PODMAN_SUBNET=$podman_subnet BENCH_REPORT=target/bench/bench-pod.md \
    python3 scripts/bench_pod.py
