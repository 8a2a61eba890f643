#!/usr/bin/env bash
# The full test suite: unit, contract and in-process API tests (swift test), then end-to-end
# tests with real clients and servers (e2e/). Installs what it needs on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh libsqlite3-dev skopeo umoci nginx jq curl

echo "== build"
swift build --build-tests

echo "== swift test"
swift test --skip-build

echo "== end-to-end"
BERTH_BIN="$PWD/.build/debug/berth" e2e/hosted.sh
