#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 host (as root) and run the example two-container Pod:
# install the packages, build podshim and pause, make the busybox image offline from
# busybox-static, import it, and run examples/web-pod.yaml in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }
scripts/install-deps.sh
scripts/build.sh release
image=target/example/busybox-oci.tar
[ -s "$image" ] || scripts/make-busybox-image.sh "$image"
target/release/podshim image import --name busybox:1.35 "$image"
exec target/release/podshim run examples/web-pod.yaml
