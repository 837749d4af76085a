#!/usr/bin/env bash
# The test command: builds with warnings as errors, then runs every test
# (unit, integration, fault, and a bounded fuzz run). Fails if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh -DSLUICE_WERROR=ON -DSLUICE_FUZZ=ON
cd "${SLUICE_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@"
