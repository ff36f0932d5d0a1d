#!/usr/bin/env bash
# Set up, build and start gos-compositor on the built-in demo stream.
# Extra arguments go to gos-compositor (e.g. --listen 0.0.0.0:7680).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash tools/setup.sh --run
build=${GOS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target gos-compositor >/dev/null
exec "$build/compositor/gos-compositor" --demo "$@"
