#!/usr/bin/env bash
# Run the tests (or any command) as root inside a Debian 12 VM that boots the way most users'
# hosts do: cgroup v2 only (cgroup2fs at /sys/fs/cgroup) and systemd as PID 1.
#
# usage: sudo scripts/test-in-vm.sh [--smoke | --suite [TEST-ARG...] | --docker | --image | COMMAND [ARG...]]
#   COMMAND      runs in the repository, shared into the guest at the same absolute path (9p),
#                with the host's Rust toolchain (RUSTUP_HOME read-only, CARGO_HOME) at its host
#                paths; default scripts/test.sh. Cargo in the guest reuses the host's target/, so
#                build on the host first: compiling under emulation is very slow.
#   --smoke      build podshim, pause, the busybox test image and the test binaries on the host,
#                then run in the guest the smoke subset of `scripts/test.sh --smoke` from those
#                binaries, the cgroup driver tests (tests/cgroup_driver.rs, which need this
#                guest's systemd and are ignored on other hosts), the claim quota test
#                (tests/pod_pvc_quota.rs, which needs ext4 project quotas, absent from some
#                hosts' kernels) and scripts/check-leaks.sh
#   --suite      the same for every test binary of the workspace (`cargo test --workspace`,
#                the cgroup driver tests with --include-ignored); TEST-ARGs go to each binary
#                (e.g. a name filter, --skip NAME, --exact)
#   --docker     the Docker smoke run of .ci/run (`scripts/test-in-docker.sh scripts/test.sh
#                --smoke`) with the guest's Debian dockerd (cgroup v2, systemd driver, private
#                cgroup namespaces: the entrypoint's v2 branch). The guest cannot fetch the CI
#                image, so the host makes it (`scripts/test-in-docker.sh --save`, kept under
#                $PODSHIM_VM_DIR keyed by its package hash) and the guest `docker load`s it;
#                the host builds what scripts/test.sh --smoke builds, so cargo in the container
#                only finds it fresh
#   --image      only build the VM image (or find it in the cache) and say where it is
#
# The image (Debian bookworm by debootstrap from the mirror the host's apt uses, with systemd,
# the kernel and the packages of `scripts/install-deps.sh --list`, written into ext4 by
# `mkfs.ext4 -d`) is cached under $PODSHIM_VM_DIR (default /var/lib/test-in-vm), keyed by a hash
# of its package list and of the recipe below; the guest's writes go to a throw-away snapshot.
# The guest boots with qemu's software emulation (TCG): /dev/kvm opens on some hosts (nested
# virtualisation) where a KVM guest then hangs right after the firmware, which cannot be told
# from a slow boot, so KVM is used only when asked (PODSHIM_VM_ACCEL=kvm). The guest has a NIC
# (a default route and a host address, as a host has) that reaches nothing (slirp restrict=on).
#
# The command's output is streamed to stdout, its exit status is this script's. The guest's
# console goes to $PODSHIM_VM_DIR/last-console.log. One VM at a time (a lock); qemu is stopped
# by PID whatever happens.
#
# Environment: PODSHIM_VM_DIR, PODSHIM_VM_TIMEOUT (seconds for the command, default 3600),
# PODSHIM_VM_BOOT_TIMEOUT (default 300), PODSHIM_VM_MEMORY (MiB, default 4096), PODSHIM_VM_CPUS
# (default 2), PODSHIM_VM_ACCEL (tcg or kvm, default tcg), PODSHIM_VM_TEST_THREADS (--smoke and
# --suite, default 2), PODSHIM_VM_TESTS (--suite: only the test executables whose label,
# PACKAGE:KIND:NAME such as podshim-tests:test:pod, matches this awk regex), PODSHIM_DEBIAN_MIRROR.
# The guest's command gets no environment of the host but these: PODSHIM_VM_ENV, a list of
# NAME=VALUE words exported as they are (e.g. PODSHIM_VM_ENV="PODSHIM_CGROUP_DRIVER=cgroupfs"
# runs the tests with the cgroupfs driver, the guest's default being systemd); and, when set on
# the host, PODSHIM_CGROUP_DRIVER, PODSHIM_RECORD_ANSWERS (record runc's answers for this kind of
# host into tests/containerd/reference/runc/cgroup-v2/, shared back through 9p),
# PODSHIM_TEST_TIME_SCALE and PODSHIM_CRASH_ITERATIONS. Under emulation everything is some ten
# times slower than on the host, so the tests' waits on the wall clock are stretched by
# PODSHIM_TEST_TIME_SCALE (default 4 with tcg, 1 with kvm) and tests/crash.rs kills 30 runs,
# not 200 (PODSHIM_CRASH_ITERATIONS).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "test-in-vm: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, mkfs.ext4 -d of a root tree, 9p passthrough)"; exit 1; }
t_start=$(date +%s)

