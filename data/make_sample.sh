#!/usr/bin/env bash
# make_sample.sh: cuts the bundled CIFAR-10 sample (data/cifar10-sample/) out of a full copy.
#
# Usage: data/make_sample.sh [FULL_DIR] [OUT_DIR]
#   FULL_DIR  a directory with the six official batch files (default: data/cifar-10-batches-bin)
#   OUT_DIR   where the sample goes (default: data/cifar10-sample)
#
# The sample keeps the official format, so the loader reads it like the real dataset: the first
# 100 records of each data_batch_k.bin (500 train records) and the first 200 of test_batch.bin.
# Records are 3073 bytes, so a prefix of whole records is just `head -c`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
full="${1:-$here/cifar-10-batches-bin}"
out="${2:-$here/cifar10-sample}"
record=3073
train_records=100
test_records=200

cut_file() {  # cut_file NAME RECORDS
  local src="$full/$1" bytes=$(( $2 * record ))
  if [[ ! -f "$src" ]]; then
    echo "make_sample.sh: $src is missing; expected a full CIFAR-10 copy in $full" >&2
    exit 1
  fi
  local size
  size=$(wc -c < "$src")
  if (( size < bytes || size % record != 0 )); then
    echo "make_sample.sh: $src has $size bytes; expected a whole number of $record-byte records, at least $2" >&2
    exit 1
  fi
  head -c "$bytes" "$src" > "$out/$1"
}

mkdir -p "$out"
for k in 1 2 3 4 5; do cut_file "data_batch_$k.bin" "$train_records"; done
cut_file test_batch.bin "$test_records"
if [[ -f "$full/batches.meta.txt" ]]; then
  cp "$full/batches.meta.txt" "$out/batches.meta.txt"
else
  printf '%s\n' airplane automobile bird cat deer dog frog horse ship truck '' > "$out/batches.meta.txt"
fi
echo "wrote $((5 * train_records)) train and $test_records test records to $out"
