#!/usr/bin/env bash
# train.sh: sets up, builds the dropnet program, and trains the seed model (the Keras dropout convnet on
# CIFAR-10). Arguments go to `dropnet train` (see `build/dropnet train --help`); without --data it uses
# data/cifar-10-batches-bin when present, else the bundled 500-image sample.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${DROPNET_BUILD_DIR:-$root/build}"
DROPNET_BUILD_TARGETS="${DROPNET_BUILD_TARGETS:-dropnet_cli}" "$root/scripts/build.sh"
exec "$build/dropnet" train "$@"
