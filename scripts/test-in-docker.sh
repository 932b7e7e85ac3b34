#!/usr/bin/env bash
# Run the test suite inside a privileged Docker container, as users' CI jobs do (GitHub Actions,
# GitLab, Buildkite): `docker run --privileged --cgroupns=private`.
#
# usage: sudo scripts/test-in-docker.sh [COMMAND [ARG...] | --save FILE]
#   COMMAND defaults to scripts/test.sh (the README's test command); .ci/run passes
#   `scripts/test.sh --smoke`. It runs in the repository, mounted at the same absolute path as on
#   the host, so the host's target/ is reused incrementally.
#   --save FILE  only make (or find) the image and `docker save` it to FILE, for a Docker that
#                cannot make it (scripts/test-in-vm.sh --docker: a guest without network)
#
# The container gets:
#   - the image of scripts/ci-image.sh (built or reused; PODSHIM_CI_DOCKERFILE=1 builds it from
#     ./Dockerfile instead, on hosts that can pull);
#   - the host's Rust toolchain: RUSTUP_HOME and CARGO_HOME/bin read-only, CARGO_HOME (the crate
#     download cache) writable, at their host paths (default ~/.rustup and ~/.cargo); without one
#     on the host, the image's (PODSHIM_CI_IMAGE may name an image with Rust);
#   - podshim's data root (/var/lib/podshim) and /tmp (the tests' instances) on volumes: an overlay
#     upper directory cannot be on the container's overlayfs root;
#   - the host's network (--network host; PODSHIM_DOCKER_NETWORK overrides), so crates.io is
#     reachable whatever dockerd's networking.
# When no Docker daemon answers, a private dockerd is started (its own data-root, exec-root,
# pidfile and socket; no iptables, no bridge, no IP forwarding, so the host's firewall and links
# are left alone) and stopped by PID at the end. The container and its volumes are always removed.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
[ "$(id -u)" = 0 ] || { echo "test-in-docker: needs root (it may start dockerd)" >&2; exit 1; }
[ $# -gt 0 ] || set -- scripts/test.sh
save=
if [ "$1" = --save ]; then
    [ $# = 2 ] || { echo "usage: scripts/test-in-docker.sh --save FILE" >&2; exit 2; }
    save=$2
fi
command -v docker >/dev/null || { echo "test-in-docker: no docker client: apt-get install docker.io" >&2; exit 1; }
say() { echo "test-in-docker: $*" >&2; }
t0=$(date +%s)

# Private daemon state: the data root persists (it caches the test image), the rest is per run.
# (Named without "podshim", which scripts/check-leaks.sh looks for in mount points.)
ddata=${PODSHIM_DOCKER_DATA:-/var/lib/test-in-docker}
drun=/run/test-in-docker
dsock=unix://$drun/docker.sock
dpid=
client=
name=podshim-test-$$

# shellcheck disable=SC2317  # (run by the EXIT trap)
cleanup() {
    local rc=$?
    if [ -n "$client" ] && kill -0 "$client" 2>/dev/null; then
        # Interrupted: the entrypoint passes the signal to the command's process group and
        # waits for podshim to tear its Pods down; give it that time before removing.
        say "stopping the tests in $name"
        docker kill -s TERM "$name" >/dev/null 2>&1 || true
        for _ in $(seq 350); do kill -0 "$client" 2>/dev/null || break; sleep 0.1; done
    fi
    docker rm -f -v "$name" >/dev/null 2>&1 || true
    if [ -n "$dpid" ]; then
        kill -TERM "$dpid" 2>/dev/null || true
        for _ in $(seq 200); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$dpid" 2>/dev/null || true
        wait "$dpid" 2>/dev/null || true
        # dockerd pins the host's netns there and leaves it mounted when it stops.
        umount -l "$drun/exec/netns/default" 2>/dev/null || true
        rm -rf "$drun/exec"
        # The containers' parent cgroup this dockerd made, with whatever an interrupted run left
        # in it (Pod cgroups); deepest first; rmdir refuses a cgroup that still has processes.
        find /sys/fs/cgroup -maxdepth 2 -type d -name test-in-docker 2>/dev/null |
            while read -r d; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
        say "stopped the private dockerd (pid $dpid)"
    fi
    say "finished in $(($(date +%s) - t0)) s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One run at a time: a second run would share (and the first one stop) the private dockerd.
mkdir -p "$drun"
exec 9>"$drun/lock"
flock -n 9 || { say "waiting for another test-in-docker run to finish"; flock 9; }

if docker info >/dev/null 2>&1; then
    say "using the running Docker daemon (${DOCKER_HOST:-default socket})"
elif DOCKER_HOST=$dsock docker info >/dev/null 2>&1; then
    # A private daemon a killed earlier run left: use it, leave it running (not ours to stop).
    export DOCKER_HOST=$dsock
    say "using the private dockerd left running at $dsock"
else
    command -v dockerd >/dev/null || { say "no Docker daemon and no dockerd: apt-get install docker.io"; exit 1; }
    mkdir -p "$ddata" "$drun"
    rm -f "$drun/dockerd.pid"
    dockerd --data-root "$ddata" --exec-root "$drun/exec" --pidfile "$drun/dockerd.pid" \
        -H "$dsock" --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
        --bridge=none --cgroup-parent test-in-docker >"$drun/dockerd.log" 2>&1 9>&- &
    dpid=$!
    export DOCKER_HOST=$dsock
    for _ in $(seq 300); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dpid" 2>/dev/null || { tail -n 20 "$drun/dockerd.log" >&2; dpid=; say "dockerd failed to start"; exit 1; }
        sleep 0.1
    done
    docker info >/dev/null 2>&1 || { tail -n 20 "$drun/dockerd.log" >&2; say "dockerd did not answer within 30 s"; exit 1; }
    say "started a private dockerd (pid $dpid, $dsock, log $drun/dockerd.log)"
fi

image=${PODSHIM_CI_IMAGE:-podshim-ci:bookworm}
export PODSHIM_CI_IMAGE=$image
if [ "${PODSHIM_CI_DOCKERFILE:-0}" = 1 ]; then scripts/ci-image.sh --dockerfile; else scripts/ci-image.sh; fi
if [ -n "$save" ]; then
    docker save -o "$save" "$image"
    say "saved $image to $save ($(du -h "$save" | cut -f1))"
    exit 0
fi

# Docker before 23 asks for every capability the kernel knows for --privileged, and fails with
# "unable to apply caps: operation not permitted" where root itself lacks one (CAP_SYS_RESOURCE
# on some VMs). The fallback is what --privileged means minus the capabilities root lacks; the
# entrypoint then remounts /sys and the cgroup filesystems read-write, as --privileged mounts them.
# (Bind-mounting the host's /sys/fs/cgroup instead does not do: its paths do not match the
# private cgroup namespace, and libcontainer cannot mount a container's /sys/fs/cgroup from it.)
missing_caps() {
    local names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
        LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
        SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
        SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
        MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
        CHECKPOINT_RESTORE)
    local bnd last i
    bnd=$((16#$(awk '$1 == "CapBnd:" { print $2 }' /proc/self/status)))
    last=$(cat /proc/sys/kernel/cap_last_cap)
    for ((i = 0; i <= last && i < ${#names[@]}; i++)); do
        (((bnd >> i) & 1)) || echo "${names[i]}"
    done
}
privileged=(--privileged)
if ! probe=$(docker run --rm --privileged --network none --entrypoint /bin/true "$image" 2>&1); then
    if grep -q "unable to apply caps" <<<"$probe"; then
        mapfile -t lacking < <(missing_caps)
        say "this Docker cannot start --privileged containers here (unable to apply caps: root lacks ${lacking[*]:-a capability}); using the equivalent flags instead"
        privileged=(--cap-add ALL
            --security-opt seccomp=unconfined --security-opt apparmor=unconfined
            --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm')
        for c in "${lacking[@]}"; do privileged+=(--cap-drop "$c"); done
    else
        echo "$probe" >&2
        say "docker run --privileged failed"
        exit 1
    fi
fi

rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
if [ -d "$rustup_home" ] && [ -x "$cargo_home/bin/cargo" ]; then
    toolchain=(-v "$rustup_home:$rustup_home:ro" -v "$cargo_home:$cargo_home"
        -v "$cargo_home/bin:$cargo_home/bin:ro"
        -e RUSTUP_HOME="$rustup_home" -e CARGO_HOME="$cargo_home"
        -e PATH="$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
elif docker run --rm --network none --entrypoint sh "$image" -c 'command -v cargo' >/dev/null 2>&1; then
    say "no Rust toolchain at RUSTUP_HOME=$rustup_home CARGO_HOME=$cargo_home: using the image's"
    toolchain=()
else
    say "no Rust toolchain at RUSTUP_HOME=$rustup_home CARGO_HOME=$cargo_home nor in $image (set them to the host's toolchain)"
    exit 1
fi
tty=(); [ -t 0 ] && [ -t 1 ] && tty=(-it)
say "running ${*@Q} in $image"
run=(docker run --rm --name "$name" "${tty[@]}" "${privileged[@]}"
    --cgroupns="${PODSHIM_DOCKER_CGROUPNS:-private}" --init
    --network "${PODSHIM_DOCKER_NETWORK:-host}"
    -v "$src:$src" -w "$src"
    "${toolchain[@]}" -v /var/lib/podshim -v /tmp -e HOME=/root
    -e CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}" -e RUST_BACKTRACE="${RUST_BACKTRACE:-}"
    ${PODSHIM_TEST_TIME_SCALE:+-e "PODSHIM_TEST_TIME_SCALE=$PODSHIM_TEST_TIME_SCALE"}
    --entrypoint "$src/scripts/docker-entrypoint.sh"
    "$image" "$@")
# Not `exec`: the EXIT trap removes the container and stops dockerd. Without a terminal, the
# client runs in the background so that SIGTERM/SIGINT reach the traps at once (bash runs a
# trap only after a foreground command returns); on a terminal Ctrl-C goes to the container.
set +e
if [ "${#tty[@]}" -gt 0 ]; then
    "${run[@]}"
else
    "${run[@]}" &
    client=$!
    wait "$client"
fi
rc=$?
client=
set -e
exit "$rc"
