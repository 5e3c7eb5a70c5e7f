#!/usr/bin/env bash
# test_install.sh: libdropnet as other programs use it. Installs a built tree into a temporary prefix,
# checks what was installed, then builds examples/train_seed_model.cpp against that prefix twice (through
# find_package(dropnet CONFIG) and through pkg-config), runs both briefly on the bundled CIFAR-10 sample,
# builds and runs the programs of tests/install/programs/ (one-layer models, a layer called on a tensor),
# and checks the exported symbols (check_exports.sh) and the public headers (check_headers.sh).
#
#   bash tests/install/test_install.sh BUILD_DIR SOURCE_DIR [EPOCHS]     (EPOCHS of the example: 1)
#
# BUILD_DIR must be fully built (cmake --install installs every program). Registered in CTest as
#   add_test(NAME install COMMAND bash ${PROJECT_SOURCE_DIR}/tests/install/test_install.sh
#            ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
# KEEP_INSTALL_TEST_DIR=1 keeps the temporary directory for a look after a failure.
set -uo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR [EPOCHS]" >&2
  exit 2
fi
BUILD=$(realpath "$1")
SRC=$(realpath "$2")
EPOCHS=${3:-1}
HERE=$SRC/tests/install
SAMPLE=$SRC/data/cifar10-sample
[[ -f $BUILD/CMakeCache.txt ]] || { echo "not a CMake build directory: $BUILD" >&2; exit 2; }
[[ -d $SAMPLE ]] || { echo "bundled sample not found: $SAMPLE" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dropnet-install-test.XXXXXX")
if [[ ${KEEP_INSTALL_TEST_DIR:-0} == 1 ]]; then
  echo "keeping $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi
PREFIX=$WORK/prefix
LOG=$WORK/log
failures=0
fail() {
  echo "FAIL: $*"
  [[ -s $LOG ]] && tail -n 30 "$LOG" | sed 's/^/    /'
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }
# die: a failure after which nothing else can be checked.
die() { fail "$@"; echo "install test: stopped after a failure"; exit 1; }

cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
# loads_installed_lib EXE: true when the dynamic loader resolves EXE's libdropnet.so.N into LIBDIR.
loads_installed_lib() {
  local path
  path=$(ldd "$1" 2>/dev/null | sed -nE 's/^[[:space:]]*libdropnet\.so[^ ]* => ([^ ]+) .*/\1/p' | head -n 1)
  [[ -n $path && $(realpath "$(dirname "$path")") == "$(realpath "$LIBDIR")" ]]
}
CXX_COMPILER=$(cache CMAKE_CXX_COMPILER)
BUILD_TYPE=$(cache CMAKE_BUILD_TYPE)
export CXX=${CXX_COMPILER:-${CXX:-g++}}
JOBS=2

# --- install --------------------------------------------------------------------------------------------
cmake --install "$BUILD" --prefix "$PREFIX" ${BUILD_TYPE:+--config "$BUILD_TYPE"} >"$LOG" 2>&1 ||
  die "cmake --install $BUILD --prefix $PREFIX"
pass "cmake --install --prefix $PREFIX"

PC=$(find "$PREFIX" -name dropnet.pc -path '*/pkgconfig/*' | head -n 1)
[[ -n $PC ]] || die "no dropnet.pc installed"
LIBDIR=$(dirname "$(dirname "$PC")")
CONFIG=$(find "$PREFIX" -name dropnetConfig.cmake | head -n 1)
[[ -n $CONFIG ]] || die "no dropnetConfig.cmake installed"

: >"$LOG"
# The library, its SONAME link and the development link.
real=$(find "$LIBDIR" -maxdepth 1 -type f -name 'libdropnet.so.*.*.*' | head -n 1)
if [[ -n $real && -L $LIBDIR/libdropnet.so && -e $LIBDIR/libdropnet.so ]] &&
   soname=$(readelf -d "$real" | sed -nE 's/.*\(SONAME\).*\[(.*)\]/\1/p') &&
   [[ -n $soname && -L $LIBDIR/$soname && $(readlink -f "$LIBDIR/$soname") == "$(readlink -f "$real")" ]]; then
  pass "$(basename "$real") with links $soname and libdropnet.so"
else
  ls -l "$LIBDIR" >"$LOG" 2>&1; fail "libdropnet.so.X.Y.Z with its SONAME link and libdropnet.so in $LIBDIR"
fi
# Installed files must not point back into the build tree.
if readelf -d "$real" | grep -E 'R(UN)?PATH' | grep -qF "$BUILD"; then
  readelf -d "$real" >"$LOG"; fail "libdropnet.so keeps a RUNPATH into the build tree"
else
  pass "libdropnet.so has no RUNPATH into the build tree"
fi

# DT_NEEDED: only what the library calls (docs/library.md, "Runtime dependencies"): the C and C++
# runtimes, OpenBLAS, zlib and, in a CUDA build, the CUDA runtime, cuBLAS and cuDNN (libdl for NVTX's
# loader where glibc still has a separate one; the dynamic loader for thread_local). fmt is compiled in;
# cuRAND is not called.
needed=$(readelf -d "$real" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p' | sort | tr '\n' ' ')
unexpected=$(for n in $needed; do
  [[ $n =~ ^(libc|libm|libstdc\+\+|libgcc_s|libopenblas|libblas|libz|libcudart|libcublas|libcublasLt|libcudnn|libdl|libpthread|librt|ld-linux[-a-z0-9_]*)\.so ]] || echo "$n"
done)
if [[ -z $unexpected ]]; then
  pass "libdropnet.so needs only: $needed"
else
  echo "$needed" >"$LOG"; fail "libdropnet.so needs $(echo $unexpected) (not a documented runtime dependency)"
fi

# Exactly the public headers: include/dropnet/*.hpp plus the generated export.hpp and version.hpp.
expected=$( (cd "$SRC/include" && ls dropnet/*.hpp; echo dropnet/export.hpp; echo dropnet/version.hpp) | sort -u)
installed=$( (cd "$PREFIX/include" && find . -type f | sed 's|^\./||') | sort)
if [[ $expected == "$installed" ]]; then
  pass "headers: $(echo "$installed" | wc -l) public headers under include/dropnet/, nothing else"
else
  diff <(echo "$expected") <(echo "$installed") >"$LOG"; fail "installed headers differ from the public ones (< expected, > installed)"
fi

# The programs, and the version macro.
version=$(sed -nE 's/^#define DROPNET_VERSION_STRING "(.*)"/\1/p' "$PREFIX/include/dropnet/version.hpp")
project_version=$(cache CMAKE_PROJECT_VERSION)
[[ -n $version && ( -z $project_version || $version == "$project_version" ) ]] ||
  fail "version.hpp says '$version', the project '$project_version'"
if [[ -x $PREFIX/bin/dropnet ]] && "$PREFIX/bin/dropnet" --version >"$LOG" 2>&1 && grep -q "^dropnet $version" "$LOG" &&
   loads_installed_lib "$PREFIX/bin/dropnet"; then
  pass "bin/dropnet --version: $(head -n 1 "$LOG"), loads $LIBDIR/libdropnet.so"
else
  ldd "$PREFIX/bin/dropnet" >>"$LOG" 2>&1; fail "bin/dropnet --version printing 'dropnet $version' with libdropnet from $LIBDIR"
fi
if [[ $(cache DROPNET_BUILD_BENCHMARKS) =~ ^(ON|1|TRUE|YES|on|true)$ ]]; then
  if [[ -x $PREFIX/bin/dropnet-bench ]]; then pass "bin/dropnet-bench"; else fail "bin/dropnet-bench not installed"; fi
fi

# pkg-config metadata.
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
if command -v pkg-config >/dev/null; then
  pc_version=$(pkg-config --modversion dropnet 2>"$LOG")
  pc_flags=$(pkg-config --cflags --libs dropnet 2>>"$LOG")
  if [[ $pc_version == "$version" && $pc_flags == *"-I$PREFIX/include"* && $pc_flags == *"-L$LIBDIR"* &&
        ! $pc_flags =~ (cuda|cudnn|cublas|fmt|blas|-lz) ]]; then
    pass "pkg-config dropnet: $pc_version, $pc_flags"
  else
    fail "pkg-config dropnet gave version '$pc_version' and flags '$pc_flags'"
  fi
else
  fail "pkg-config not found"
fi

# --- the example through find_package -----------------------------------------------------------------
# run_example NAME EXE: runs the example on the sample; checks that it loads the installed library and
# prints a test accuracy in [0, 1].
run_example() {
  local name=$1 exe=$2 acc
  if ! loads_installed_lib "$exe"; then
    ldd "$exe" >"$LOG" 2>&1; fail "$name: does not load libdropnet from $LIBDIR"; return
  fi
  if ! (cd "$WORK" && "$exe" "$SAMPLE" "$EPOCHS") >"$LOG" 2>&1; then
    fail "$name: $(basename "$exe") $SAMPLE $EPOCHS exited with an error"; return
  fi
  acc=$(sed -nE 's/^test accuracy: ([0-9]+(\.[0-9]+)?)$/\1/p' "$LOG")
  if [[ -n $acc ]] && awk -v a="$acc" 'BEGIN { exit !(a >= 0 && a <= 1) }'; then
    pass "$name: $(sed -n 1p "$LOG" | cut -c1-100); test accuracy $acc"
  else
    fail "$name: no 'test accuracy: <0..1>' line in the output"
  fi
}

: >"$LOG"
if cmake -S "$SRC/examples" -B "$WORK/example-cmake" -DCMAKE_PREFIX_PATH="$PREFIX" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$LOG" 2>&1 &&
   cmake --build "$WORK/example-cmake" -j "$JOBS" >>"$LOG" 2>&1; then
  found=$(sed -n 's/^dropnet_DIR:PATH=//p' "$WORK/example-cmake/CMakeCache.txt")
  if [[ $(realpath "$found") != "$(realpath "$(dirname "$CONFIG")")" ]]; then
    fail "find_package found dropnet in '$found', not in the prefix"
  fi
  # The consumer compiles and links against libdropnet only: the library's private dependencies are
  # not its link requirements.
  link=$(cat "$WORK"/example-cmake/CMakeFiles/train_seed_model.dir/link.txt)
  flags=$(cat "$WORK"/example-cmake/CMakeFiles/train_seed_model.dir/flags.make)
  if [[ $link =~ (libfmt|-lfmt|cudart|cudnn|cublas|curand|openblas|libz\.) || $flags =~ (cuda|cudnn|fmt) ]]; then
    fail "the consumer inherits private dependencies of libdropnet: $link $flags"
  else
    pass "find_package(dropnet CONFIG): built, linking dropnet::dropnet only"
  fi
  run_example "find_package build" "$WORK/example-cmake/train_seed_model"
  # The second example: BatchNormalization, GlobalAveragePooling2D, sparse labels, Monte Carlo dropout.
  run_example "find_package build of train_small_vgg" "$WORK/example-cmake/train_small_vgg"
  if grep -q 'global_average_pooling2d (GlobalAveragePooling2D)' "$LOG" && grep -q 'batch_normalization_3 (BatchNormalization)' "$LOG" &&
     grep -qE '^Monte Carlo dropout accuracy \(10 passes\): (0|1)\.[0-9]{4}$' "$LOG" &&
     grep -qE ' accuracy: (0|1)\.[0-9]+' "$LOG"; then
    pass "train_small_vgg: BatchNormalization and GlobalAveragePooling2D layers, sparse labels, Monte Carlo dropout"
  else
    fail "train_small_vgg: its summary, metric or Monte Carlo lines are missing: $(tail -5 "$LOG" | tr '\n' ' ')"
  fi
  # A dropnet exception thrown in the library is caught by type in the program.
  if "$WORK/example-cmake/train_seed_model" "$WORK/no-such-data" 1 >"$LOG" 2>&1; then
    fail "train_seed_model with a missing data directory exited 0"
  elif grep -q '^train_seed_model: error: .*no-such-data' "$LOG"; then
    pass "a dropnet::IoError thrown in libdropnet is caught as dropnet::Error in the program"
  else
    fail "train_seed_model with a missing data directory: no 'train_seed_model: error: ...' line"
  fi
else
  fail "configure and build examples/ with CMAKE_PREFIX_PATH=$PREFIX"
fi

# --- the example through pkg-config -------------------------------------------------------------------
: >"$LOG"
mkdir -p "$WORK/example-pkgconfig"
PKG_EXE=$WORK/example-pkgconfig/train_seed_model
if command -v make >/dev/null; then
  make -C "$SRC/examples" -f Makefile.pkgconfig OUT="$PKG_EXE" CXX="$CXX" >"$LOG" 2>&1
else  # the documented one-liner (pkg-config's output is split into flags on purpose)
  # shellcheck disable=SC2046
  (cd "$SRC/examples" && "$CXX" -std=c++20 -O2 train_seed_model.cpp $(pkg-config --cflags --libs dropnet) \
     -Wl,-rpath,"$(pkg-config --variable=libdir dropnet)" -o "$PKG_EXE") >"$LOG" 2>&1
fi
if [[ -x $PKG_EXE ]]; then
  pass "pkg-config build: $(grep -m1 -- '-std=c++20' "$LOG" | cut -c1-160)"
  run_example "pkg-config build" "$PKG_EXE"
else
  fail "build examples/train_seed_model.cpp with pkg-config"
fi

# --- programs that use the layers on their own (tests/install/programs/) --------------------------------
# one_layer_models: each dropout-family layer as a Sequential of its own, compiled without a loss, through
# predict and Monte Carlo predict; call_layer: a layer called directly on a tensor. Each checks its own
# statistics and prints them; here every expected line must be there.
# run_program NAME: runs it in $WORK, its output in $LOG; fails (and returns 1) unless it exits 0 having
# loaded the installed library.
run_program() {
  local exe=$WORK/programs/$1
  if ! loads_installed_lib "$exe"; then
    ldd "$exe" >"$LOG" 2>&1; fail "$1: does not load libdropnet from $LIBDIR"; return 1
  fi
  (cd "$WORK" && "$exe") >"$LOG" 2>&1 || { fail "$1 exited with an error"; return 1; }
}
: >"$LOG"
if cmake -S "$HERE/programs" -B "$WORK/programs" -DCMAKE_PREFIX_PATH="$PREFIX" \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$LOG" 2>&1 &&
   cmake --build "$WORK/programs" -j "$JOBS" >>"$LOG" 2>&1; then
  pass "tests/install/programs: one_layer_models and call_layer built through find_package"
  if run_program one_layer_models; then
    missing=""
    for layer in 'Dropout(0.5)' 'SpatialDropout1D(0.5)' 'SpatialDropout2D(0.5)' 'SpatialDropout3D(0.5)' \
                 'GaussianDropout(0.5)' 'GaussianNoise(0.3)' 'AlphaDropout(0.2)' 'DropBlock2D(0.2, 3)'; do
      grep -qF -- "$layer on (" "$LOG" && grep -F -- "$layer on (" "$LOG" | grep -q ': ok$' || missing+=" $layer"
    done
    if [[ -z $missing ]] && grep -qx 'one_layer_models: 8 layers, 0 failed' "$LOG"; then
      pass "one_layer_models: 8 one-layer models compiled without a loss, predict and Monte Carlo predict as expected"
    else
      fail "one_layer_models: no ': ok' line for:${missing:- (the summary line is missing)}"
    fi
  fi
  if run_program call_layer; then
    # Three training calls, each dropping 0.3 of 100000 elements within 0.01, the kept ones all 1/0.7.
    drops=$(sed -nE 's/^training call [0-2]: dropped ([0-9.]+), kept values all 1\.428571: ok$/\1/p' "$LOG")
    if [[ $(echo "$drops" | wc -w) == 3 ]] &&
       awk -v d="$drops" 'BEGIN { n = split(d, a); for (i = 1; i <= n; i++) if (a[i] < 0.29 || a[i] > 0.31) exit 1 }' &&
       grep -qx 'inference call: identity' "$LOG" && grep -qE '^cuda: (the same masks as the cpu|not available)$' "$LOG" &&
       grep -qx 'Dense(4) on (2, 3): (2, 4), 16 parameters: ok' "$LOG" && grep -qx 'call_layer: 0 failed' "$LOG"; then
      pass "call_layer: Dropout(0.3) called on a tensor dropped $(echo $drops) in three calls; $(grep '^cuda:' "$LOG")"
    else
      fail "call_layer: its output lacks the expected lines"
    fi
  fi
else
  fail "configure and build tests/install/programs with CMAKE_PREFIX_PATH=$PREFIX"
fi

# --- the installed tree -------------------------------------------------------------------------------
if bash "$HERE/check_exports.sh" "$LIBDIR/libdropnet.so" >"$LOG" 2>&1; then
  pass "$(tail -n 1 "$LOG")"
else
  fail "check_exports.sh $LIBDIR/libdropnet.so"
fi
if bash "$HERE/check_headers.sh" "$PREFIX" >"$LOG" 2>&1; then
  pass "$(tail -n 1 "$LOG")"
else
  fail "check_headers.sh $PREFIX"
fi

if ((failures)); then
  echo "install test: $failures failure(s)"
  exit 1
fi
echo "install test: all checks passed"
