#!/usr/bin/env bash
# install-deps.sh: installs dropnet's build dependencies from Debian's packages when they are missing.
# The CUDA toolkit (nvcc, cuDNN, cuBLAS, cuRAND) is not installed here: when nvcc is on the PATH the CUDA
# backend is built as well, otherwise the CPU backend alone.
set -euo pipefail

packages=(cmake g++ make pkg-config libfmt-dev catch2 libopenblas-dev zlib1g-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
