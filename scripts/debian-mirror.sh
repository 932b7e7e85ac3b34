#!/usr/bin/env bash
# Print the Debian mirror to debootstrap bookworm from: $PODSHIM_DEBIAN_MIRROR, else the mirror the
# host's apt uses for bookworm (one-line .list or deb822 .sources), else deb.debian.org.
# Used by scripts/ci-image.sh and scripts/test-in-vm.sh.
set -euo pipefail
host_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk '$1 == "deb" { sub(/^\[[^]]*\] */, "", $0); split($0, w, " ");
             if (w[3] == "bookworm") { print w[2]; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             { uri = ""; ok = 0
               for (i = 1; i <= NF; i++) {
                 if ($i ~ /^URIs:/) { split($i, u, " "); uri = u[2] }
                 if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) ok = 1 }
               if (ok && uri != "") { print uri; exit } }' "$f"
    done
}
# (sed, not head: reading all of it, no writer can get SIGPIPE under pipefail)
mirror=${PODSHIM_DEBIAN_MIRROR:-$(host_mirror | sed -n 1p)}
echo "${mirror:-http://deb.debian.org/debian}"
