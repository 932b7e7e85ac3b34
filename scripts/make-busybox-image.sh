#!/usr/bin/env bash
# Build a busybox OCI image archive offline from Debian's busybox-static, with umoci.
# usage: scripts/make-busybox-image.sh OUT.tar
# The archive's ref name is "1.35"; import it with: podshim image import --name busybox:1.35 OUT.tar
set -euo pipefail
out=$(realpath -m "${1:?usage: $0 OUT.tar}")
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "missing $busybox: apt-get install busybox-static" >&2; exit 1; }
command -v umoci >/dev/null || { echo "missing umoci: apt-get install umoci" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
umoci init --layout layout >/dev/null
umoci new --image layout:1.35
umoci unpack --image layout:1.35 bundle >/dev/null
mkdir -p bundle/rootfs/bin bundle/rootfs/etc bundle/rootfs/tmp bundle/rootfs/www
chmod 1777 bundle/rootfs/tmp
cp "$busybox" bundle/rootfs/bin/busybox
for a in $("$busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "bundle/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > bundle/rootfs/etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' > bundle/rootfs/etc/group
umoci repack --image layout:1.35 bundle
umoci config --image layout:1.35 --config.cmd=/bin/sh --config.env=PATH=/bin --architecture=amd64 --os=linux
umoci gc --layout layout
mkdir -p "$(dirname "$out")"
tar -C layout -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "$out"
