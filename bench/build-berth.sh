#!/usr/bin/env bash
# bench/build-berth.sh — the release build the benchmarks measure; prints the binary's path.
#
# The Swift runtime and Foundation are linked statically (--static-swift-stdlib), as we recommend for
# deployment: calls into the runtime (retain/release) skip the dynamic-linking indirection, and the process maps
# one binary instead of a dozen shared libraries. A scratch folder of its own keeps it from rebuilding the debug
# build that tests use. Build output goes to stderr.
set -Eeuo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=$REPO_DIR/.build-static
(cd "$REPO_DIR" && swift build -c release --product berth --static-swift-stdlib --scratch-path "$SCRATCH") >&2
echo "$SCRATCH/release/berth"
