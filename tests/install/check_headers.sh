#!/usr/bin/env bash
# check_headers.sh PREFIX
#
# Every installed public header must compile on its own, with a plain C++20 compiler and nothing but
# PREFIX/include on the include path (no CUDA, cuDNN, fmt or OpenBLAS include directory):
#   g++ -std=c++20 -fsyntax-only -IPREFIX/include  (a file that includes only that header)
# and must not pull in, even from a system directory, a header of a private dependency (CUDA runtime,
# cuDNN, cuBLAS, cuRAND, fmt, cblas/OpenBLAS, zlib) or a private header of the source tree.
# Warnings (-Wall -Wextra -Wpedantic) are shown; errors fail. CXX overrides g++.
set -euo pipefail

prefix=${1:?usage: check_headers.sh PREFIX}
cxx=${CXX:-g++}
incdir="$prefix/include"
shopt -s nullglob
headers=("$incdir"/dropnet/*.hpp)
if ((${#headers[@]} == 0)); then
  echo "check_headers: no header under $incdir/dropnet" >&2
  exit 2
fi
# Nothing may sneak a CUDA include path in through the environment.
unset CPATH CPLUS_INCLUDE_PATH C_INCLUDE_PATH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
forbidden='(^|/)(cuda[^/]*\.h|cuda_runtime[^/]*|cudnn[^/]*\.h|cublas[^/]*\.h|curand[^/]*\.h|driver_types\.h|fmt/[^/]*\.h|cblas[^/]*\.h|openblas[^/]*\.h|zlib\.h|launch\.cuh)$|/(src|kernels)/'

failed=()
for header in "${headers[@]}"; do
  name="dropnet/$(basename "$header")"
  tu="$work/tu.cpp"
  printf '#include <%s>\n#include <%s>\nint main() {}\n' "$name" "$name" >"$tu"   # twice: include guard
  if ! "$cxx" -std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -I"$incdir" "$tu" 2>"$work/err"; then
    echo "check_headers: FAIL $name does not compile alone:" >&2
    sed 's/^/  /' "$work/err" >&2
    failed+=("$name")
    continue
  fi
  [[ -s $work/err ]] && { echo "check_headers: warnings in $name:" >&2; sed 's/^/  /' "$work/err" >&2; }
  # Every file the header pulls in, one per line.
  "$cxx" -std=c++20 -M -MT x -I"$incdir" "$tu" | sed -e 's/^x://' -e 's/\\$//' | tr ' ' '\n' | sed '/^$/d' >"$work/deps"
  if grep -E "$forbidden" "$work/deps" >"$work/bad"; then
    echo "check_headers: FAIL $name pulls in private headers:" >&2
    sed 's/^/  /' "$work/bad" >&2
    failed+=("$name")
    continue
  fi
  outside=$(grep -F "$incdir/" "$work/deps" | grep -v -F "$incdir/dropnet/" || true)
  if [[ -n $outside ]]; then
    echo "check_headers: FAIL $name includes files of $incdir outside dropnet/: $outside" >&2
    failed+=("$name")
    continue
  fi
  echo "check_headers: ok $name"
done

if ((${#failed[@]})); then
  echo "check_headers: ${#failed[@]} of ${#headers[@]} headers failed: ${failed[*]}" >&2
  exit 1
fi
echo "check_headers: all ${#headers[@]} public headers compile alone with $cxx -std=c++20 -I$incdir"
