#!/usr/bin/env bash
# test.sh: sets up, builds, and runs every test through CTest. The CUDA tests are built only when the
# CUDA backend is (nvcc and cuDNN found; build.sh prints which); then, without a GPU, CTest reports them
# as skipped (exit code 77), never as passed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${DROPNET_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh" -DDROPNET_BUILD_TESTS=ON
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
