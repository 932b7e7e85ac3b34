#!/usr/bin/env bash
# Build podshim and the static pause binary; pause is put next to podshim (where podshim looks).
# usage: scripts/build.sh [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile=${1:-release}
flag=(); [ "$profile" = release ] && flag=(--release)
cargo build "${flag[@]}" --bins
# pause: a static binary, built in its own target dir so other builds never replace it.
cargo rustc -q --release -p podshim-pause --target-dir target/pause -- -C target-feature=+crt-static
install -m 0755 target/pause/release/pause "target/$profile/pause"
echo "built target/$profile/podshim and target/$profile/pause"