mode="command"
case "${1:-}" in
--smoke) mode=smoke; shift ;;
--suite) mode=suite; shift ;;
--image) mode=image; shift ;;
--docker) mode=docker; shift ;;
esac
[ "$mode" != command ] || [ $# -gt 0 ] || set -- scripts/test.sh

# (Named without "podshim", which scripts/check-leaks.sh looks for in mount points.)
dir=${PODSHIM_VM_DIR:-/var/lib/test-in-vm}
timeout=${PODSHIM_VM_TIMEOUT:-3600}
boot_timeout=${PODSHIM_VM_BOOT_TIMEOUT:-300}
memory=${PODSHIM_VM_MEMORY:-4096}
cpus=${PODSHIM_VM_CPUS:-2}
accel=${PODSHIM_VM_ACCEL:-tcg}
threads=${PODSHIM_VM_TEST_THREADS:-2}
# What the guest's command runs with (see above); checked here, not in the guest.
guest_env=()
scale=4
[ "$accel" = kvm ] && scale=1
guest_env+=("PODSHIM_TEST_TIME_SCALE=${PODSHIM_TEST_TIME_SCALE:-$scale}")
guest_env+=("PODSHIM_CRASH_ITERATIONS=${PODSHIM_CRASH_ITERATIONS:-30}")
for v in PODSHIM_CGROUP_DRIVER PODSHIM_RECORD_ANSWERS; do
    if [ -n "${!v+set}" ]; then guest_env+=("$v=${!v}"); fi
done
read -r -a words <<<"${PODSHIM_VM_ENV:-}"
for w in "${words[@]}"; do
    [[ "$w" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { say "PODSHIM_VM_ENV: '$w' is not NAME=VALUE"; exit 2; }
    guest_env+=("$w")
done

# Host tools: qemu (Debian's), debootstrap, mkfs.ext4 -d (e2fsprogs >= 1.43).
missing=()
for p in qemu-system-x86 debootstrap e2fsprogs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------------------------
# The image. Everything that goes into it is in vm_packages and build_image; their text is part
# of the cache key, so changing either rebuilds the image.
vm_packages=(systemd systemd-sysv linux-image-amd64 udev kmod iproute2 dbus procps util-linux
    # Docker's daemon for tests that need one (not started at boot), e.g. the firewall it sets up.
    docker.io)

# The unit that runs the command: it mounts the run directory (tag vmrun) and runs the
# guest.sh that the host wrote there for this run, then powers the guest off. Everything else
# about a run lives in guest.sh, so changing it does not rebuild the image.
guest_unit='[Unit]
Description=test-in-vm: the command the host asked for
After=multi-user.target
[Service]
Type=exec
ExecStart=/usr/local/sbin/test-in-vm-run
StandardOutput=journal+console
StandardError=journal+console
TasksMax=infinity
LimitNOFILE=1048576
[Install]
WantedBy=multi-user.target'
guest_runner='#!/bin/sh
# Run /mnt/vm-run/guest.sh (written by scripts/test-in-vm.sh on the host), then power off.
modprobe 9pnet_virtio 2>/dev/null
mkdir -p /mnt/vm-run
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmrun /mnt/vm-run; then
    /bin/bash /mnt/vm-run/guest.sh
    sync
else
    echo "test-in-vm-run: cannot mount the run directory (9p tag vmrun)" >&2
fi
systemctl poweroff --force --force'

build_image() { # ROOT: configure the debootstrapped tree ROOT for a test VM
    local root=$1 l
    echo testvm >"$root/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 testvm\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    # No fsck: the guest always starts from this image, its writes go to a snapshot.
    printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"$root/etc/fstab"
    printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"
    printf '9p\n9pnet_virtio\nvirtio_console\n' >"$root/etc/modules-load.d/test-in-vm.conf"
    printf '%s\n' "$guest_unit" >"$root/etc/systemd/system/test-in-vm.service"
    printf '%s\n' "$guest_runner" >"$root/usr/local/sbin/test-in-vm-run"
    chmod 0755 "$root/usr/local/sbin/test-in-vm-run"
    ln -sf /etc/systemd/system/test-in-vm.service "$root/etc/systemd/system/multi-user.target.wants/"
    # Nothing at boot that the tests do not start themselves: the packages enable Docker,
    # containerd, a registry on port 5000 and timers; only systemd's own defaults stay.
    for l in "$root"/etc/systemd/system/*.wants/*; do
        case "${l##*/}" in
        test-in-vm.service | remote-fs.target | systemd-pstore.service) ;;
        *) rm -f "$l" ;;
        esac
    done
    # Root without a password on the serial console, to debug a guest by hand.
    sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
}

