#!/bin/sh
# Entrypoint of scripts/test-in-docker.sh's container: prepare the cgroups, then run the command.
#
# On a cgroup v2 host with a private cgroup namespace the container's processes sit in the root
# of its cgroup tree, and cgroup v2's "no internal processes" rule (cgroups(7)) forbids enabling
# controllers for children (podshim's Pod cgroups) while they are there. So, as moby's hack/dind
# does, move every process into a child cgroup `init` and enable all controllers at the root.
# cgroup v1 and hybrid hosts need nothing (each v1 hierarchy has no such rule).
set -eu
cg=/sys/fs/cgroup
# Without --privileged (test-in-docker.sh's fallback flags for Docker < 23 where root lacks a
# capability), Docker mounts /sys and the cgroup filesystems read-only; --privileged mounts them
# read-write. Make them so (a per-mount flag: MS_REMOUNT|MS_BIND; a no-op when already rw).
awk '{ split($0, s, " - "); split(s[2], f, " ") }
     ($5 == "/sys" || (f[1] ~ /^(cgroup2?|tmpfs)$/ && $5 ~ "^/sys/fs/cgroup")) && $6 ~ /^ro/ { print $5 }' \
    /proc/self/mountinfo | while read -r m; do mount -o remount,bind,rw "$m"; done
if [ -f "$cg/cgroup.controllers" ]; then
    # Only when $cg is the root of our own (private) cgroup namespace: with the host's cgroup
    # namespace, $cg/cgroup.procs would be other processes' cgroup, not ours to reorganise.
    root=$(awk '$5 == "/sys/fs/cgroup" { print $4 }' /proc/self/mountinfo | tail -n1)
    if [ "$(cat /proc/self/cgroup)" = "0::/" ] && [ "$root" = / ]; then
        mkdir -p "$cg/init"
        # One PID per write; a process that exits meanwhile makes its write fail, which is fine.
        xargs -rn1 < "$cg/cgroup.procs" > "$cg/init/cgroup.procs" 2>/dev/null || :
        sed -e 's/ / +/g' -e 's/^/+/' < "$cg/cgroup.controllers" > "$cg/cgroup.subtree_control"
        echo "docker-entrypoint: cgroup v2: processes moved to $cg/init, controllers enabled: $(cat "$cg/cgroup.subtree_control")" >&2
    else
        echo "docker-entrypoint: cgroup v2 without a private cgroup namespace (run with --cgroupns=private): cgroups left as they are" >&2
    fi
fi

# On a terminal, the command gets the terminal and Ctrl-C as usual.
[ -t 0 ] && exec "$@"
# Otherwise the command runs in its own process group, and SIGTERM/SIGINT (`docker kill -s`,
# forwarded by docker-init) go to the whole group, as Ctrl-C does on a terminal: the tests'
# podshim processes then tear their Pods down (the bridges live in the host's network namespace
# under --network host) before the container, whose end kills everything left, stops.
set +e
setsid "$@" &
pid=$!
signalled=
# shellcheck disable=SC2317  # (run by the traps)
forward() { signalled=1; kill -s "$1" -- "-$pid" 2>/dev/null; }
trap 'forward TERM' TERM
trap 'forward INT' INT
while :; do
    wait "$pid"
    rc=$?
    kill -0 "$pid" 2>/dev/null || break
done
if [ -n "$signalled" ]; then
    # At most 30 s for the rest of the group (podshim stopping containers, tearing down).
    i=0
    while kill -0 -- "-$pid" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
fi
exit "$rc"
