#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan against the library sources
# (CUDA off) and runs each for a bounded time, single process.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]     targets: safetensors cifar10 (default: both)
#   FUZZ_RUNS=1000000 scripts/fuzz.sh 900                   stop each after 1M executions (or 900 s)
#
# Needs clang and libFuzzer: apt-get install -y clang libclang-rt-14-dev (or the distribution's version).
# Build in $FUZZ_BUILD (default build-fuzz/); corpora grow in $FUZZ_BUILD/corpus/<target>; logs in
# $FUZZ_BUILD/<target>.log. Exits non-zero when a target finds a crash (the reproducer is in $FUZZ_BUILD).
set -euo pipefail

SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(safetensors cifar10)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FUZZ_BUILD:-$ROOT/build-fuzz}

mkdir -p "$BUILD"
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install -y clang libclang-rt-14-dev)" >&2; exit 2; }

cmake -S "$ROOT/fuzz" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
  >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" -j2 --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

# Seed corpora: a real checkpoint and weights file; a tiny valid cifar-10-binary.tar.gz.
mkdir -p "$BUILD/corpus/safetensors" "$BUILD/corpus/cifar10" "$BUILD/seeds/safetensors" "$BUILD/seeds/cifar10"
python3 - "$BUILD/seeds/cifar10" <<'PY'
import gzip, io, sys, tarfile
out = sys.argv[1]
def record(label, i):
    return bytes([label]) + bytes((i * 7 + k) % 256 for k in range(3072))
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    for n, name in enumerate(["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]):
        data = record(n % 10, n)
        info = tarfile.TarInfo("cifar-10-batches-bin/" + name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
open(out + "/official-layout.tar.gz", "wb").write(gzip.compress(buf.getvalue(), 9))
open(out + "/one-record.bin", "wb").write(record(3, 1))
PY

status=0
for t in "${TARGETS[@]}"; do
  bin="$BUILD/fuzz_$t"
  extra=()
  [[ -n ${FUZZ_RUNS:-} ]] && extra+=(-runs="$FUZZ_RUNS")
  if [[ $t == safetensors ]]; then
    DROPNET_FUZZ_SEEDS="$BUILD/seeds/safetensors" "$bin" -runs=0 "$BUILD/seeds/safetensors" >/dev/null 2>&1 || true
  fi
  echo "== fuzz_$t for ${SECONDS_PER_TARGET}s"
  (cd "$BUILD" && "$bin" -max_total_time="$SECONDS_PER_TARGET" -max_len=16384 -print_final_stats=1 \
      -timeout=10 -rss_limit_mb=4096 "$BUILD/corpus/$t" "$BUILD/seeds/$t" "${extra[@]}") >"$BUILD/$t.log" 2>&1 || status=1
  grep -E "^#[0-9]+ +(DONE|INITED)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb" "$BUILD/$t.log" || true
  grep -E "ERROR|SUMMARY|crash-|deadly signal" "$BUILD/$t.log" && status=1 || true
done
exit $status
