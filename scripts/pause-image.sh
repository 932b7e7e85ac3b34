#!/usr/bin/env bash
# Write podshim's own pause binary as an OCI image archive, offline, with umoci: the sandbox
# image a containerd node imports and uses as the CRI plugin's `sandbox_image` (no registry).
# usage: scripts/pause-image.sh OUT.tar [NAME]
#   NAME defaults to localhost/podshim/pause:<workspace version>, e.g. localhost/podshim/pause:0.1.0
#   PODSHIM_PAUSE_STATIC: the static pause binary (default target/pause/release/pause, which
#   scripts/build.sh makes; built here the same way when missing)
#
# On the node:
#   ctr -n k8s.io images import OUT.tar     # -> the image NAME (printed by this script)
#   [plugins."io.containerd.grpc.v1.cri"]
#     sandbox_image = "NAME"
# The index names the image twice: `io.containerd.image.name` (the full NAME, which
# `ctr images import` uses as it is) and `org.opencontainers.image.ref.name` (the tag alone, as
# OCI layouts do; `podman load` and `podshim image import` read that one).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:?usage: $0 OUT.tar [NAME]}")
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml")
name=${2:-localhost/podshim/pause:$version}
tag=${name##*:}
[ "$tag" != "$name" ] && [[ "$tag" != */* ]] || { echo "NAME must end with :TAG: $name" >&2; exit 2; }
command -v umoci >/dev/null || { echo "missing umoci: apt-get install umoci" >&2; exit 1; }
command -v python3 >/dev/null || { echo "missing python3: apt-get install python3" >&2; exit 1; }
pause=${PODSHIM_PAUSE_STATIC:-$repo/target/pause/release/pause}
if [ ! -x "$pause" ] && [ -z "${PODSHIM_PAUSE_STATIC:-}" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    (cd "$repo" && cargo rustc -q --release -p podshim-pause --target-dir target/pause -- -C target-feature=+crt-static)
fi
[ -x "$pause" ] || { echo "missing pause binary $pause: run scripts/build.sh" >&2; exit 1; }
# The image has nothing but /pause: a dynamically linked one could not start in it.
if ldd "$pause" 2>&1 | grep -q '=>'; then
    echo "$pause is dynamically linked; the pause image needs the static build of scripts/build.sh" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
umoci init --layout layout >/dev/null
umoci new --image "layout:$tag"
umoci unpack --image "layout:$tag" bundle >/dev/null
install -m 0755 "$pause" bundle/rootfs/pause
umoci repack --image "layout:$tag" bundle
# As Kubernetes' pause image: the entrypoint alone, run as 65535:65535 (the CRI applies the
# image's user to the sandbox container).
umoci config --image "layout:$tag" --config.entrypoint=/pause --config.user=65535:65535 \
    --architecture=amd64 --os=linux --config.label=io.podshim.pause=true
umoci gc --layout layout
python3 - "$name" layout/index.json <<'EOF'
import json, sys
name, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    index = json.load(f)
for m in index["manifests"]:
    m.setdefault("annotations", {})["io.containerd.image.name"] = name
with open(path, "w") as f:
    json.dump(index, f)
EOF
mkdir -p "$(dirname "$out")"
tar -C layout -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "$out: $name"
