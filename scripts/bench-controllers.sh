#!/usr/bin/env bash
# Benchmark the workload controllers with real Pods (issue 14):
#   (a) a Deployment of a one-container Pod scaled 0 -> 50: time until all 50 are Running
#       (goal <= 2.5 s on 2 cores, >= 20 Pods/s), every Pod a distinct IP;
#   (b) self-healing: a replica's supervisor SIGKILLed (the Pod lost) -> its replacement Running
#       (goal <= 1 s), N times (a replica whose pause dies is not replaced: its supervisor gives
#       it a new sandbox, as the kubelet does; tests/recovery.rs);
#   (c) the idle memory of the Deployment's controller processes (keeper + worker: RSS and PSS);
#   (d) scale 50 -> 0: time until no Pod is left, then delete; nothing may be left behind.
#
# usage: scripts/bench-controllers.sh [-n REPLICAS] [-k KILLS] [--debug] [--no-build]   (as root)
# Report: stdout and target/bench/bench-controllers.md. Everything runs in a private podshim
# instance (--root and --state under a temp dir, bridge psbctl0, subnet 10.125.0.0/24), removed
# on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

replicas=50 kills=5 profile=release build=1
usage() { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || usage; replicas=$2; shift 2 ;;
        -k) [ $# -ge 2 ] || usage; kills=$2; shift 2 ;;
        --debug) profile=debug; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $replicas =~ ^[1-9][0-9]*$ && $replicas -le 250 ]] || { echo "-n needs 1..250" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (namespaces, mounts, cgroups, netlink)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing python3" >&2; exit 1; }
[ "$build" = 1 ] && scripts/build.sh "$profile"
bin=$PWD/target/$profile/podshim
export PODSHIM_PAUSE=$PWD/target/$profile/pause
[ -x "$bin" ] && [ -x "$PODSHIM_PAUSE" ] || { echo "missing $bin or $PODSHIM_PAUSE (run without --no-build)" >&2; exit 1; }
image=target/test-images/busybox-oci.tar
[ -s "$image" ] || scripts/make-busybox-image.sh "$image" >/dev/null

bridge=psbctl0 subnet=10.125.0.0/24
[ -e /sys/class/net/$bridge ] && { echo "$bridge already exists: another benchmark running?" >&2; exit 1; }
dir=$(mktemp -d /tmp/podshim-bench-ctl.XXXXXX)
P=("$bin" --root "$dir/root" --state "$dir/state" --bridge $bridge --subnet $subnet --log-root "$dir/logs")
cleanup() {
    "${P[@]}" delete deploy/bench >/dev/null 2>&1 || true
    "${P[@]}" gc >/dev/null 2>&1 || true
    "${P[@]}" reset >/dev/null 2>&1 || true
    umount -R "$dir" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# Pods as the records show them: "<running> <all> <distinct IPs>" for names starting bench-.
count() {
    python3 - "$dir/state/records" <<'EOF'
import json, os, sys
d = sys.argv[1]
running = alln = 0
ips = set()
for f in os.listdir(d) if os.path.isdir(d) else []:
    if not f.endswith(".json") or not f.startswith("default_bench-"):
        continue
    try:
        r = json.load(open(os.path.join(d, f)))
    except Exception:
        continue
    alln += 1
    s = r.get("status", {})
    if s.get("phase") == "Running" and not r.get("terminating"):
        running += 1
        if s.get("podIP"):
            ips.add(s["podIP"])
print(running, alln, len(ips))
EOF
}
now() { date +%s.%N; }
wait_for() { # wait_for RUNNING ALL TIMEOUT_S -> prints elapsed seconds since $t0
    local deadline=$(( $(date +%s) + $3 ))
    while :; do
        read -r r a ips < <(count)
        [ "$r" = "$1" ] && [ "$a" = "$2" ] && break
        [ "$(date +%s)" -lt "$deadline" ] || { echo "timeout: $r running, $a pods (want $1/$2)" >&2; exit 1; }
        sleep 0.01
    done
    python3 -c "print(f'{$(now) - $t0:.3f}')"
}

"${P[@]}" image import --name busybox:1.35 "$image" >/dev/null
cat > "$dir/bench.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench}
spec:
  replicas: 0
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.35
        command: [sh, -c, 'trap "exit 0" TERM; sleep 3600 & wait']
EOF
"${P[@]}" apply -f "$dir/bench.yaml" >/dev/null
sleep 1

# (a) 0 -> N
t0=$(now)
"${P[@]}" scale deploy/bench --replicas "$replicas" >/dev/null
up=$(wait_for "$replicas" "$replicas" 120)
read -r _ _ ips < <(count)
[ "$ips" = "$replicas" ] || { echo "only $ips distinct IPs for $replicas Pods" >&2; exit 1; }
rate=$(python3 -c "print(f'{$replicas / $up:.1f}')")

# (b) self-healing
heal=()
for _ in $(seq "$kills"); do
    sleep 0.5
    victim=$(ls "$dir/state/records" | grep '^default_bench-' | head -1 | sed 's/^default_//; s/\.json$//')
    pid=$(python3 -c "import json; print(json.load(open('$dir/state/records/default_$victim.json'))['supervisor']['pid'])")
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || { echo "no supervisor for $victim" >&2; exit 1; }
    t0=$(now)
    kill -KILL "$pid"
    while [ -e "$dir/state/records/default_$victim.json" ]; do sleep 0.005; done
    heal+=("$(wait_for "$replicas" "$replicas" 30)")
done

# (c) idle memory of the Deployment's controller processes
sleep 2
pids=$(python3 -c "import json; r=json.load(open('$dir/state/controllers/deployments_default_bench.pid')); print(r['keeper'], r['worker'])")
mem=$(for p in $pids; do
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$p/status)
    pss=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup)
    echo "$p $rss $pss"
done)
cpu_idle=$(for p in $pids; do awk '{print $14+$15}' /proc/$p/stat; done | paste -sd+ | bc)
sleep 5
cpu_idle2=$(for p in $pids; do awk '{print $14+$15}' /proc/$p/stat; done | paste -sd+ | bc)

# (d) N -> 0
t0=$(now)
"${P[@]}" scale deploy/bench --replicas 0 >/dev/null
down=$(wait_for 0 0 120)
"${P[@]}" delete deploy/bench >/dev/null
left=$(ls "$dir/state/records" "$dir/state/pods" 2>/dev/null | grep -c json || true)
[ "$left" = 0 ] || { echo "left behind: $left records" >&2; exit 1; }
# The bridge stays after the last Pod, as on a node; `reset` (in cleanup) removes it.

mkdir -p target/bench
report=target/bench/bench-controllers.md
{
    echo "## bench-controllers ($profile build, $(nproc) cores, $(date -u +%Y-%m-%d))"
    echo
    echo "| measure | result | goal |"
    echo "|---|---|---|"
    echo "| scale 0 -> $replicas, all Running | ${up} s (${rate} Pods/s), $ips distinct IPs | <= 2.5 s |"
    echo "| self-healing, supervisor SIGKILLed -> replacement Running | $(printf '%s s ' "${heal[@]}")| <= 1 s |"
    echo "| scale $replicas -> 0, no Pod left | ${down} s | |"
    while read -r p rss pss; do
        echo "| idle controller process $p | RSS ${rss} KiB, PSS ${pss} KiB | |"
    done <<< "$mem"
    echo "| controller CPU over 5 idle s | $((cpu_idle2 - cpu_idle)) ticks | |"
} | tee "$report"
