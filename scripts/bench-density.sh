#!/usr/bin/env bash
# Does start and removal time depend on how many Pods run? Starts N detached one-container Pods
# one after another (`podshim run -d`, a `sleep` container), times `podshim ps` with all of
# them, measures the idle memory of each Pod's own processes (supervisor + pause, proportional
# set size, after the supervisors' idle trim), then removes them one after another
# (`podshim rm -f --grace-period 0`). Reports the first ten against the last ten of starts and
# removals. Goals (issue 16): last ten within 1.2x the first ten; `ps` with 250 Pods under
# 30 ms; under 1.1 MB Pss per Pod; nothing left after removing them all.
#
# usage: scripts/bench-density.sh [-n PODS] [--debug] [--no-build]     (as root)
# BENCH_BIN=PATH (with --no-build) times another podshim binary, e.g. the build before a change,
# with the same pause.
# Report: stdout and target/bench/bench-density.md. A private instance (--root under /var/tmp,
# --state under /run, bridge psdens0, subnet 10.127.0.0/22), removed with `podshim reset` on
# exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
pods=250 profile=release build=1
usage() { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || usage; pods=$2; shift 2 ;;
        --debug) profile=debug; shift ;;
        --no-build) build=0; shift ;;
        *) usage ;;
    esac
done
[[ $pods =~ ^[1-9][0-9]*$ ]] && [ "$pods" -ge 20 ] && [ "$pods" -le 1000 ] || { echo "-n: 20 to 1000 Pods" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root" >&2; exit 1; }
[ "$build" = 1 ] && scripts/build.sh "$profile"
bin=${BENCH_BIN:-target/$profile/podshim}
[ -x "$bin" ] || { echo "missing $bin" >&2; exit 1; }
image=target/test-images/busybox-oci.tar
[ -s "$image" ] || scripts/make-busybox-image.sh "$image" >/dev/null
[ -e /sys/class/net/psdens0 ] && { echo "psdens0 exists: another run?" >&2; exit 1; }

tmp=$(mktemp -d /var/tmp/podshim-density.XXXXXX)
run=$(mktemp -d /run/podshim-density.XXXXXX)
[[ $bin = /* ]] || bin=$PWD/$bin
P=("$bin" --root "$tmp/root" --state "$run/state" --log-root "$tmp/logs"
    --bridge psdens0 --subnet 10.127.0.0/22)
export PODSHIM_PAUSE=$PWD/target/$profile/pause
cleanup() {
    set +e
    "${P[@]}" ps -o json 2>/dev/null | python3 -c 'import json,sys
for p in json.load(sys.stdin)["items"]: print(p["metadata"]["name"])' |
        xargs -r "${P[@]}" rm -f --grace-period 0 >/dev/null 2>&1
    "${P[@]}" gc >/dev/null 2>&1
    "${P[@]}" reset >/dev/null 2>&1
    # BENCH_KEEP_LOGS=DIR keeps the Pods' logs (with PODSHIM_LOG=debug, each start's steps).
    [ -n "${BENCH_KEEP_LOGS:-}" ] && cp -a "$tmp/logs" "$BENCH_KEEP_LOGS"
    rm -rf --one-file-system "$tmp" "$run"
}
trap cleanup EXIT
"${P[@]}" image import --name busybox:1.35 "$image" >/dev/null
mkdir -p target/bench

PODS=$pods TMP=$tmp python3 - "${P[@]}" <<'EOF'
import os, statistics, subprocess, sys, time

P, N, TMP = sys.argv[1:], int(os.environ["PODS"]), os.environ["TMP"]

def timed(args):
    t0 = time.perf_counter()
    p = subprocess.run(P + args, capture_output=True, text=True)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        sys.exit(f"podshim {' '.join(args)} failed: {p.stderr}")
    return dt, p.stdout

def pss(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []

def name(i):
    return f"dens-{i:04d}"

start = []
for i in range(N):
    path = f"{TMP}/pod-{i}.yaml"
    with open(path, "w") as f:
        f.write(f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name(i)}\nspec:\n"
                "  terminationGracePeriodSeconds: 0\n  containers:\n"
                "  - name: c\n    image: busybox:1.35\n    command: [sleep, '3600']\n")
    start.append(timed(["run", "-d", path])[0])
    if (i + 1) % 50 == 0:
        print(f"started {i + 1} Pods, last start {start[-1]:.1f} ms", file=sys.stderr, flush=True)

ps = sorted(timed(["ps"])[0] for _ in range(7))
_, wide = timed(["ps", "-o", "wide"])
sups = [int(l.split()[-1]) for l in wide.splitlines()[1:] if l.split()[-1].isdigit()]
# An idle supervisor trims its resident memory 10 s after its last work.
time.sleep(12)
per_pod = []
for s in sups:
    pause = [c for c in children(s) if open(f"/proc/{c}/comm").read().strip() == "pause"]
    per_pod.append(pss(s) + sum(pss(c) for c in pause))

remove = []
for i in range(N):
    remove.append(timed(["rm", "-f", "--grace-period", "0", name(i)])[0])
    if (i + 1) % 50 == 0:
        print(f"removed {i + 1} Pods, last removal {remove[-1]:.1f} ms", file=sys.stderr, flush=True)
_, left = timed(["ps"])
leftover = len(left.splitlines()[1:])

def row(what, xs):
    first, last = statistics.median(xs[:10]), statistics.median(xs[-10:])
    return f"| {what} | {first:.1f} | {last:.1f} | {last / first:.2f} |"

load = open("/proc/loadavg").read().split()[:3]
lines = [
    "# podshim density benchmark", "",
    f"{N} detached one-container Pods, started then removed one after another; "
    f"load average at the end {' '.join(load)}, {os.cpu_count()} CPUs.", "",
    "| milliseconds (median) | first 10 | last 10 | last / first |", "|---|---:|---:|---:|",
    row("`podshim run -d`", start), row("`podshim rm -f --grace-period 0`", remove), "",
    f"`podshim ps` with {N} Pods: median {statistics.median(ps):.1f} ms "
    f"(min {ps[0]:.1f}, max {ps[-1]:.1f}).",
    f"Idle memory per Pod (supervisor + pause, Pss): median {statistics.median(per_pod)} kB, "
    f"max {max(per_pod)} kB over {len(per_pod)} Pods.",
    f"Pods listed after removing them all: {leftover}.",
]
report = "\n".join(lines) + "\n"
print(report)
open("target/bench/bench-density.md", "w").write(report)
EOF
