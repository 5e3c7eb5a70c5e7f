#!/usr/bin/env bash
# Regenerates tests/reference/goldens/ (see generate_goldens.py). One command, from anywhere:
#   bash tests/reference/generate_goldens.sh            # rewrite the goldens
#   bash tests/reference/generate_goldens.sh --check    # compare a fresh run with the committed goldens
# Creates .venv-keras/ at the repository root (gitignored) with the pinned versions of requirements.txt.
# Needs python3 (3.11 or newer, for jax 0.10) and access to PyPI the first time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv-keras"
py="${PYTHON:-python3}"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$here/requirements.txt" "$venv/.requirements.txt"; then
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.requirements.txt"
fi
export KERAS_BACKEND=jax JAX_PLATFORMS=cpu PYTHONHASHSEED=0
exec "$venv/bin/python" "$here/generate_goldens.py" "$@"
