#!/usr/bin/env bash
# Benchmark CNI ADD+DEL latency: podshim-bridge vs the reference bridge plugin (with the reference
# host-local IPAM) for the same config (only `type` differs), interleaved in one run, each
# attachment in a fresh network namespace made by this script (not timed).
# Goal (issue 4): podshim-bridge takes at most half the reference's time. A third, "floor" run
# times the kernel's part alone (a veth pair made into the netns and deleted, by spawned `ip`).
#
# usage: scripts/bench-cni.sh [-n ITERATIONS] [--no-build]     (as root; default 50 iterations)
# Report: stdout and target/bench/bench-cni.md. Uses bridge pscbench0, subnet 10.121.250.0/24 and
# a temporary IPAM data directory; removes all of them (and every netns it made) on exit and
# puts net.ipv4.ip_forward back (the reference bridge plugin sets it for a gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

iterations=50 build=1
usage() { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || usage; iterations=$2; shift 2 ;;
        -n*) iterations=${1#-n}; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $iterations =~ ^[1-9][0-9]*$ ]] || { echo "-n needs a positive integer" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (network namespaces, netlink)" >&2; exit 1; }
for t in python3 ip; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
reference=/usr/lib/cni
for p in bridge host-local; do
    [ -x "$reference/$p" ] || { echo "missing $reference/$p (apt-get install containernetworking-plugins)" >&2; exit 1; }
done

[ "$build" = 1 ] && cargo build -q --release -p podshim-cni
ours=target/release/podshim-bridge
[ -x "$ours" ] || { echo "missing $ours (run without --no-build)" >&2; exit 1; }

bridge=pscbench0 subnet=10.121.250.0/24
[ -e /sys/class/net/$bridge ] && { echo "$bridge already exists: another benchmark running?" >&2; exit 1; }
tmp=$(mktemp -d /var/tmp/podshim-bench-cni.XXXXXX)
fwd=$(cat /proc/sys/net/ipv4/ip_forward)
cleanup() {
    local rc=$?
    set +e
    for ns in $(ip netns list | awk '{print $1}' | grep '^pscb-'); do ip netns del "$ns"; done
    [ -e /sys/class/net/$bridge ] && ip link del $bridge
    [ -e /sys/class/net/pscbfloor0 ] && ip link del pscbfloor0
    rm -rf "$tmp"
    echo "$fwd" > /proc/sys/net/ipv4/ip_forward
    exit $rc
}
trap cleanup EXIT INT TERM

mkdir -p "$tmp/bin" target/bench
ln -s "$PWD/$ours" "$tmp/bin/podshim-bridge"
for p in bridge host-local; do ln -s "$reference/$p" "$tmp/bin/$p"; done

python3 - "$iterations" "$tmp" "$bridge" "$subnet" <<'EOF'
import json, os, statistics, subprocess, sys, time

iterations, tmp, bridge, subnet = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
plugins = ["podshim-bridge", "bridge"]
FLOOR = "floor"

def conf(plugin):
    return json.dumps({
        "cniVersion": "1.0.0", "name": "pscbench", "type": plugin, "bridge": bridge,
        "isGateway": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                 "dataDir": os.path.join(tmp, "ipam")},
    }).encode()

def cni(plugin, command, cid, netns):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": "eth0", "CNI_PATH": os.path.join(tmp, "bin"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    t = time.perf_counter()
    p = subprocess.run([os.path.join(tmp, "bin", plugin)], input=conf(plugin), env=env,
                       capture_output=True)
    ms = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit(f"{plugin} {command} failed: {p.stdout.decode()} {p.stderr.decode()}")
    return ms

def ip(*args):
    t = time.perf_counter()
    subprocess.run(["ip", *args], check=True)
    return (time.perf_counter() - t) * 1000

def cycle(plugin, i):
    ns = f"pscb-{i}-{plugin}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        path = f"/run/netns/{ns}"
        if plugin == FLOOR:
            # The kernel's part alone: one veth pair into the netns and its deletion, each by
            # a process spawned like a plugin.
            add = ip("link", "add", "pscbfloor0", "type", "veth", "peer", "name", "eth0",
                     "netns", ns)
            dele = ip("link", "del", "pscbfloor0")
        else:
            add = cni(plugin, "ADD", f"bench-{i}", path)
            dele = cni(plugin, "DEL", f"bench-{i}", path)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
    return add, dele

# One untimed round each: the bridge is created by the first ADD, then kept by both plugins.
runs = plugins + [FLOOR]
for p in runs:
    cycle(p, "warmup")
times = {p: {"add": [], "del": [], "total": []} for p in runs}
for i in range(iterations):
    # Interleaved, alternating the order.
    for p in (runs if i % 2 == 0 else runs[::-1]):
        add, dele = cycle(p, i)
        times[p]["add"].append(add)
        times[p]["del"].append(dele)
        times[p]["total"].append(add + dele)

leases = [f for f in os.listdir(os.path.join(tmp, "ipam", "pscbench")) if f[0].isdigit()]
if leases:
    sys.exit(f"leases left after DEL: {leases}")

def stat(xs):
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})"

lines = [f"CNI ADD+DEL latency, {iterations} interleaved iterations, milliseconds: median (min–max)", "",
         "| plugin | ADD | DEL | ADD+DEL |", "|---|---:|---:|---:|"]
names = {"podshim-bridge": "podshim-bridge (in-process host-local)",
         "bridge": "reference bridge + host-local",
         FLOOR: "floor: `ip link add` veth pair into the netns / `ip link del` it"}
for p in runs:
    t = times[p]
    lines.append(f"| {names[p]} | {stat(t['add'])} | {stat(t['del'])} | {stat(t['total'])} |")
ratio = statistics.median(times["podshim-bridge"]["total"]) / statistics.median(times["bridge"]["total"])
med = {p: statistics.median(times[p]["total"]) for p in runs}
del_med = {p: statistics.median(times[p]["del"]) for p in runs}
lines += ["", f"ratio of medians (podshim-bridge / reference), ADD+DEL: {ratio:.2f} "
          f"(goal: at most 0.50: {'met' if ratio <= 0.5 else 'NOT met'})",
          f"the floor (kernel veth work plus two process spawns) is {med[FLOOR]:.1f} ms, "
          f"{med[FLOOR] / med['bridge']:.2f} of the reference's ADD+DEL; its DEL alone "
          f"(`ip link del`: the kernel waits for an RCU grace period) {del_med[FLOOR]:.1f} ms",
          f"above the floor: podshim-bridge {med['podshim-bridge'] - med[FLOOR]:.1f} ms, "
          f"reference {med['bridge'] - med[FLOOR]:.1f} ms"]
report = "\n".join(lines) + "\n"
print(report, end="")
with open("target/bench/bench-cni.md", "w") as f:
    f.write(report)
EOF
