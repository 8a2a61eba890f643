#!/usr/bin/env bash
# The full test suite: unit, contract and in-process API tests (swift test), then end-to-end
# tests with real clients and servers (e2e/*.sh). Installs what it needs on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh libsqlite3-dev skopeo podman umoci nginx apache2 docker-registry apache2-utils openssl jq curl \
    postgresql python3-pip

# PostgreSQL and an S3-compatible server (moto) for the storage contract suites of the scale-out back ends.
services=$(mktemp -d /tmp/berth-test-services.XXXXXX)
trap 'scripts/test-services.sh stop "$services" >/dev/null 2>&1 || true; rm -rf "$services"' EXIT
scripts/test-services.sh start "$services"
# shellcheck disable=SC1091
. "$services/env"

echo "== build"
swift build --build-tests

echo "== swift test"
swift test --skip-build
scripts/test-services.sh stop "$services" >/dev/null

# Each end-to-end script prints `N passed, M failed` last; all run even when one fails.
passed=0
failed=0
broken=()
for script in e2e/hosted.sh e2e/frontdoor.sh e2e/proxy.sh e2e/auth.sh e2e/scaleout.sh; do
    [ -f "$script" ] || continue
    echo "== $script"
    log=$(mktemp)
    set +e
    BERTH_BIN="$PWD/.build/debug/berth" bash "$script" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
    rm -f "$log"
    if [ -z "$summary" ]; then
        failed=$((failed + 1))
        broken+=("$script (no summary, exit $status)")
        continue
    fi
    p=${summary%% passed*}
    f=${summary#*, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        failed=$((failed + 1))
        broken+=("$script (exit $status)")
    fi
done
for b in "${broken[@]}"; do echo "broken: $b"; done
echo "end-to-end: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
