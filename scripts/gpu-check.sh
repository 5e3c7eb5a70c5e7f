#!/usr/bin/env bash
# gpu-check.sh: checks dropnet on a machine with an NVIDIA GPU, in one command, and writes a summary.
#
# On your machine (CUDA toolkit with nvcc on the PATH, cuDNN 9, an NVIDIA driver), from the repository root:
#
#   scripts/install-deps.sh                 # the build's other dependencies (once; see README.md)
#   data/download_cifar10.sh                # optional: the full CIFAR-10, for the training stage
#   scripts/gpu-check.sh                    # about 8 minutes on an H100; results in out/gpu-check/
#
#        1. builds for sm_90 (Release; GPU_CHECK_ARCH=80, 89, native... for another card; GPU_CHECK_JOBS
#           parallel jobs, default 16) into build-gpu/;
#        2. runs the CUDA test suite (Catch2 counts) and ctest for the rest;
#        3. trains the seed model: dropnet train --device cuda --epochs 3 --verbose 2 on the full CIFAR-10
#           (data/cifar-10-batches-bin; skipped without it);
#        4. benchmarks: dropnet-bench kernels and throughput (also --runs 2, 4 and 8: how many runs side by
#           side the GPU wants for sweep --concurrent), the seed-model memory probe, and the PyTorch
#           eager reference (benchmarks/reference/torch_seed_model.py, when python3 has torch) on the same GPU;
#        5. compute-sanitizer memcheck and racecheck on the CUDA tests (bounded);
#        6. writes $OUT/summary.md and $OUT/summary.json (device, commit, test counts, epoch time,
#           images/s, accuracy, bandwidths, memory, and each stage's status and time).
#
#   scripts/gpu-check.sh --prepare          for a GPU machine that is offline, on a machine that is not:
#                                           fills build-deps/ with the Debian packages of the build's
#                                           dependencies and, with CIFAR_SRC=DIR (a folder holding the
#                                           JPEG-recompressed CIFAR-10 copy and its make_cifar10_bin.py),
#                                           .data/; copy the repository with both folders to the GPU machine.
#
# Every stage runs under a time limit drawn from one budget (GPU_CHECK_BUDGET_S, default 450 s, so the
# whole check stays under 8 minutes on an H100); a stage that fails or times out is recorded and the
# script goes on. It exits 0 when it could write the summary, whatever the stages did.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

# ---------------------------------------------------------------------------------------------------
# --prepare (development machine)
# ---------------------------------------------------------------------------------------------------
DEB_PACKAGES="libfmt-dev libfmt9 catch2 libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread
libopenblas0 libgfortran5 libquadmath0 zlib1g-dev zlib1g"

