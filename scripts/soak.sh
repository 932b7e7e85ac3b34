#!/usr/bin/env bash
# Soak (issue 11 §5): N Pod cycles (default 1000) of a private podshim instance, mixed with
# kills, while one long-lived detached Pod runs throughout; then checks that nothing leaked.
# Not a timed test: it prints figures (README "Soak").
#
# usage: sudo scripts/soak.sh [-n CYCLES]
#   PODSHIM_BIN, PODSHIM_PAUSE, PODSHIM_TEST_IMAGE as for the tests (default: the debug build
#   and the busybox test image of scripts/test.sh).
#
# The cycles, in turn:
#   0 run:        `podshim run` of a one-container Pod to completion
#   1 run -d/rm:  `run -d` of a two-container Pod, `rm -f`
#   2 supervisor: `run -d`, SIGKILL of its supervisor, `rm -f` (the Pod is lost and collected)
#   3 pause:      `run -d` (restartPolicy Always), SIGKILL of its pause (a new sandbox is made,
#                 the container restarts), `rm -f`
# and every 25 cycles the long-lived Pod's pause is killed (its supervisor makes a new sandbox).
# Afterwards: no link, netns pin, mount, cgroup, IPAM lease, process or state file of the
# instance is left; the long-lived supervisor's open descriptors and resident memory are
# compared between the first sample and the last.
set -euo pipefail
cd "$(dirname "$0")/.."
n=1000
while getopts n: o; do case $o in n) n=$OPTARG ;; *) exit 2 ;; esac; done
[ "$(id -u)" = 0 ] || { echo "the soak needs root" >&2; exit 1; }

# Run as the child subreaper of what killed supervisors leave (bash reaps every child it is
# given), as a host's init would: on some machines PID 1 reaps only every second or two, and
# teardown waits for a killed container to be reaped before it removes its cgroup.
if [ -z "${SOAK_SUBREAPER:-}" ]; then
    export SOAK_SUBREAPER=1
    exec python3 -c 'import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
os.execvp(sys.argv[1], sys.argv[1:])' bash "$0" "$@"
fi

bin=${PODSHIM_BIN:-$PWD/target/debug/podshim}
export PODSHIM_PAUSE=${PODSHIM_PAUSE:-$PWD/target/debug/pause}
image=${PODSHIM_TEST_IMAGE:-$PWD/target/test-images/busybox-oci.tar}
for f in "$bin" "$PODSHIM_PAUSE" "$image"; do
    [ -f "$f" ] || { echo "soak: $f not found (run scripts/test.sh or scripts/build.sh debug first)" >&2; exit 1; }
done
tag=soak$$
dir=/tmp/podshim-soak-$$
bridge=pst${tag: -8}
subnet=10.141.$(( $$ % 250 )).0/24
mkdir -p "$dir"
p() { "$bin" --root "$dir/root" --state "$dir/state" --bridge "$bridge" --subnet "$subnet" \
    --log-root "$dir/logs" "$@"; }
export PODSHIM_BACKOFF_SCALE=0.05
cleanup() {
    p ps -o json 2>/dev/null | python3 -c 'import json, sys
for i in json.load(sys.stdin)["items"]: print(i["metadata"]["name"])' 2>/dev/null |
        while read -r pod; do p rm -f --grace-period 0 "$pod" >/dev/null 2>&1 || true; done
    p gc >/dev/null 2>&1 || true
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
p image import --name busybox:1.35 "$image" >/dev/null

manifest() { # NAME UID POLICY COMMAND [SECOND_CONTAINER_COMMAND]
    cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  uid: $2
spec:
  restartPolicy: $3
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox:1.35
    command: [sh, -c, '$4']
EOF
    [ -n "${5:-}" ] && cat <<EOF
  - name: b
    image: busybox:1.35
    command: [sh, -c, '$5']
EOF
    true
}
uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }
field() { # POD JSONPATH-ish python expression on the inspect object
    p inspect "$1" 2>/dev/null | python3 -c "import json, sys; v = json.load(sys.stdin); print($2)" 2>/dev/null || true
}
pause_of() { pgrep -f "pause --hostname $1 " | head -1; }
wait_for() { # WHAT COMMAND...: poll up to 30 s
    local what=$1; shift
    for _ in $(seq 300); do "$@" && return 0; sleep 0.1; done
    echo "soak: $what did not happen within 30 s" >&2; return 1
}

