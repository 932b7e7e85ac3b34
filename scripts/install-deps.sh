#!/usr/bin/env bash
# Install the Debian packages podshim's build, example and tests need (Debian 12, as root).
set -euo pipefail
# docker-registry (the reference OCI registry), apache2-utils (htpasswd), bsdutils (script, a
# terminal for the pull progress test), python3 (the token-auth registry's token server, stdlib
# only) and openssl (its key, certificate and JWT signatures) serve the registry tests.
pkgs=(busybox-static umoci skopeo iproute2 procps libseccomp-dev pkg-config gcc libc6-dev ca-certificates containernetworking-plugins nftables
    iptables
    docker-registry apache2-utils bsdutils python3 openssl)
# python3-h2 (with Debian's python3) runs the gRPC health server of the gRPC probe tests.
pkgs+=(python3-h2)
# The containerd tests (tests/containerd) run a private containerd 1.6 (its `ctr` and
# containerd-shim-runc-v2) with runc as the reference runtime; protobuf-compiler is the protoc
# that the k8s-cri crate (their CRI client) needs at build time.
pkgs+=(containerd runc protobuf-compiler)
# libelf-dev, zlib1g-dev and make build the static libbpf of libcontainer's cgroupsv2_devices
# feature (the device rules of a cgroup v2 host are an eBPF program).
pkgs+=(libelf-dev zlib1g-dev make)
# The benchmarks also compare against podman: `install-deps.sh --bench` adds it.
[ "${1:-}" = --bench ] && pkgs+=(podman)
# `install-deps.sh --list` prints the list (one a line) and installs nothing: scripts/ci-image.sh
# and the Dockerfile build the test image from it.
if [ "${1:-}" = --list ]; then printf '%s\n' "${pkgs[@]}"; exit 0; fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "cargo not found: install a Rust toolchain >= 1.85 (rustup)" >&2
    exit 1
}