if [ "${1:-}" = "--prepare" ]; then
  cifar_src=${CIFAR_SRC:-}
  for candidate in "$ROOT/../shared/datasets/cifar10"; do   # where the project's development machines keep it
    [ -z "$cifar_src" ] && [ -f "$candidate/make_cifar10_bin.py" ] && cifar_src=$candidate
  done
  mkdir -p build-deps
  if [ -n "$cifar_src" ]; then
    mkdir -p .data
    cp -u "$cifar_src"/* .data/
  else
    echo "gpu-check --prepare: no CIFAR-10 copy (set CIFAR_SRC to a folder with make_cifar10_bin.py); packages only" >&2
  fi
  for pkg in $DEB_PACKAGES; do
    if ls build-deps/"${pkg}"_*.deb >/dev/null 2>&1; then continue; fi
    cached=$(ls /var/cache/apt/archives/"${pkg}"_*_amd64.deb 2>/dev/null | head -n 1)
    if [ -n "$cached" ]; then cp "$cached" build-deps/
    else (cd build-deps && apt-get download "$pkg") || echo "gpu-check --prepare: could not fetch $pkg" >&2
    fi
  done
  git rev-parse HEAD > build-deps/COMMIT 2>/dev/null || true
  echo "prepared: build-deps/ ($(du -sh build-deps | cut -f1))${cifar_src:+ and .data/ ($(du -sh .data | cut -f1))}"
  echo "copy the repository with them to the GPU machine and run scripts/gpu-check.sh there"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
# The check (GPU machine)
# ---------------------------------------------------------------------------------------------------
OUT=${OUT:-$ROOT/out/gpu-check}
BUILD=${GPU_CHECK_BUILD:-$ROOT/build-gpu}
BUDGET=${GPU_CHECK_BUDGET_S:-450}
JOBS=${GPU_CHECK_JOBS:-16}
mkdir -p "$OUT" "$BUILD/check-logs"
LOGS=$BUILD/check-logs
STAGES=$LOGS/stages.tsv
: > "$STAGES"
START=$(date +%s)
MAIN_LOG=$OUT/gpu-check.log
: > "$MAIN_LOG"

say() { echo "[gpu-check $(($(date +%s) - START))s] $*" | tee -a "$MAIN_LOG"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }

# run_stage NAME CAP_SECONDS COMMAND...: runs the command with a limit of min(CAP, budget left - 15 s),
# its output in $LOGS/NAME.log; records NAME, status (ok, failed(rc), timeout, skipped) and seconds.
run_stage() {
  local name=$1 cap=$2
  shift 2
  local limit
  limit=$(left)
  limit=$((limit - 15))
  [ "$limit" -gt "$cap" ] && limit=$cap
  if [ "$limit" -lt 5 ]; then
    printf '%s\tskipped (no time left)\t0\n' "$name" >> "$STAGES"
    say "$name: skipped, budget spent"
    return 99
  fi
  say "$name: starting (limit ${limit}s)"
  local t0 rc status
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    77) status="skipped (exit 77: no GPU)" ;;
    124 | 137) status="timeout (${limit}s)" ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - t0))" >> "$STAGES"
  say "$name: $status in $(($(date +%s) - t0))s"
  { echo "===== $name: $status ====="; tail -c 200000 "$LOGS/$name.log"; echo; } >> "$MAIN_LOG"
  return $rc
}

skip_stage() { printf '%s\tskipped (%s)\t0\n' "$1" "$2" >> "$STAGES"; say "$1: skipped ($2)"; }

# --- environment ------------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || cat build-deps/COMMIT 2>/dev/null || echo unknown)"
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
  echo "nvcc: $(nvcc --version 2>/dev/null | tail -n 1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -n 1)"
  echo "cxx: $(c++ --version 2>/dev/null | head -n 1)"
  echo "python: $(python3 --version 2>&1)"
} > "$LOGS/environment.log"
cat "$LOGS/environment.log" >> "$MAIN_LOG"

# --- build dependencies carried as .deb files (for an image without fmt, Catch2, OpenBLAS, zlib) --------
# When build-deps/ travelled, the build uses those packages (the versions of the development machine)
# rather than mixing them with whatever the image has.
DEPS_ARGS=()
EXTRA_LD=""   # library folders our binaries (and the linker) need beyond the system's
if ls build-deps/*.deb >/dev/null 2>&1; then
  DEPS=/tmp/dropnet-deps
  mkdir -p "$DEPS"
  for deb in build-deps/*.deb; do
    if command -v dpkg-deb >/dev/null 2>&1; then dpkg-deb -x "$deb" "$DEPS"
    else (tmp=$(mktemp -d) && cd "$tmp" && ar x "$ROOT/$deb" && tar -xf data.tar.* -C "$DEPS"; rm -rf "$tmp")
    fi
  done
  arch_lib=$DEPS/usr/lib/x86_64-linux-gnu
  DEPS_ARGS=(-DCMAKE_PREFIX_PATH="$DEPS/usr" -DCMAKE_LIBRARY_PATH="$arch_lib/openblas-pthread;$arch_lib"
             -DCBLAS_INCLUDE_DIR="$DEPS/usr/include/x86_64-linux-gnu/openblas-pthread")
  # libopenblas.so.0 itself needs libgfortran.so.5: the linker and the loader look here for it.
  EXTRA_LD=$arch_lib:$arch_lib/openblas-pthread
  say "deps: extracted $(ls build-deps/*.deb | wc -l) packages into $DEPS"
fi

# --- cuDNN: the system's, else the one of PyTorch's pip wheels (nvidia-cudnn-cu13) ---------------------
# The wheel has the headers and libcudnn.so.9 but no unversioned libcudnn.so; a folder of links gives
# FindCUDNN (cmake/FindCUDNN.cmake, through CUDNN_ROOT) the layout it looks for.
CUDNN_ARGS=()
system_cudnn=""
for header in /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h /usr/local/cuda/include/cudnn.h \
              ${CUDNN_ROOT:+"$CUDNN_ROOT/include/cudnn.h"}; do
  [ -f "$header" ] && system_cudnn=$header
done
if [ -z "$system_cudnn" ]; then
  wheel=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null)
  if [ -n "$wheel" ] && [ -f "$wheel/include/cudnn.h" ]; then
    shim=/tmp/dropnet-cudnn
    mkdir -p "$shim/lib"
    ln -sfn "$wheel/include" "$shim/include"
    for lib in "$wheel"/lib/libcudnn*.so*; do ln -sf "$lib" "$shim/lib/"; done
    ln -sf "$wheel/lib/libcudnn.so.9" "$shim/lib/libcudnn.so"
    CUDNN_ARGS=(-DCUDNN_ROOT="$shim" -DCUDNN_INCLUDE_DIR="$wheel/include" -DCUDNN_LIBRARY="$shim/lib/libcudnn.so")
    EXTRA_LD=$wheel/lib${EXTRA_LD:+:$EXTRA_LD}
    say "cudnn: no system cuDNN; using PyTorch's wheel in $wheel"
  else
    say "cudnn: none found on the system or in python3's packages; the configure stage will say so"
  fi
fi
# Prefix of every command that builds or runs our binaries. python3 (PyTorch) runs without it, so that
# the image's own libraries serve PyTorch.
RUN=(env)
[ -n "$EXTRA_LD" ] && RUN=(env "LD_LIBRARY_PATH=$EXTRA_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")

# --- dataset conversion, in the background while the build runs ----------------------------------------
DATA_DIR=$ROOT/.data/cifar-10-batches-bin
DATA_PID=""
if [ ! -f .data/make_cifar10_bin.py ] && [ -f "$ROOT/data/cifar-10-batches-bin/data_batch_1.bin" ]; then
  DATA_DIR=$ROOT/data/cifar-10-batches-bin   # data/download_cifar10.sh's official copy
fi
if [ -f "$DATA_DIR/data_batch_1.bin" ] && [ -f "$DATA_DIR/test_batch.bin" ]; then
  echo "already converted" > "$LOGS/data.log"
elif [ -f .data/make_cifar10_bin.py ]; then
  ( t0=$(date +%s)
    if timeout 240 python3 .data/make_cifar10_bin.py .data > "$LOGS/data.log" 2>&1; then
      if [ -f .data/MD5SUMS ]; then (cd "$DATA_DIR" && md5sum -c ../MD5SUMS) >> "$LOGS/data.log" 2>&1 \
        || echo "MD5 mismatch (see above)" >> "$LOGS/data.log"; fi
      printf 'data\tok\t%s\n' "$(($(date +%s) - t0))" >> "$STAGES"
    else
      printf 'data\tfailed\t%s\n' "$(($(date +%s) - t0))" >> "$STAGES"
    fi ) &
  DATA_PID=$!
else
  skip_stage data "no CIFAR-10: run data/download_cifar10.sh first for the training stage"
fi

# --- build ------------------------------------------------------------------------------------------
GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
[ -f "$BUILD/CMakeCache.txt" ] && GENERATOR=()   # an existing build keeps its generator
run_stage configure 120 "${RUN[@]}" cmake -S "$ROOT" -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${GPU_CHECK_ARCH:-90}" -DDROPNET_CUDA=ON -DDROPNET_BUILD_TESTS=ON -DDROPNET_BUILD_BENCHMARKS=ON \
  "${DEPS_ARGS[@]}" "${CUDNN_ARGS[@]}"
if grep -q "CMAKE_GENERATOR:INTERNAL=Ninja" "$BUILD/CMakeCache.txt" 2>/dev/null; then KEEP_GOING=(-k 0); else KEEP_GOING=(-k); fi
run_stage build 300 "${RUN[@]}" cmake --build "$BUILD" -j "$JOBS" -- "${KEEP_GOING[@]}"

CUDA_TESTS=$BUILD/tests/cuda/dropnet_cuda_tests
DROPNET=$BUILD/dropnet
BENCH=$BUILD/dropnet-bench

# --- tests ------------------------------------------------------------------------------------------
if [ -x "$CUDA_TESTS" ]; then
  run_stage cuda_tests 150 "${RUN[@]}" "$CUDA_TESTS" --durations yes
else
  skip_stage cuda_tests "not built"
fi
if [ -f "$BUILD/CTestTestfile.cmake" ]; then
  # The CUDA suite ran above (with Catch2's counts); ctest runs everything else, the same way CI does.
  run_stage ctest 150 "${RUN[@]}" OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 ctest --test-dir "$BUILD" \
    --output-on-failure --timeout 140 -j 8 -E '^dropnet_cuda_tests$' --output-junit "$LOGS/ctest.xml"
else
  skip_stage ctest "no build"
fi

# --- training ---------------------------------------------------------------------------------------
if [ -n "$DATA_PID" ]; then
  say "data: waiting for the conversion"
  wait "$DATA_PID"
fi
if [ -x "$DROPNET" ] && [ -f "$DATA_DIR/data_batch_1.bin" ]; then
  run_stage train 150 "${RUN[@]}" "$DROPNET" train --device cuda --epochs 3 --data "$DATA_DIR" --verbose 2
else
  skip_stage train "no dropnet binary or no converted data"
fi

# --- benchmarks -------------------------------------------------------------------------------------
if [ -x "$BENCH" ]; then
  run_stage bench_kernels 60 "${RUN[@]}" "$BENCH" kernels --device cuda
  run_stage bench_throughput 60 "${RUN[@]}" "$BENCH" throughput --device cuda
  run_stage bench_throughput_eager 40 "${RUN[@]}" "$BENCH" throughput --device cuda --cuda-graphs off --profile 0
  # How many runs an H100 wants side by side (sweep --concurrent N): each measures 1 model, then N at once.
  for n in 2 4 8; do
    run_stage "bench_throughput_runs$n" 40 "${RUN[@]}" "$BENCH" throughput --device cuda --runs "$n" --steps 30
  done
else
  skip_stage bench_kernels "no dropnet-bench"
  skip_stage bench_throughput "no dropnet-bench"
  skip_stage bench_throughput_eager "no dropnet-bench"
  for n in 2 4 8; do skip_stage "bench_throughput_runs$n" "no dropnet-bench"; done
fi
if [ -x "$CUDA_TESTS" ]; then
  run_stage memory_probe 60 "${RUN[@]}" "$CUDA_TESTS" "[probe]"
else
  skip_stage memory_probe "no CUDA test binary"
fi
TORCH_DATA=()
[ -f "$DATA_DIR/data_batch_1.bin" ] && TORCH_DATA=(--data "$DATA_DIR")
run_stage torch_reference 90 python3 "$ROOT/benchmarks/reference/torch_seed_model.py" "${TORCH_DATA[@]}" \
  --json "$OUT/torch-reference.json"

# --- compute-sanitizer (bounded; the model test is left out: minutes under instrumentation) ------------
if [ -x "$CUDA_TESTS" ] && command -v compute-sanitizer >/dev/null 2>&1; then
  run_stage memcheck 90 "${RUN[@]}" compute-sanitizer --tool memcheck --error-exitcode 3 --print-limit 20 \
    "$CUDA_TESTS" "~[model]~[conv]~[.]"
  run_stage racecheck 60 "${RUN[@]}" compute-sanitizer --tool racecheck --error-exitcode 3 --print-limit 20 \
    "$CUDA_TESTS" "[maxnorm],[loss],[activation],[dropout],[gather],[step]"
  run_stage memcheck_conv 60 "${RUN[@]}" compute-sanitizer --tool memcheck --error-exitcode 3 --print-limit 20 \
    "$CUDA_TESTS" "[conv]"
else
  skip_stage memcheck "no CUDA test binary or no compute-sanitizer"
  skip_stage racecheck "no CUDA test binary or no compute-sanitizer"
fi

# --- summary ----------------------------------------------------------------------------------------
say "summary: writing $OUT/summary.md and $OUT/summary.json"
python3 - "$LOGS" "$OUT" "$(($(date +%s) - START))" <<'PY' || echo "summary failed" >> "$MAIN_LOG"
import json, os, re, sys
import xml.etree.ElementTree as ET

logs, out, total = sys.argv[1], sys.argv[2], int(sys.argv[3])

def read(name):
    try:
        with open(os.path.join(logs, name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""

def num(pattern, text, group=1, cast=float):
    m = re.search(pattern, text, re.M)
    return cast(m.group(group)) if m else None

env = dict(line.split(": ", 1) for line in read("environment.log").splitlines() if ": " in line)
stages = []
for line in read("stages.tsv").splitlines():
    parts = line.split("\t")
    if len(parts) == 3:
        stages.append({"stage": parts[0], "status": parts[1], "seconds": int(parts[2])})

# CUDA suite: Catch2's console totals.
cuda_log = read("cuda_tests.log")
cuda = {"device": num(r"^dropnet_cuda_tests on (.+)$", cuda_log, cast=str)}
m = re.search(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)", cuda_log)
if m:
    cuda.update(test_cases=int(m.group(2)), passed=int(m.group(2)), failed=0, assertions=int(m.group(1)))
m = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", cuda_log)
if m:
    cuda.update(test_cases=int(m.group(1)), passed=int(m.group(2)), failed=int(m.group(3)))
if "skipped" in cuda_log and "no CUDA device" in cuda_log:
    cuda["skipped"] = True

# ctest: its JUnit file.
ctest = {}
try:
    root = ET.parse(os.path.join(logs, "ctest.xml")).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    ctest = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "disabled", "skipped")}
    ctest["failed_tests"] = [c.get("name") for c in suite.iter("testcase")
                             if c.find("failure") is not None][:20]
except Exception:
    t = read("ctest.log")
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", t)
    if m:
        ctest = {"tests": int(m.group(3)), "failures": int(m.group(2))}

# Training.
train_log = read("train.log")
train = {
    "epochs": num(r"^Trained (\d+) epochs?", train_log, cast=int),
    "seconds": num(r"^Trained \d+ epochs? in ([\d.]+) s", train_log),
    "train_records": num(r"\((\d+) for training", train_log, cast=int),
    "test_loss": num(r"^Test loss: ([\d.]+)", train_log),
    "test_accuracy": num(r"test accuracy: ([\d.]+)", train_log),
    "training_step": (re.search(r"^Training step: (.*)$", train_log, re.M) or [None, None])[1],
}
epoch_lines = re.findall(r"^(\d+)/\d+ - \S+ - (\d+)(ms|us|s)/step(.*)$", train_log, re.M)
if epoch_lines:
    steps, per, unit, rest = epoch_lines[-1]
    per_s = float(per) * {"ms": 1e-3, "us": 1e-6, "s": 1.0}[unit]
    train["last_epoch_step_ms"] = per_s * 1e3
    train["last_epoch_seconds"] = per_s * int(steps)
    va = re.search(r"val_accuracy: ([\d.]+)", rest)
    train["last_val_accuracy"] = float(va.group(1)) if va else None
if train["seconds"] and train["epochs"]:
    train["mean_epoch_seconds"] = train["seconds"] / train["epochs"]
    if train["train_records"]:
        train["images_per_second_overall"] = train["train_records"] * train["epochs"] / train["seconds"]
if train.get("last_epoch_seconds") and train["train_records"]:
    train["images_per_second_last_epoch"] = train["train_records"] / train["last_epoch_seconds"]

# dropnet-bench kernels: | op | ms | MiB | GB/s | ratio |
kern = {}
for row in re.findall(r"^\| ([^|]+?) \| ([\d.]+) \| [^|]+ \| ([\d.]+) \| ([\d.]+) \|$", read("bench_kernels.log"), re.M):
    kern[row[0]] = {"ms": float(row[1]), "gbs": float(row[2]), "ratio_to_copy": float(row[3])}
throughput = {"images_per_second": num(r"= ([\d.]+) images/s", read("bench_throughput.log")),
              "step_ms": num(r"median step ([\d.]+) ms", read("bench_throughput.log")),
              "training_step": (re.search(r"^training step: (.*)$", read("bench_throughput.log"), re.M) or [None, None])[1],
              "eager_images_per_second": num(r"= ([\d.]+) images/s", read("bench_throughput_eager.log")),
              "eager_step_ms": num(r"median step ([\d.]+) ms", read("bench_throughput_eager.log"))}
# throughput --runs N: "1 model: X images/s", "N models at once ...: Y images/s in total", "gain: R x".
concurrent = {}
for n in (2, 4, 8):
    log = read(f"bench_throughput_runs{n}.log")
    concurrent[str(n)] = {"images_per_second": num(r"models at once[^:]*: ([\d.]+) images/s in total", log),
                          "one_model_images_per_second": num(r"^  1 model[^:]*: ([\d.]+) images/s", log),
                          "gain": num(r"gain: ([\d.]+) x", log)}
probe = {}
m = re.search(r"^DROPNET_PROBE (\{.*\})$", read("memory_probe.log"), re.M)
if m:
    probe = json.loads(m.group(1))
torch_ref = {}
try:
    with open(os.path.join(out, "torch-reference.json")) as f:
        torch_ref = json.load(f)
except Exception:
    pass

ratios = {}
tt = torch_ref.get("training", {})
if throughput.get("images_per_second") and tt.get("images_per_second"):
    ratios["throughput_vs_torch"] = throughput["images_per_second"] / tt["images_per_second"]
if probe.get("peak_bytes") and tt.get("max_memory_allocated_bytes"):
    ratios["peak_memory_vs_torch"] = probe["peak_bytes"] / tt["max_memory_allocated_bytes"]
td = torch_ref.get("dropout", {})
for key, name in (("dropout_forward", "dropout forward (rate 0.5)"), ("dropout_backward", "dropout backward (rate 0.5)")):
    if name in kern:
        ratios[key + "_vs_copy"] = kern[name]["ratio_to_copy"]
        if td.get(key + "_gbs"):
            ratios[key + "_vs_torch"] = kern[name]["gbs"] / td[key + "_gbs"]

summary = {"device": env.get("gpu"), "commit": env.get("commit"), "date": env.get("date"),
           "toolchain": {k: env.get(k) for k in ("nvcc", "cmake", "cxx", "python")},
           "total_seconds": total, "stages": stages, "cuda_tests": cuda, "ctest": ctest, "train": train,
           "bench_kernels": kern, "bench_throughput": throughput, "concurrent_runs": concurrent, "memory_probe": probe,
           "torch_reference": torch_ref, "ratios": ratios}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)

def fmt(v, spec="{:.3g}"):
    return "n/a" if v is None else (spec.format(v) if isinstance(v, (int, float)) else str(v))

md = [f"# dropnet GPU check", "",
      f"- device: {fmt(env.get('gpu'))}", f"- commit: {fmt(env.get('commit'))}", f"- date: {fmt(env.get('date'))}",
      f"- toolchain: {env.get('nvcc', 'n/a')}; {env.get('cmake', 'n/a')}", f"- total: {total} s", "",
      "| stage | status | seconds |", "|---|---|---:|"]
md += [f"| {s['stage']} | {s['status']} | {s['seconds']} |" for s in stages]
md += ["", "## Tests", "",
       f"- CUDA suite: {fmt(cuda.get('passed'))} of {fmt(cuda.get('test_cases'))} test cases passed, "
       f"{fmt(cuda.get('failed'))} failed",
       f"- ctest (CPU suite and the rest): {fmt(ctest.get('tests'))} tests, {fmt(ctest.get('failures'))} failed, "
       f"{fmt(ctest.get('skipped'))} skipped"]
if ctest.get("failed_tests"):
    md.append(f"- failed: {', '.join(ctest['failed_tests'])}")
md += ["", "## Training: dropnet train --device cuda --epochs 3", "",
       f"- mean epoch time: {fmt(train.get('mean_epoch_seconds'))} s (first epoch includes cuDNN's algorithm search); "
       f"last epoch {fmt(train.get('last_epoch_seconds'))} s",
       f"- images/s: {fmt(train.get('images_per_second_last_epoch'), '{:.0f}')} (last epoch), "
       f"{fmt(train.get('images_per_second_overall'), '{:.0f}')} (whole run)",
       f"- test accuracy after {fmt(train.get('epochs'))} epochs: {fmt(train.get('test_accuracy'), '{:.4f}')} "
       f"(validation {fmt(train.get('last_val_accuracy'), '{:.4f}')})",
       f"- training step: {train.get('training_step') or 'n/a'}", "",
       "## Benchmarks (same GPU, same run)", "",
       "| figure | dropnet | PyTorch eager | ratio | target |", "|---|---:|---:|---:|---|",
       f"| seed model images/s (batch 250, fp32) | {fmt(throughput.get('images_per_second'), '{:.0f}')} | "
       f"{fmt(tt.get('images_per_second'), '{:.0f}')} | {fmt(ratios.get('throughput_vs_torch'), '{:.2f}')} | >= 2 |",
       f"| the same, every op launched (--cuda-graphs off) | {fmt(throughput.get('eager_images_per_second'), '{:.0f}')} | "
       f"| | |",
       f"| peak GPU memory of a step (MiB) | {fmt(probe.get('peak_bytes') and probe['peak_bytes'] / 2**20, '{:.1f}')} | "
       f"{fmt(tt.get('max_memory_allocated_bytes') and tt['max_memory_allocated_bytes'] / 2**20, '{:.1f}')} | "
       f"{fmt(ratios.get('peak_memory_vs_torch'), '{:.2f}')} | <= 0.7 |"]
for key, name in (("dropout_forward", "dropout forward (rate 0.5)"), ("dropout_backward", "dropout backward (rate 0.5)")):
    md.append(f"| {key.replace('_', ' ')} GB/s | {fmt(kern.get(name, {}).get('gbs'), '{:.0f}')} | "
              f"{fmt(td.get(key + '_gbs'), '{:.0f}')} | {fmt(ratios.get(key + '_vs_torch'), '{:.2f}')} | > 1 |")
    md.append(f"| {key.replace('_', ' ')} / device copy | {fmt(ratios.get(key + '_vs_copy'), '{:.2f}')} | | | >= 0.85 |")
md += ["", "## Runs side by side (throughput --runs N: N seed models at once, each its own stream and CUDA graph)", "",
       "| runs | total images/s | one model alone, same run | gain |", "|---:|---:|---:|---:|"]
for n in ("2", "4", "8"):
    c = concurrent.get(n, {})
    md.append(f"| {n} | {fmt(c.get('images_per_second'), '{:.0f}')} | {fmt(c.get('one_model_images_per_second'), '{:.0f}')} "
              f"| {fmt(c.get('gain'), '{:.2f}')} |")
md += ["", "The N with the largest gain is what `dropnet-bench sweep --concurrent N` should use on this GPU "
       "(docs/scaling.md).", ""]
copy = kern.get("copy (device to device)", {})
md += [f"| device-to-device copy GB/s | {fmt(copy.get('gbs'), '{:.0f}')} | {fmt(td.get('copy_gbs'), '{:.0f}')} | | |",
       "", f"dropnet's throughput is fit's training step ({throughput.get('training_step') or 'n/a'}). "
       "GB/s count bytes read + bytes written. Logs: gpu-check.log; raw figures: summary.json."]
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
PY
exit 0
