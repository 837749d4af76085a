#!/usr/bin/env bash
# The first command: install what is needed, build, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec scripts/main_job.sh
