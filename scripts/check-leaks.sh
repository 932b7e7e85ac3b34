#!/usr/bin/env bash
# Fail when podshim (or its tests) left anything on this host: pause processes, test bridges and
# veths, test registries, podshim mounts, podshim cgroups.
set -u
# Give processes killed at the very end of the tests a moment to be reaped by their parents.
for _ in $(seq 50); do
    pids=$(ps -eo stat=,comm= | awk '$2 == "pause" && $1 !~ /^Z/' | wc -l)
    [ "$pids" -eq 0 ] && break
    sleep 0.1
done
# The registry tests' docker-registry and token server processes stop when their test process
# exits.
servers='(docker-registry serve|token_server\.py) .*/podshim-registry-'
for _ in $(seq 50); do
    pgrep -f "$servers" >/dev/null || break
    sleep 0.1
done
leaks=()
# What each leak is (paths, names), printed after the summary so a failed CI run says which
# Pod or test left it.
details=()
n=$(ps -eo stat=,comm= | awk '$2 == "pause" && $1 !~ /^Z/' | wc -l); [ "$n" -gt 0 ] && leaks+=("$n pause process(es)")
# A bridge podshim keeps with nothing attached, and its node rules (the subnet's masquerade
# rule tagged "<bridge>/node" in nftables' ip podshim, the iptables chain PODSHIM-FWD-<bridge>),
# are node infrastructure, as docker0 or cni0: not a leak. A Pod's veth, a port left on a
# bridge, a Pod's own NAT rule ("<network>/<id>/<ifname>") and node rules whose bridge is gone
# are.
n=$(ip -o link show 2>/dev/null | grep -cE ': veth[0-9a-f]{8}[:@]' || true); [ "${n:-0}" -gt 0 ] && leaks+=("$n test veth interface(s)")
n=0
for br in /sys/class/net/pst*/brif; do
    [ -d "$br" ] && [ -n "$(ls -A "$br")" ] && n=$((n + 1))
done
[ "$n" -gt 0 ] && leaks+=("$n test bridge(s) with ports")
if command -v nft >/dev/null; then
    tags=$(nft list table ip podshim 2>/dev/null | grep -o 'comment "[^"]*"' | sed 's/^comment "//; s/"$//')
    n=$(printf '%s\n' "$tags" | grep -c '^[^/]*/.*/' || true); [ "${n:-0}" -gt 0 ] && leaks+=("$n Pod NAT rule(s) in nftables")
    n=0
    for t in $(printf '%s\n' "$tags" | grep -E '^[^/]+/node$' | sort -u); do
        [ -e "/sys/class/net/${t%/node}" ] || { n=$((n + 1)); details+=("nft rule $t"); }
    done
    [ "$n" -gt 0 ] && leaks+=("$n node NAT rule(s) of a bridge that is gone")
fi
if command -v iptables-save >/dev/null; then
    n=0
    for c in $(iptables-save -t filter 2>/dev/null | sed -n 's/^:PODSHIM-FWD-\([^ ]*\) .*/\1/p'); do
        [ -e "/sys/class/net/$c" ] || { n=$((n + 1)); details+=("iptables chain PODSHIM-FWD-$c"); }
    done
    [ "$n" -gt 0 ] && leaks+=("$n forward chain(s) of a bridge that is gone")
    n=$(iptables-save -t nat 2>/dev/null | grep -E '^-A PODSHIM-' | grep -cvE -- '--comment "?[^/" ]+/node"? ' || true)
    [ "${n:-0}" -gt 0 ] && leaks+=("$n Pod NAT rule(s) in iptables")
fi
n=$(pgrep -fc "$servers" || true); [ "${n:-0}" -gt 0 ] && leaks+=("$n test registry/token server process(es)")
# Mount points below a podshim directory (/var/lib/podshim/..., /run/podshim/..., the tests'
# /tmp/podshim-test-*/...). Not the directories themselves, which may be volumes (as in
# scripts/test-in-docker.sh's container), nor a repository checked out as .../podshim.
mounts=$(awk '$5 ~ /\/podshim(-test-[^\/]*)?\// || $5 ~ /\/\.podshim-exe-[0-9]+$/ {print $5}' /proc/self/mountinfo)
n=$(printf '%s' "$mounts" | grep -c . || true)
if [ "${n:-0}" -gt 0 ]; then
    leaks+=("$n podshim mount(s)")
    while read -r m; do details+=("mount $m"); done <<<"$mounts"
fi
# The mount points of the binary's bind (exe.rs) whose podshim is gone.
for f in /run/.podshim-exe-* /tmp/.podshim-exe-*; do
    [ -f "$f" ] && [ ! -e "/proc/${f##*-}" ] && { leaks+=("the mount point $f"); }
done
n=$(find /sys/fs/cgroup -maxdepth 2 -type d -name podshim 2>/dev/null | wc -l)
if [ "$n" -gt 0 ]; then
    leaks+=("$n podshim cgroup dir(s)")
    while read -r d; do details+=("cgroup $d"); done < <(find /sys/fs/cgroup -maxdepth 2 -type d -name podshim -exec find {} -type d \; 2>/dev/null)
fi
# The systemd cgroup driver's Pod slices (podshim.slice itself stays, as kubepods.slice does).
n=$(find /sys/fs/cgroup -maxdepth 3 -type d -name 'podshim-pod*.slice' 2>/dev/null | wc -l); [ "$n" -gt 0 ] && leaks+=("$n podshim Pod slice(s)")
# The containerd tests (tests/containerd): their private containerd daemons and shims (which name
# the test's /tmp/podshim-test-* directory), and their cgroup roots /podshim-test-*.
n=$(pgrep -fc '^/usr/bin/containerd(-shim-[a-z0-9-]+)? .*/podshim-test-' || true); [ "${n:-0}" -gt 0 ] && leaks+=("$n test containerd/shim process(es)")
n=$(find /sys/fs/cgroup -maxdepth 3 -type d -name 'podshim-test-*' 2>/dev/null | wc -l); [ "$n" -gt 0 ] && leaks+=("$n containerd test cgroup dir(s)")
if [ "${#leaks[@]}" -gt 0 ]; then
    echo "LEAKS after the tests: ${leaks[*]}" >&2
    for d in "${details[@]}"; do echo "  $d" >&2; done
    # The processes that may hold what leaked.
    ps -eo pid,ppid,stat,args | grep -E ' (pause|[^ ]*podshim[^ ]*|containerd-shim[^ ]*) ' | grep -v -e grep -e check-leaks | head -20 | sed 's/^/  process /' >&2
    exit 1
fi
echo "no leaks: no pause process, veth, port on a test bridge, Pod NAT rule, orphaned node rule, podshim mount or cgroup, test containerd or shim left"
