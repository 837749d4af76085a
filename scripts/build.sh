#!/usr/bin/env bash
# Configures and builds Sluice into build/ (binaries in build/bin/).
# Extra arguments go to cmake, e.g. scripts/build.sh -DSLUICE_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SLUICE_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
