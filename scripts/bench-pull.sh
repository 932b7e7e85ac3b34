#!/usr/bin/env bash
# Benchmark a registry pull + unpack of a multi-layer image, interleaved in one run:
#   podshim image pull (fresh --root each time: manifest, blobs verified, layers unpacked)
#   vs skopeo copy docker:// -> oci: followed by umoci unpack of the same image.
# Goal: podshim no slower than the pair. The registry is Debian's docker-registry on 127.0.0.1.
#
# usage: scripts/bench-pull.sh [-n ITERATIONS] [--no-build]     (as root)
# Report: stdout and target/bench/bench-pull.md. Everything lives under a temp dir in /var/tmp
# (registry storage, stores, bundles) and is removed on exit, registry included (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

iterations=10 build=1
usage() { sed -n 's/^# usage: //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || usage; iterations=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $iterations =~ ^[1-9][0-9]*$ ]] || { echo "-n needs a positive integer" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "the benchmark needs root (layer ownership, device nodes)" >&2; exit 1; }
scripts/install-deps.sh
[ "$build" = 1 ] && scripts/build.sh release
podshim=$PWD/target/release/podshim
[ -x "$podshim" ] || { echo "missing $podshim (run without --no-build)" >&2; exit 1; }

tmp=$(mktemp -d /var/tmp/podshim-bench-pull.XXXXXX)
registry_pid=
cleanup() {
    set +e
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# The image: busybox plus four layers of real files (libraries, share data), about 90 MB
# uncompressed, built offline with umoci.
echo "building the test image..."
(
    cd "$tmp"
    umoci init --layout layout >/dev/null
    umoci new --image layout:bench
    umoci unpack --image layout:bench bundle >/dev/null
    mkdir -p bundle/rootfs/bin
    cp /bin/busybox bundle/rootfs/bin/
    umoci repack --refresh-bundle --image layout:bench bundle
    for part in /usr/lib/x86_64-linux-gnu/perl-base /usr/share/perl /usr/lib/python3.11 /usr/share/zoneinfo; do
        [ -d "$part" ] || continue
        mkdir -p "bundle/rootfs$(dirname "$part")"
        cp -a "$part" "bundle/rootfs$part"
        umoci repack --refresh-bundle --image layout:bench bundle
    done
    umoci config --image layout:bench --config.cmd=/bin/busybox --architecture=amd64 --os=linux
    umoci gc --layout layout
    rm -rf bundle
)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$tmp/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $tmp/registry
http:
  addr: 127.0.0.1:$port
EOF
/usr/bin/docker-registry serve "$tmp/registry.yml" > "$tmp/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
ref=127.0.0.1:$port/bench:1
skopeo copy --quiet --dest-tls-verify=false "oci:$tmp/layout:bench" "docker://$ref"
layers=$(skopeo inspect --tls-verify=false --raw "docker://$ref" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(len(m["layers"]), sum(l["size"] for l in m["layers"]))')
echo "image $ref: $layers (layers, compressed bytes)"

now() { date +%s%N; }
ms() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.1f", (e - s) / 1e6 }'; }
declare -a t_podshim t_ref
for i in $(seq "$iterations"); do
    s=$(now)
    "$podshim" --root "$tmp/ps-$i" image pull "$ref" >/dev/null
    e=$(now); t_podshim+=("$(ms "$s" "$e")")
    s=$(now)
    skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$tmp/sk-$i:bench"
    umoci unpack --image "$tmp/sk-$i:bench" "$tmp/bundle-$i" >/dev/null
    e=$(now); t_ref+=("$(ms "$s" "$e")")
    rm -rf "$tmp/ps-$i" "$tmp/sk-$i" "$tmp/bundle-$i"
done

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f %.1f", m, a[1], a[NR]}'; }
read -r pm pmin pmax <<<"$(stats "${t_podshim[@]}")"
read -r rm_ rmin rmax <<<"$(stats "${t_ref[@]}")"
ratio=$(awk -v a="$pm" -v b="$rm_" 'BEGIN { printf "%.2f", a / b }')
mkdir -p target/bench
{
    echo "| pull + unpack ($iterations iterations, ms) | median | min | max |"
    echo "|---|---:|---:|---:|"
    echo "| podshim image pull | $pm | $pmin | $pmax |"
    echo "| skopeo copy + umoci unpack | $rm_ | $rmin | $rmax |"
    echo
    echo "podshim / reference: ${ratio}x (image: $layers)"
} | tee target/bench/bench-pull.md