# The long-lived Pod: a container that exits every second (restarted by the back-off), so its
# supervisor keeps working: restarts, logs, records, and every 25 cycles a new sandbox.
long=long-$tag
manifest "$long" "$(uid 999999)" Always 'echo up; sleep 1; exit 1' 'exec sleep 100000' >"$dir/long.yaml"
p run -d "$dir/long.yaml" >/dev/null
sup=$(p ps -o wide | awk -v n="$long" '$2 == n {print $NF}')
sample() { # fds rss_kB
    echo "$(ls "/proc/$sup/fd" | wc -l) $(awk '/^VmRSS/ {print $2}' "/proc/$sup/status")"
}
new_pause() { local now; now=$(pause_of "$1"); [ -n "$now" ] && [ "$now" != "$2" ]; }
kill_long_pause() {
    local old; old=$(pause_of "$long")
    kill -KILL "$old"
    wait_for "a new sandbox for $long" new_pause "$long" "$old"
}
restarted() { # POD: its container restarted once and runs
    local c='v["status"]["containerStatuses"][0]'
    [ "$(field "$1" "str($c[\"restartCount\"]) + ' ' + str('running' in $c[\"state\"])")" = "1 True" ]
}
gone() { ! kill -0 "$1" 2>/dev/null; }
sleep 2
kill_long_pause
sleep 2
read -r fd0 rss0 < <(sample)
samples=("0 $fd0 $rss0")

declare -A count=() secs=()
start=$(date +%s.%N)
for i in $(seq 0 $((n - 1))); do
    kind=$((i % 4))
    name=c$i-$tag
    u=$(uid "$i")
    t0=$(date +%s.%N)
    case $kind in
    0)
        manifest "$name" "$u" Never 'echo hi' >"$dir/m.yaml"
        p run "$dir/m.yaml" >/dev/null
        label=run ;;
    1)
        manifest "$name" "$u" Never 'exec sleep 1000' 'exec sleep 1000' >"$dir/m.yaml"
        p run -d "$dir/m.yaml" >/dev/null
        p rm -f --grace-period 0 "$name" >/dev/null
        label="run -d + rm -f" ;;
    2)
        manifest "$name" "$u" Always 'exec sleep 1000' >"$dir/m.yaml"
        p run -d "$dir/m.yaml" >/dev/null
        s=$(p ps -o wide | awk -v n="$name" '$2 == n {print $NF}')
        kill -KILL "$s"
        wait_for "supervisor $s gone" gone "$s"
        p rm -f "$name" >/dev/null
        label="supervisor killed" ;;
    3)
        manifest "$name" "$u" Always 'exec sleep 1000' >"$dir/m.yaml"
        p run -d "$dir/m.yaml" >/dev/null
        kill -KILL "$(pause_of "$name")"
        wait_for "$name restarted in a new sandbox" restarted "$name"
        p rm -f --grace-period 0 "$name" >/dev/null
        label="pause killed" ;;
    esac
    t1=$(date +%s.%N)
    count[$label]=$(( ${count[$label]:-0} + 1 ))
    secs[$label]=$(echo "${secs[$label]:-0} + $t1 - $t0" | bc)
    if (( (i + 1) % 25 == 0 )); then
        kill_long_pause
    fi
    if (( (i + 1) % 100 == 0 )); then
        read -r fd rss < <(sample)
        samples+=("$((i + 1)) $fd $rss")
        echo "soak: $((i + 1)) cycles, long-lived supervisor: $fd fds, VmRSS $rss kB" >&2
    fi
