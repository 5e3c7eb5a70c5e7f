#!/usr/bin/env bash
# build.sh: checks (and on Debian/Ubuntu installs) the dependencies, then configures and builds dropnet
# (Release) into build/ (or $DROPNET_BUILD_DIR). Extra arguments go to CMake's configure step, e.g.
# -DDROPNET_CUDA=OFF; DROPNET_BUILD_TARGETS (e.g. "dropnet_cli") builds those targets instead of all.
# Prints one line saying whether the CUDA backend was built, and why not.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${DROPNET_BUILD_DIR:-$root/build}"
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
sed -n 's/^DROPNET_CUDA_SUMMARY:INTERNAL=/dropnet: /p' "$build/CMakeCache.txt"
targets=()
for t in ${DROPNET_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}"
