#!/usr/bin/env bash
# test.sh: sets up, builds, and runs every test through CTest. The real-GPU CUDA tests are built only
# when the CUDA backend is (nvcc and cuDNN found; build.sh prints which); then, without a GPU, CTest
# reports them as skipped (exit code 77), never as passed. Where the CUDA toolkit's and cuDNN's headers
# are installed (with or without nvcc and a GPU), the same CUDA tests also run on the emulated device
# (tests/emulated_device/; DROPNET_CUDA_EMULATION=AUTO, ON or OFF).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${DROPNET_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh" -DDROPNET_BUILD_TESTS=ON -DDROPNET_CUDA_EMULATION="${DROPNET_CUDA_EMULATION:-AUTO}"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