mapfile -t test_packages < <(scripts/install-deps.sh --list)
packages=("${vm_packages[@]}" "${test_packages[@]}")
key=$( {
    printf '%s\n' "${packages[@]}" | sort -u
    declare -f build_image
    printf '%s\n' "$guest_unit" "$guest_runner"
} | sha256sum | cut -c1-16)
image=$dir/$key

mkdir -p "$dir"
# One run at a time: qemu emulating 2 CPUs takes the whole machine, and a build shares the cache.
exec 8>"$dir/lock"
flock -n 8 || { say "waiting for another test-in-vm run to finish"; flock 8; }

work=
qpid=
tailpid=
run=
# shellcheck disable=SC2317  # (run by the EXIT trap)
cleanup() {
    local rc=$?
    set +e
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
        kill -TERM "$qpid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$qpid" 2>/dev/null || true
        wait "$qpid" 2>/dev/null || true
        say "stopped qemu (pid $qpid)"
    fi
    if [ -n "$tailpid" ]; then kill "$tailpid" 2>/dev/null || true; wait "$tailpid" 2>/dev/null || true; fi
    if [ -n "$work" ]; then
        # debootstrap mounts /proc, /sys (and may bind /dev) in the tree: never delete through them.
        findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r m; do umount -l "$m" || true; done
        rm -rf --one-file-system "$work"
    fi
    if [ -n "$run" ]; then
        [ -f "$run/console.log" ] && cp "$run/console.log" "$dir/last-console.log"
        rm -rf --one-file-system "$run"
    fi
    say "finished in $(($(date +%s) - t_start)) s (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -s "$image/disk.img" ] && [ -s "$image/vmlinuz" ] && [ -s "$image/initrd.img" ]; then
    say "image $image is up to date"
else
    t0=$(date +%s)
    mirror=$(scripts/debian-mirror.sh)
    work=$(mktemp -d /var/tmp/test-in-vm-build.XXXXXX)
    say "building the image: debootstrap bookworm from $mirror ($(printf '%s\n' "${packages[@]}" | sort -u | wc -l) packages and their dependencies)"
    include=$(IFS=,; echo "${packages[*]}")
    if ! debootstrap --variant=minbase --include="$include" bookworm "$work/root" "$mirror" >"$work/log" 2>&1; then
        tail -n 20 "$work/log" >&2
        tail -n 20 "$work/root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
        say "debootstrap failed"
        exit 1
    fi
    t1=$(date +%s)
    build_image "$work/root"
    mkdir -p "$work/out"
    cp "$work"/root/boot/vmlinuz-* "$work/out/vmlinuz"
    cp "$work"/root/boot/initrd.img-* "$work/out/initrd.img"
    # A sparse 8 GiB file system: the tests' images, layers and Pods live in the guest's /tmp.
    mkfs.ext4 -q -L testvm -d "$work/root" -F "$work/out/disk.img" 8G >/dev/null
    printf '%s\n' "${packages[@]}" >"$work/out/packages"
    t2=$(date +%s)
    echo "debootstrap $((t1 - t0)) s, configure and mkfs.ext4 $((t2 - t1)) s" >"$work/out/build-time"
    # Replace older images (other keys) only once the new one is complete.
    # (find's default regex dialect has no {16}: name the dialect.)
    find "$dir" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' \
        -exec rm -rf {} +
    mv "$work/out" "$image"
    say "built $image in $((t2 - t0)) s ($(cat "$image/build-time"); $(du -sh --apparent-size "$image/disk.img" | cut -f1) sparse, $(du -sh "$image/disk.img" | cut -f1) used)"
fi
if [ "$mode" = image ]; then
    echo "$image"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# The run directory, shared with the guest as tag vmrun: guest.sh, cmd.sh, and what the guest
# writes back (started, status).
run=$(mktemp -d /var/tmp/test-in-vm-run.XXXXXX)
chmod 0755 "$run"
shares=("repo $src")
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
[ -d "$rustup_home" ] && shares+=("rustup $rustup_home")
[ -d "$cargo_home" ] && shares+=("cargo $cargo_home")

if [ "$mode" = docker ]; then
    scripts/install-deps.sh
    scripts/build.sh debug >&2
    test_image=target/test-images/busybox-oci.tar
    [ -s "$test_image" ] || scripts/make-busybox-image.sh "$test_image" >&2
    pause_image=target/test-images/pause-oci.tar
    [ "$pause_image" -nt target/pause/release/pause ] || scripts/pause-image.sh "$pause_image" >/dev/null
    cargo test -p podshim-tests --test pod --no-run >&2
    ci_tar=$dir/ci-image-$(scripts/ci-image.sh --hash).tar
    if [ ! -s "$ci_tar" ]; then
        # Older saves (other package lists) go; the daemon test-in-docker.sh uses makes it.
        rm -f "$dir"/ci-image-*.tar
        scripts/test-in-docker.sh --save "$ci_tar.tmp" >&2
        mv "$ci_tar.tmp" "$ci_tar"
    fi
    # Into the run directory (a hard link: the same file system, no copy) for the guest.
    ln "$ci_tar" "$run/ci-image.tar" 2>/dev/null || cp "$ci_tar" "$run/ci-image.tar"
    {
        echo "export RUSTUP_HOME=${rustup_home@Q} CARGO_HOME=${cargo_home@Q}"
        echo "export PATH=${cargo_home@Q}/bin:\$PATH"
        printf 'export %q\n' "${guest_env[@]}"
        cat <<'EOF'
t0=$(date +%s)
# Debian's dockerd as the package sets it up (its units are not started at boot here).
if ! systemctl start docker.service; then
    journalctl -u docker.service -u containerd.service --no-pager | tail -n 30
    exit 1
fi
echo "test-in-vm: $(docker info -f 'Docker {{.ServerVersion}}, cgroup v{{.CgroupVersion}}, driver {{.CgroupDriver}}') started in $(($(date +%s) - t0)) s"
t0=$(date +%s)
docker load -q -i /mnt/vm-run/ci-image.tar
echo "test-in-vm: docker load took $(($(date +%s) - t0)) s"
PODSHIM_DOCKER_NETWORK=none scripts/test-in-docker.sh scripts/test.sh --smoke
rc=$?
systemctl stop docker.service docker.socket containerd.service
exit "$rc"
EOF
    } >"$run/cmd.sh"
elif [ "$mode" = command ]; then
    {
        echo "export RUSTUP_HOME=${rustup_home@Q} CARGO_HOME=${cargo_home@Q}"
        echo "export PATH=${cargo_home@Q}/bin:\$PATH"
        printf 'export %q\n' "${guest_env[@]}"
        printf 'exec'
        printf ' %q' "$@"
        echo
    } >"$run/cmd.sh"
else
    # Build on the host what the guest runs, as scripts/test.sh does.
    scripts/install-deps.sh
    scripts/build.sh debug >&2
    test_image=target/test-images/busybox-oci.tar
    [ -s "$test_image" ] || scripts/make-busybox-image.sh "$test_image" >&2
    # podshim's pause as the containerd tests' sandbox image, as scripts/test.sh makes it.
    pause_image=target/test-images/pause-oci.tar
    [ "$pause_image" -nt target/pause/release/pause ] || scripts/pause-image.sh "$pause_image" >/dev/null
    if [ "$mode" = smoke ]; then
        mapfile -t smoke < <(scripts/test.sh --smoke-list)
        cargo_args=(-p podshim-tests --test pod --test cgroup_driver --test pod_pvc_quota)
        test_args=(--exact "${smoke[@]}")
    else
        cargo_args=(--workspace --exclude podshim-pause)
        test_args=("$@")
    fi
    # Each test executable with its package directory (the cwd and CARGO_MANIFEST_DIR cargo
    # gives it) and a label.
    cargo test "${cargo_args[@]}" --no-run --message-format=json |
        python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-message":
        print(m["message"]["rendered"], end="", file=sys.stderr)
    elif m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        t = m["target"]
        # package_id: "path+file:///...#name@version" (cargo >= 1.77) or "name version (...)"
        pid = m["package_id"]
        pkg = pid.split("#")[1].split("@")[0] if "#" in pid else pid.split(" ")[0]
        print(m["executable"], os.path.dirname(m["manifest_path"]), pkg + ":" + t["kind"][0] + ":" + t["name"], sep="\t")
' >"$run/tests" || { say "building the tests failed"; exit 1; }
    [ -s "$run/tests" ] || { say "cargo built no test executable"; exit 1; }
    if [ -n "${PODSHIM_VM_TESTS:-}" ]; then
        awk -F '\t' -v re="$PODSHIM_VM_TESTS" '$3 ~ re' "$run/tests" >"$run/tests.sel"
        mv "$run/tests.sel" "$run/tests"
        [ -s "$run/tests" ] || { say "PODSHIM_VM_TESTS=$PODSHIM_VM_TESTS selects no test executable"; exit 1; }
    fi
    say "built $(wc -l <"$run/tests") test executable(s) on the host"
    {
        echo "export PODSHIM_BIN=${src@Q}/target/debug/podshim PODSHIM_PAUSE=${src@Q}/target/debug/pause"
        echo "export PODSHIM_TEST_IMAGE=${src@Q}/$test_image RUST_BACKTRACE=\${RUST_BACKTRACE:-1}"
        echo "export PODSHIM_PAUSE_IMAGE=${src@Q}/$pause_image"
        echo "export PODSHIM_SHIM=${src@Q}/target/debug/containerd-shim-podshim-v1"
        printf 'export %q\n' "${guest_env[@]}"
        echo "test_args=(--test-threads=$threads${test_args[*]:+ $(printf '%q ' "${test_args[@]}")})"
        echo "mode=$mode"
        cat <<'EOF'
failed=()
passed=0
while IFS=$'\t' read -r exe pkgdir label; do
    echo "==> $label"
    t0=$(date +%s)
    args=("${test_args[@]}")
    # The cgroup driver tests need this guest's systemd, the claim quota test its kernel's
    # ext4 project quotas: ignored elsewhere, run here (all of them in the smoke run, whose
    # name list is tests/pod.rs's).
    if [ "$label" = podshim-tests:test:cgroup_driver ] || [ "$label" = podshim-tests:test:pod_pvc_quota ]; then
        args+=(--include-ignored)
        [ "$mode" = smoke ] && args=(--test-threads=1 --include-ignored)
    fi
    if (cd "$pkgdir" && CARGO_MANIFEST_DIR=$pkgdir "$exe" "${args[@]}" </dev/null); then
        passed=$((passed + 1))
    else
        failed+=("$label")
    fi
    echo "<== $label: $(($(date +%s) - t0)) s"
done </mnt/vm-run/tests
scripts/check-leaks.sh || failed+=(check-leaks)
echo "test-in-vm: $passed test executable(s) passed, ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
EOF
    } >"$run/cmd.sh"
fi

{
    printf 'repo=%q\n' "$src"
    printf 'shares=(%s)\n' "$(printf '%q ' "${shares[@]}")"
    cat <<'EOF'
# Inside the guest, as root, from the unit test-in-vm.service. Output to the virtio port the
# host streams; exit status to /mnt/vm-run/status.
set -u
run=/mnt/vm-run
port=
for _ in $(seq 100); do
    for n in /sys/class/virtio-ports/*/name; do
        [ "$(cat "$n" 2>/dev/null)" = org.podshim.out ] && port=/dev/$(basename "$(dirname "$n")")
    done
    [ -n "$port" ] && [ -e "$port" ] && break
    sleep 0.1
done
exec >"${port:-/dev/console}" 2>&1
: >"$run/started"
for s in "${shares[@]}"; do
    tag=${s%% *} path=${s#* }
    opts=trans=virtio,version=9p2000.L,msize=262144,cache=loose
    [ "$tag" = rustup ] && opts=$opts,ro
    mkdir -p "$path" && mount -t 9p -o "$opts" "$tag" "$path" || echo "test-in-vm: cannot mount $tag on $path"
done
# A host's network: an address and a default route (the Pods' hostIP is its source address).
for l in /sys/class/net/en* /sys/class/net/eth*; do
    [ -e "$l" ] || continue
    ip addr add 10.0.2.15/24 dev "${l##*/}" && ip link set "${l##*/}" up && ip route add default via 10.0.2.2
    break
done
echo "test-in-vm: guest $(uname -r), /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup) (controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)), PID 1 is $(cat /proc/1/comm), $(nproc) CPUs, $(($(awk '/MemTotal/ { print $2 }' /proc/meminfo) / 1024)) MiB"
cd "$repo"
export HOME=/root TERM=dumb
bash "$run/cmd.sh"
rc=$?
echo "$rc" >"$run/status.tmp" && mv "$run/status.tmp" "$run/status"
EOF
} >"$run/guest.sh"

# ---------------------------------------------------------------------------------------------
# shellcheck disable=SC2054  # (commas inside qemu's options)
kvm=(-accel tcg,thread=multi -cpu max)
[ "$accel" = kvm ] && kvm=(-accel kvm -cpu host)
# shellcheck disable=SC2054
qemu=(qemu-system-x86_64 -name test-in-vm "${kvm[@]}" -smp "$cpus" -m "$memory"
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img"
    -append "root=/dev/vda rw console=ttyS0 panic=-1 mitigations=off"
    -drive "file=$image/disk.img,if=virtio,format=raw,snapshot=on"
    -display none -monitor none -serial "file:$run/console.log" -no-reboot
    -device virtio-serial-pci -chardev "file,id=out,path=$run/output"
    -device virtserialport,chardev=out,name=org.podshim.out
    -nic user,model=virtio-net-pci,restrict=on -device virtio-rng-pci
    -virtfs "local,path=$run,mount_tag=vmrun,security_model=passthrough,id=vmrun")
for s in "${shares[@]}"; do
    ro=; [ "${s%% *}" = rustup ] && ro=,readonly=on
    qemu+=(-virtfs "local,path=${s#* },mount_tag=${s%% *},security_model=passthrough,multidevs=remap,id=${s%% *}$ro")
done
: >"$run/output"
t_boot=$(date +%s.%N)
say "booting the guest ($accel, $cpus CPUs, $memory MiB; console: $dir/last-console.log)"
# qemu keeps the lock (fd 8) as long as it runs, even if this script is killed.
"${qemu[@]}" &
qpid=$!
tail -n +1 -s 0.2 -f --pid="$qpid" "$run/output" 8>&- &
tailpid=$!

console_tail() { [ -f "$run/console.log" ] && tail -n 30 "$run/console.log" | sed 's/^/  console: /' >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
while [ ! -e "$run/started" ]; do
    if ! kill -0 "$qpid" 2>/dev/null; then
        console_tail; say "qemu exited before the guest ran the command"; exit 1
    fi
    if [ "$(elapsed "$t_boot" | cut -d. -f1)" -ge "$boot_timeout" ]; then
        console_tail; say "timed out: the guest did not reach test-in-vm.service within $boot_timeout s"; exit 124
    fi
    sleep 0.2
done
what="${*@Q}"
[ -n "$what" ] || what="the $mode tests"
say "guest booted in $(elapsed "$t_boot") s; running $what"
t_cmd=$(date +%s.%N)
t_done=
while kill -0 "$qpid" 2>/dev/null; do
    [ -z "$t_done" ] && [ -e "$run/status" ] && t_done=$(elapsed "$t_cmd")
    if [ "$(elapsed "$t_cmd" | cut -d. -f1)" -ge "$timeout" ]; then
        say "timed out: the command did not finish within $timeout s (PODSHIM_VM_TIMEOUT)"; exit 124
    fi
    sleep 0.5
done
wait "$qpid" || true
qpid=
wait "$tailpid" || true
tailpid=
if [ ! -s "$run/status" ]; then
    console_tail; say "the guest stopped without an exit status of the command"; exit 1
fi
rc=$(cat "$run/status")
say "command finished in ${t_done:-$(elapsed "$t_cmd")} s with exit status $rc"
exit "$rc"
