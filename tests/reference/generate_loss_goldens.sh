#!/usr/bin/env bash
# Regenerates tests/reference/goldens_loss/ (see generate_loss_goldens.py); --check compares a fresh run.
# Uses the pinned venv of generate_goldens.sh (.venv-keras/ at the root, created by it) or $VENV_KERAS.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV_KERAS:-$(cd "$here/../.." && pwd)/.venv-keras}"
[[ -x "$venv/bin/python" ]] || { echo "no Keras venv at $venv: run tests/reference/generate_goldens.sh once, or set VENV_KERAS" >&2; exit 1; }
export KERAS_BACKEND=jax JAX_PLATFORMS=cpu PYTHONHASHSEED=0
exec "$venv/bin/python" "$here/generate_loss_goldens.py" "$@"
