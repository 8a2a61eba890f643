#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only those missing.
# Runs as root on a fresh Debian 12 machine (as CI does); `apt-get update` runs at most once.
set -euo pipefail

need=()
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
