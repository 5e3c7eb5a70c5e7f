#!/usr/bin/env bash
# download_cifar10.sh: fetches the full CIFAR-10 dataset in its official binary layout.
#
# Usage:
#   data/download_cifar10.sh [--dir DIR]
#       Downloads https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (163 MB) into DIR (default: data/),
#       checks its published MD5 and unpacks it to DIR/cifar-10-batches-bin/. A bad download is deleted.
#       An archive already in DIR with the right MD5 is reused rather than downloaded again.
#   data/download_cifar10.sh --from-jpeg-copy SRC [--dir DIR]
#       For machines that cannot reach the URL: runs SRC/make_cifar10_bin.py (the folder of a
#       JPEG-recompressed copy of CIFAR-10; see data/README.md) to write DIR/cifar-10-batches-bin/, then
#       checks the files against SRC/MD5SUMS. Needs python3 with numpy and Pillow (set PYTHON to choose one).
#
# The download needs curl or wget and CA certificates: scripts/install-deps.sh --download checks for them
# and installs them on Debian or Ubuntu (as root, or through sudo), or says what to install elsewhere.
#
# Environment: CIFAR10_URL and CIFAR10_MD5 override the URL and the expected sum (for testing the
# checks, not for everyday use); PYTHON picks the interpreter for --from-jpeg-copy (default python3).
# dropnet train --data DIR/cifar-10-batches-bin (or --data DIR/cifar-10-binary.tar.gz) then uses it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
url="${CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}"
expected_md5="${CIFAR10_MD5:-c32a1d4ab5d03f1284b67883e8d87530}"
dir="$here"
jpeg_copy=""

die() { echo "download_cifar10.sh: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

while (( $# > 0 )); do
  case "$1" in
    --dir) (( $# >= 2 )) || die "--dir needs a directory"; dir="$2"; shift 2 ;;
    --from-jpeg-copy) (( $# >= 2 )) || die "--from-jpeg-copy needs a directory (the JPEG copy's folder)"
                      jpeg_copy="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
mkdir -p "$dir"

md5_of() {  # prints the MD5 of a file (GNU md5sum, or BSD/macOS md5)
  if command -v md5sum > /dev/null; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 > /dev/null; then md5 -q "$1"
  else die "neither md5sum nor md5 is installed; cannot verify the download"
  fi
}

if [[ -n "$jpeg_copy" ]]; then
  script="$jpeg_copy/make_cifar10_bin.py"
  [[ -f "$script" ]] || die "$script not found; expected the folder of the JPEG-recompressed copy"
  python="${PYTHON:-python3}"
  "$python" -c 'import numpy, PIL' 2> /dev/null ||
    die "$python lacks numpy or Pillow (Debian: apt-get install python3-numpy python3-pil, then PYTHON=/usr/bin/python3)"
  "$python" "$script" "$dir"
  if [[ -f "$jpeg_copy/MD5SUMS" ]]; then
    sums="$(cd "$jpeg_copy" && pwd)/MD5SUMS"
    (cd "$dir/cifar-10-batches-bin" && md5sum --quiet -c "$sums") ||
      die "files in $dir/cifar-10-batches-bin do not match $sums"
  fi
  echo "CIFAR-10 (JPEG-derived copy) is in $dir/cifar-10-batches-bin"
  exit 0
fi

archive="$dir/cifar-10-binary.tar.gz"
if [[ ! -f "$archive" ]] || [[ "$(md5_of "$archive")" != "$expected_md5" ]]; then
  "$here/../scripts/install-deps.sh" --download || die "curl or wget and CA certificates are needed (see above)"
fi
if [[ -f "$archive" && "$(md5_of "$archive")" == "$expected_md5" ]]; then
  echo "reusing $archive (MD5 $expected_md5 OK)"
else
  partial="$archive.part"
  rm -f "$partial"
  echo "downloading $url"
  if command -v curl > /dev/null; then
    curl --fail --location --retry 3 --output "$partial" "$url" || { rm -f "$partial"; die "download of $url failed"; }
  elif command -v wget > /dev/null; then
    wget --tries=3 --output-document="$partial" "$url" || { rm -f "$partial"; die "download of $url failed"; }
  else
    die "neither curl nor wget is installed"
  fi
  actual_md5="$(md5_of "$partial")"
  if [[ "$actual_md5" != "$expected_md5" ]]; then
    rm -f "$partial"
    die "MD5 mismatch for $url: got $actual_md5, expected $expected_md5; the bad file was deleted"
  fi
  mv "$partial" "$archive"
  echo "MD5 $expected_md5 OK"
fi

tar -xzf "$archive" -C "$dir" cifar-10-batches-bin
for f in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin; do
  [[ -f "$dir/cifar-10-batches-bin/$f" ]] || die "$archive did not contain cifar-10-batches-bin/$f"
done
echo "CIFAR-10 is in $dir/cifar-10-batches-bin (the archive $archive can be used directly too)"
