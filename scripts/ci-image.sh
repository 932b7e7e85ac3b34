#!/usr/bin/env bash
# Build the image scripts/test-in-docker.sh runs the tests in: Debian 12 (bookworm) with the
# packages of `scripts/install-deps.sh --list`. No Rust toolchain: the host's is bind-mounted.
#
# usage: scripts/ci-image.sh [--dockerfile | --hash]
#   default       no registry needed: debootstrap --variant=minbase from the host's Debian mirror
#                 (or $PODSHIM_DEBIAN_MIRROR, else deb.debian.org), then `docker import`
#   --dockerfile  `docker build` of ./Dockerfile (FROM debian:bookworm-slim, or $PODSHIM_CI_BASE),
#                 for hosts that can pull
#   --hash        only print the label an up-to-date image has (no daemon needed; test-in-vm.sh
#                 keys its saved copy of the image by it)
# The image ($PODSHIM_CI_IMAGE, default podshim-ci:bookworm) is labelled with a hash of the
# package list and of this recipe; when an image with the same label exists, nothing is done.
# Uses the docker daemon the `docker` client is configured for (DOCKER_HOST).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${PODSHIM_CI_IMAGE:-podshim-ci:bookworm}
method=debootstrap
[ "${1:-}" = --dockerfile ] && method=dockerfile
mapfile -t pkgs < <(scripts/install-deps.sh --list)
# Bump `recipe` when the way the image is made changes, so cached images are rebuilt.
recipe=1
hash=$( { echo "recipe $recipe"; printf '%s\n' "${pkgs[@]}" | sort; } | sha256sum | cut -c1-16)
label=org.podshim.ci.packages
if [ "${1:-}" = --hash ]; then echo "$hash"; exit 0; fi
have=$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null || true)
if [ "$have" = "$hash" ]; then
    echo "ci-image: $image is up to date (packages $hash)"
    exit 0
fi
start=$(date +%s)

if [ "$method" = dockerfile ]; then
    # --network host: apt works whatever the daemon's networking (even dockerd --bridge=none).
    docker build -q --network host --label "$label=$hash" ${PODSHIM_CI_BASE:+--build-arg "BASE=$PODSHIM_CI_BASE"} \
        -t "$image" . >/dev/null
    echo "ci-image: built $image from Dockerfile in $(($(date +%s) - start)) s"
    exit 0
fi

command -v debootstrap >/dev/null || {
    echo "ci-image: debootstrap is missing: apt-get install debootstrap (or use --dockerfile)" >&2
    exit 1
}
mirror=$(scripts/debian-mirror.sh)
work=$(mktemp -d /var/tmp/podshim-ci-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "ci-image: debootstrap bookworm from $mirror with: ${pkgs[*]}"
include=$(IFS=,; echo "${pkgs[*]}")
if ! debootstrap --variant=minbase --include="$include" bookworm "$work/rootfs" "$mirror" \
    >"$work/log" 2>&1; then
    tail -n 20 "$work/log" >&2
    tail -n 20 "$work/rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    echo "ci-image: debootstrap failed" >&2
    exit 1
fi
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -c . | docker import \
    -c "LABEL $label=$hash" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' \
    - "$image" >/dev/null
echo "ci-image: built $image (packages $hash) in $(($(date +%s) - start)) s"
