#!/usr/bin/env bash
# install-deps.sh: checks that dropnet's build dependencies are present and, on Debian or Ubuntu,
# installs the missing ones from the distribution's packages.
#
#   scripts/install-deps.sh              the build: CMake, a C++20 compiler, make or Ninja, pkg-config,
#                                        python3, and the headers and libraries of fmt, OpenBLAS (CBLAS),
#                                        zlib and Catch2 (v2 or v3)
#   scripts/install-deps.sh --download   what data/download_cifar10.sh needs: curl or wget, CA certificates
#
# It checks the tools and headers themselves (a compile and link test), not package names, so where
# everything is present it installs nothing, on any distribution. Where something is missing:
#   - on Debian or Ubuntu (apt-get), it installs the packages that provide it; apt-get needs root, so run
#     it as root or with sudo available (it then calls sudo apt-get);
#   - elsewhere, it prints what to install and exits 1.
# The CUDA toolkit and cuDNN are never installed here: when nvcc (and cuDNN) are found the CUDA backend
# is built as well, otherwise the CPU backend alone (README.md, "Requirements").
set -euo pipefail

CMAKE_MIN=3.22
mode=build
case "${1:-}" in
  "") ;;
  --download) mode=download ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "install-deps: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

missing_debs=()   # Debian package names of what is missing
missing_what=()   # the same, in words, for other distributions
need() { missing_debs+=("$1"); missing_what+=("$2"); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# compiles (and links, with the given libraries) a program; -I for the places CMake also looks in
try_cxx() {  # try_cxx SOURCE [LIBS...]
  local src=$1
  shift
  printf '%s\n' "$src" > "$tmp/t.cpp"
  "$CXX_BIN" -std=c++20 -I/usr/include/openblas "$tmp/t.cpp" -o "$tmp/t" "$@" > "$tmp/log" 2>&1
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

if [ "$mode" = download ]; then
  command -v curl > /dev/null || command -v wget > /dev/null || need curl "curl (or wget)"
  ca_found=""
  for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem \
           /etc/ssl/ca-bundle.pem; do
    [ -s "$f" ] && ca_found=$f
  done
  [ -n "$ca_found" ] || need ca-certificates "CA certificates (ca-certificates)"
else
  # CMake
  if command -v cmake > /dev/null; then
    have=$(cmake --version | sed -n '1s/^cmake version \([0-9.]*\).*/\1/p')
    version_ge "$have" "$CMAKE_MIN" || need cmake "CMake $CMAKE_MIN or later (found $have)"
  else
    need cmake "CMake $CMAKE_MIN or later"
  fi
  command -v make > /dev/null || command -v ninja > /dev/null || need make "make (or ninja)"
  command -v pkg-config > /dev/null || command -v pkgconf > /dev/null || need pkg-config "pkg-config (or pkgconf)"
  command -v python3 > /dev/null || need python3 "python3"

  # A C++20 compiler: the one CMake would take ($CXX, else c++, g++, clang++).
  CXX_BIN=""
  for c in "${CXX:-}" c++ g++ clang++; do
    [ -n "$c" ] && command -v "$c" > /dev/null && { CXX_BIN=$c; break; }
  done
  if [ -z "$CXX_BIN" ] || ! try_cxx $'#include <span>\n#include <concepts>\n#include <bit>\nint main() { return std::bit_width(1u) == 1 ? 0 : 1; }'; then
    need g++ "a C++20 compiler (GCC 12 or later)"
    CXX_BIN=""
    # Without a compiler the headers cannot be tested: take the packages that provide them (apt-get
    # leaves those already installed alone); the check below runs again once they are in.
    missing_debs+=(libfmt-dev libopenblas-dev zlib1g-dev catch2)
  fi
  # Headers and libraries: only testable with a compiler (else reported with it).
  if [ -n "$CXX_BIN" ]; then
    try_cxx $'#include <fmt/format.h>\nint main() { return fmt::format("{}", 1).size() == 1 ? 0 : 1; }' -lfmt ||
      need libfmt-dev "fmt (headers and library; 9 or later)"
    try_cxx $'#include <cblas.h>\nint main() { float a = 1, b = 1; return cblas_sdot(1, &a, 1, &b, 1) == 1 ? 0 : 1; }' -lopenblas ||
      need libopenblas-dev "OpenBLAS with its CBLAS header (cblas.h)"
    try_cxx $'#include <zlib.h>\nint main() { return zlibVersion() ? 0 : 1; }' -lz ||
      need zlib1g-dev "zlib (headers and library)"
    { printf '#include <catch2/catch_all.hpp>\n' > "$tmp/c.cpp" && "$CXX_BIN" -std=c++20 -E "$tmp/c.cpp" -o /dev/null 2> /dev/null; } ||
      { printf '#include <catch2/catch.hpp>\n' > "$tmp/c.cpp" && "$CXX_BIN" -std=c++20 -E "$tmp/c.cpp" -o /dev/null 2> /dev/null; } ||
      need catch2 "Catch2 (v2.13 or v3, with its CMake package)"
  fi
fi

[ ${#missing_debs[@]} -eq 0 ] && exit 0

if [ -n "${DROPNET_DEPS_RECHECKED:-}" ]; then
  echo "install-deps: still missing after apt-get:" >&2
  for w in "${missing_what[@]}"; do echo "  - $w" >&2; done
  exit 1
fi
if ! command -v apt-get > /dev/null || ! command -v dpkg > /dev/null; then
  echo "install-deps: missing, and this is not a Debian or Ubuntu system, so install them yourself:" >&2
  for w in "${missing_what[@]}"; do echo "  - $w" >&2; done
  echo "  (Fedora: cmake gcc-c++ make pkgconf python3 fmt-devel openblas-devel zlib-devel catch-devel;" >&2
  echo "   Arch: cmake gcc make pkgconf python fmt openblas cblas zlib catch2)" >&2
  exit 1
fi

printf -v missing_list '%s; ' "${missing_what[@]}"
echo "install-deps: missing: ${missing_list%; }"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo > /dev/null; then
    echo "install-deps: installing them needs root (apt-get), and sudo is not installed; as root, run:" >&2
    echo "  apt-get install ${missing_debs[*]}" >&2
    exit 1
  fi
  echo "install-deps: apt-get needs root: running it through sudo"
  sudo=(sudo)
fi
echo "install-deps: installing with apt-get: ${missing_debs[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" > /dev/null
echo "install-deps: installed ${missing_debs[*]}"
# Check again (once), now that a compiler is there to test the headers with.
DROPNET_DEPS_RECHECKED=1 exec "$0" "$@"