done
end=$(date +%s.%N)
restarts=$(field "$long" 'sum(c["restartCount"] for c in v["status"]["containerStatuses"])')
p rm -f --grace-period 0 "$long" >/dev/null
# Leaks of the instance.
leaks=()
[ -e "/sys/class/net/$bridge" ] && leaks+=("bridge $bridge")
nveth=$(ip -o link show | grep -c "master $bridge" || true)
[ "$nveth" -gt 0 ] && leaks+=("$nveth veth(s) on $bridge")
nmount=$(awk -v d="$dir/" 'index($5, d) == 1' /proc/self/mountinfo | wc -l)
[ "$nmount" -gt 0 ] && leaks+=("$nmount mount(s) (netns pins, overlays, tmpfs) under $dir")
ncg=$(find /sys/fs/cgroup -path '*/podshim/00000000-0000-4000-8000-*' -maxdepth 4 -type d 2>/dev/null | wc -l)
[ "$ncg" -gt 0 ] && leaks+=("$ncg pod cgroup(s)")
nlease=$(find "$dir/root/ipam" -type f -name '10.*' 2>/dev/null | wc -l)
[ "$nlease" -gt 0 ] && leaks+=("$nlease IPAM lease(s)")
nproc=$(pgrep -fc "pause --hostname [^ ]*-$tag |$dir" || true)
[ "${nproc:-0}" -gt 0 ] && leaks+=("$nproc process(es): $(pgrep -fa "pause --hostname [^ ]*-$tag |$dir" | head -3 | tr '\n' ';')")
nstate=$(find "$dir/state/pods" "$dir/state/records" -mindepth 1 2>/dev/null | wc -l)
[ "$nstate" -gt 0 ] && leaks+=("$nstate state file(s)")
nrt=$(find "$dir/state/runtime" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
[ "$nrt" -gt 0 ] && leaks+=("$nrt libcontainer state dir(s)")
nlayers=$(find "$dir/root/containers" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
[ "$nlayers" -gt 0 ] && leaks+=("$nlayers writable layer dir(s)")

echo
echo "soak: $n cycles in $(echo "$end - $start" | bc | xargs printf '%.0f') s ($(nproc) CPUs, $(uname -r))"
printf '| cycle | count | mean (ms) |\n|---|---:|---:|\n'
for label in run "run -d + rm -f" "supervisor killed" "pause killed"; do
    c=${count[$label]:-0}
    [ "$c" -gt 0 ] && printf '| %s | %d | %.0f |\n' "$label" "$c" "$(echo "${secs[$label]} * 1000 / $c" | bc -l)"
done
echo "long-lived Pod: $((n / 25 + 1)) new sandboxes, $restarts container restarts"
printf '| after cycle | supervisor fds | supervisor VmRSS (kB) |\n|---:|---:|---:|\n'
for s in "${samples[@]}"; do read -r c f r <<<"$s"; printf '| %d | %d | %d |\n' "$c" "$f" "$r"; done
read -r _ fdN rssN <<<"${samples[-1]}"
[ "$fdN" -gt "$fd0" ] && { leaks+=("supervisor descriptors grew from $fd0 to $fdN"); }
# Memory: the last sample may exceed the first by at most 10% (page-cache-like noise of a
# trimmed process); a leak of a few kB per cycle would show as hundreds of kB.
[ "$rssN" -gt $(( rss0 * 110 / 100 )) ] && leaks+=("supervisor VmRSS grew from $rss0 to $rssN kB")
if [ "${#leaks[@]}" -gt 0 ]; then
    printf 'soak: LEAKS: %s\n' "${leaks[@]}" >&2
    exit 1
fi
echo "soak: nothing leaked (links, netns pins, mounts, cgroups, leases, processes, state, supervisor fds and memory)"
