#!/usr/bin/env bash
# build.sh: configures and builds dropnet (Release) into build/ (or $DROPNET_BUILD_DIR).
# Extra arguments go to CMake's configure step, e.g. -DDROPNET_CUDA=OFF.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${DROPNET_BUILD_DIR:-$root/build}"
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
