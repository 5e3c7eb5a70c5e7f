#!/usr/bin/env bash
# test_cli.sh: checks the dropnet program's contract: help, version, one-line errors with the right exit
# codes, and a tiny training run on the bundled sample.
#
#   bash tests/cli/test_cli.sh BUILD/dropnet SOURCE_DIR
#
# Registered in CTest as:
#   add_test(NAME cli COMMAND bash ${PROJECT_SOURCE_DIR}/tests/cli/test_cli.sh
#            $<TARGET_FILE:dropnet_cli> ${PROJECT_SOURCE_DIR})
set -u

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PATH/TO/dropnet SOURCE_DIR" >&2
  exit 2
fi
[[ -x $1 && -f $1 ]] || { echo "not an executable: $1" >&2; exit 2; }
DROPNET=$(realpath "$1")   # absolute: one check runs from another directory
SRC=$(realpath "$2")
SAMPLE=$SRC/data/cifar10-sample
[[ -d $SAMPLE ]] || { echo "bundled sample not found: $SAMPLE" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() {
  echo "FAIL: $*"
  echo "  stdout (last lines):"; tail -n 5 "$WORK/out" | sed 's/^/    /'
  echo "  stderr:"; sed 's/^/    /' "$WORK/err"
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

# run ARGS...: runs dropnet with stdout and stderr captured; sets $rc.
run() {
  "$DROPNET" "$@" >"$WORK/out" 2>"$WORK/err"
  rc=$?
}

# expect_error NAME CODE PATTERN ARGS...: exit code CODE (or any non-zero when CODE is "nonzero"),
# nothing on stdout but maybe progress, exactly one stderr line starting "dropnet: error: " and matching
# the extended regex PATTERN.
expect_error() {
  local name=$1 code=$2 pattern=$3
  shift 3
  run "$@"
  local lines
  lines=$(wc -l <"$WORK/err")
  if [[ $code == nonzero && $rc -eq 0 ]] || [[ $code != nonzero && $rc -ne $code ]]; then
    fail "$name: exit code $rc, expected $code"
  elif [[ $lines -ne 1 ]]; then
    fail "$name: $lines stderr lines, expected exactly 1"
  elif ! grep -qE "^dropnet: error: " "$WORK/err"; then
    fail "$name: stderr does not start with 'dropnet: error: '"
  elif ! grep -qiE -e "$pattern" "$WORK/err"; then
    fail "$name: stderr does not match /$pattern/"
  else
    pass "$name (exit $rc): $(cat "$WORK/err")"
  fi
}

# --- help and version ----------------------------------------------------------------------------------
FLAGS="--epochs --batch-size --dropout --max-norm --validation-split --learning-rate --seed --data --limit
       --test-limit --device --verbose --save --resume --log --batch-norm"
for args in "--help" "train --help" "help train"; do
  # shellcheck disable=SC2086
  run $args
  if [[ $rc -ne 0 ]]; then
    fail "dropnet $args: exit code $rc, expected 0"
    continue
  fi
  missing=""
  for flag in $FLAGS; do grep -qe "$flag " "$WORK/out" || missing="$missing $flag"; done
  grep -q "Exit codes" "$WORK/out" || missing="$missing (exit codes)"
  if [[ -n $missing ]]; then fail "dropnet $args does not mention:$missing"; else pass "dropnet $args"; fi
done

run --version
if [[ $rc -eq 0 ]] && grep -qE "^dropnet [0-9]+\.[0-9]+\.[0-9]+" "$WORK/out"; then
  pass "--version: $(head -n 1 "$WORK/out")"
else
  fail "--version: exit $rc"
fi

run
if [[ $rc -eq 2 ]] && grep -q "Usage" "$WORK/err"; then pass "no arguments: usage, exit 2"; else fail "no arguments: exit $rc"; fi

# --- usage errors: one line, exit 2 ----------------------------------------------------------------------
expect_error "train --dropout 1.5" nonzero "rate|dropout" train --dropout 1.5
expect_error "unknown flag" 2 "unknown flag '--frobnicate'" train --frobnicate 3
expect_error "missing value" 2 "--epochs.*missing value" train --epochs
expect_error "non-numeric value" 2 "--batch-size abc" train --batch-size abc
expect_error "--epochs -1" 2 "--epochs -1" train --epochs -1
expect_error "--batch-size 0" 2 "--batch-size 0" train --batch-size 0
expect_error "partly numeric" 2 "--epochs 5x" train --epochs=5x
expect_error "unknown device" 2 "auto, cpu or cuda" train --device tpu
expect_error "unknown command" 2 "unknown command" frobnicate
expect_error "misspelt command" 2 "did you mean train\?" trian

# --- runtime errors: one line naming the file, exit 1 -----------------------------------------------------
cp -r "$SAMPLE" "$WORK/truncated"
truncate -s -5 "$WORK/truncated/data_batch_2.bin"
expect_error "truncated data file" 1 "data_batch_2\.bin" train --data "$WORK/truncated" --epochs 1 --device cpu
expect_error "missing data directory" 1 "$WORK/nonexistent" train --data "$WORK/nonexistent" --device cpu
if grep -q "Using CIFAR-10" "$WORK/out"; then fail "missing data directory: said 'Using CIFAR-10' first"
else pass "missing data directory: nothing on stdout before the error"; fi

# --- a tiny training run on the bundled sample -------------------------------------------------------------
run train --data "$SAMPLE" --epochs 1 --limit 100 --test-limit 50 --batch-size 50 --device cpu --verbose 2
if [[ $rc -ne 0 ]]; then
  fail "tiny training run: exit code $rc"
elif ! tail -n 1 "$WORK/out" | grep -qE "^Test loss: [0-9.]+ - test accuracy: [0-9.]+$"; then
  fail "tiny training run: last line is not 'Test loss: X - test accuracy: Y'"
elif ! grep -q "Epoch 1/1" "$WORK/out"; then
  fail "tiny training run: no per-epoch progress"
else
  pass "tiny training run: $(tail -n 1 "$WORK/out")"
fi

# The same run without --data, from another directory: finds data/ through the source tree.
(cd "$WORK" && "$DROPNET" train --epochs 1 --limit 100 --test-limit 50 --batch-size 50 --device cpu \
   --verbose 0 >"$WORK/out" 2>"$WORK/err")
rc=$?
if [[ $rc -eq 0 ]] && grep -q "Test loss" "$WORK/out" && grep -qE "^Using .*CIFAR-10" "$WORK/out"; then
  pass "default data lookup: $(head -n 1 "$WORK/out")"
else
  fail "default data lookup: exit $rc"
fi

# --- checkpoints: --save, --resume (exact), --log, Ctrl-C, evaluate, predict ---------------------------------
B="--data $SAMPLE --test-limit 40 --device cpu --verbose 0"   # plus --limit and --batch-size below
T="$B --limit 200 --batch-size 10"
run train $T --epochs 3 --save "$WORK/straight.safetensors"
[[ $rc -eq 0 && -f $WORK/straight.safetensors && -f $WORK/straight.best.safetensors ]] \
  && pass "train --save writes the last and best files" || fail "train --save: exit $rc or files missing"
run train $T --epochs 2 --save "$WORK/part.safetensors" --log "$WORK/run.csv"
run train --data "$SAMPLE" --test-limit 40 --device cpu --verbose 0 --epochs 3 --resume "$WORK/part.safetensors" \
  --save "$WORK/part.safetensors" --log "$WORK/run.csv"
if [[ $rc -eq 0 ]] && cmp -s "$WORK/straight.safetensors" "$WORK/part.safetensors"; then
  pass "2 epochs + resume to 3 is byte-identical to 3 epochs"
else
  fail "resume: exit $rc or the checkpoints differ"
fi
# The CPU backend splits its work into blocks that do not depend on the thread count, and sums partial
# gradients in block order: the same run on 1 or 3 threads gives the same bytes as on the default count.
for threads in 1 3; do
  DROPNET_CPU_THREADS=$threads run train $T --epochs 3 --save "$WORK/threads$threads.safetensors"
  if [[ $rc -eq 0 ]] && cmp -s "$WORK/straight.safetensors" "$WORK/threads$threads.safetensors"; then
    pass "DROPNET_CPU_THREADS=$threads trains to the same bytes as the default thread count"
  else
    fail "DROPNET_CPU_THREADS=$threads: exit $rc or the weights differ from the default thread count's"
  fi
done
# The CPU fuses each Conv2D(relu) > MaxPooling2D > Dropout into one pass (docs/design.md): the same bytes
# as the layers one by one.
DROPNET_CPU_FUSE=0 run train $T --epochs 3 --save "$WORK/unfused.safetensors"
if [[ $rc -eq 0 ]] && cmp -s "$WORK/straight.safetensors" "$WORK/unfused.safetensors"; then
  pass "DROPNET_CPU_FUSE=0 (layers one by one) trains to the same bytes as the fused blocks"
else
  fail "DROPNET_CPU_FUSE=0: exit $rc or the weights differ from the fused run's"
fi
# --batch-norm on, the BN variant (BatchNormalization after each Conv2D, issue 24): it trains, its
# BatchNormalization layers show in the summary, it gives the same bytes on 1 and 3 threads (the per-channel
# sums are never split over the threads) and with fusion off (no block fuses in it), and it resumes exactly
# (the moving statistics are in the checkpoint); a resume without it is refused.
run train $T --epochs 2 --batch-norm on --save "$WORK/bn.safetensors"
if [[ $rc -eq 0 ]] && grep -q "batch_normalization_1 (BatchNormalization)" "$WORK/out" &&
   grep -q "Non-trainable params: 256" "$WORK/out"; then
  pass "--batch-norm on trains; the summary shows both BatchNormalization layers and their 256 moving statistics"
else
  fail "--batch-norm on: exit $rc or no BatchNormalization in the summary"
fi
for threads in 1 3; do
  DROPNET_CPU_THREADS=$threads run train $T --epochs 2 --batch-norm on --save "$WORK/bn$threads.safetensors"
  if [[ $rc -eq 0 ]] && cmp -s "$WORK/bn.safetensors" "$WORK/bn$threads.safetensors"; then
    pass "--batch-norm on, DROPNET_CPU_THREADS=$threads: the same bytes as the default thread count"
  else
    fail "--batch-norm on, DROPNET_CPU_THREADS=$threads: exit $rc or the weights differ"
  fi
done
DROPNET_CPU_FUSE=0 run train $T --epochs 2 --batch-norm on --save "$WORK/bn_unfused.safetensors"
if [[ $rc -eq 0 ]] && cmp -s "$WORK/bn.safetensors" "$WORK/bn_unfused.safetensors"; then
  pass "--batch-norm on, DROPNET_CPU_FUSE=0: the same bytes"
else
  fail "--batch-norm on, DROPNET_CPU_FUSE=0: exit $rc or the weights differ"
fi
run train $T --epochs 1 --batch-norm on --save "$WORK/bn_part.safetensors"
run train --data "$SAMPLE" --test-limit 40 --device cpu --verbose 0 --epochs 2 --resume "$WORK/bn_part.safetensors" \
  --save "$WORK/bn_part.safetensors"
if [[ $rc -eq 0 ]] && cmp -s "$WORK/bn.safetensors" "$WORK/bn_part.safetensors"; then
  pass "--batch-norm on: 1 epoch + resume to 2 is byte-identical to 2 epochs (moving statistics restored)"
else
  fail "--batch-norm on resume: exit $rc or the checkpoints differ"
fi
expect_error "--resume a BN checkpoint with --batch-norm off" 2 "differs from the checkpoint" \
  train $T --epochs 3 --batch-norm off --resume "$WORK/bn_part.safetensors"
expect_error "--batch-norm yes" 2 "--batch-norm yes: on or off" train $T --batch-norm yes
if [[ $(head -n 1 "$WORK/run.csv") == "epoch,accuracy,loss,val_accuracy,val_loss" && $(wc -l <"$WORK/run.csv") -eq 4 ]]; then
  pass "--log: CSVLogger columns, one row per epoch across the resume"
else
  fail "--log: unexpected CSV: $(cat "$WORK/run.csv")"
fi
expect_error "--resume with another batch size" 2 "differs from the checkpoint" \
  train $B --limit 200 --epochs 4 --resume "$WORK/part.safetensors" --batch-size 20
head -c 100 "$WORK/part.safetensors" >"$WORK/truncated.safetensors"
expect_error "--resume a truncated checkpoint" 1 "truncated\.safetensors: not a valid safetensors file" \
  train $T --epochs 4 --resume "$WORK/truncated.safetensors"
expect_error "--resume a weights file" 1 "is a weights file" \
  train $T --epochs 4 --resume "$WORK/straight.best.safetensors"

# Ctrl-C in epoch 2 (once the log shows epoch 1 done): exit 130, a checkpoint, and an exact resume.
rm -f "$WORK/int.csv"
(cd "$WORK" && exec "$DROPNET" train $B --batch-size 10 --limit 500 --epochs 3 --log "$WORK/int.csv" >"$WORK/out" 2>"$WORK/err") &
pid=$!
for _ in $(seq 1 600); do
  [[ -f $WORK/int.csv && $(wc -l <"$WORK/int.csv" 2>/dev/null) -ge 2 ]] && break
  sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
if [[ $rc -eq 130 && -f $WORK/dropnet-interrupted.safetensors ]] && grep -q "saved a resumable checkpoint" "$WORK/err"; then
  pass "Ctrl-C: exit 130, $(tail -n 1 "$WORK/err" | cut -c1-90)..."
else
  fail "Ctrl-C: exit $rc, expected 130 and $WORK/dropnet-interrupted.safetensors"
fi
run train $B --batch-size 10 --limit 500 --epochs 3 --save "$WORK/straight500.safetensors"
run train --data "$SAMPLE" --test-limit 40 --device cpu --verbose 0 --epochs 3 \
  --resume "$WORK/dropnet-interrupted.safetensors" --save "$WORK/resumed500.safetensors"
if [[ $rc -eq 0 ]] && cmp -s "$WORK/straight500.safetensors" "$WORK/resumed500.safetensors"; then
  pass "resume after Ctrl-C mid-epoch is byte-identical to the uninterrupted run"
else
  fail "resume after Ctrl-C: exit $rc or the checkpoints differ"
fi

# --- the dropout family's flags: per-layer rates, a schedule in epochs, resume mid-schedule -------------------
D="$T --dropout 0.25,0.5 --dropout-schedule late:1"
run train $D --epochs 3 --save "$WORK/sched_straight.safetensors"
if [[ $rc -eq 0 ]] && grep -q "^Settings: .*dropout 0.25,0.5, schedule late:1 epochs" "$WORK/out"; then
  pass "train --dropout 0.25,0.5 --dropout-schedule late:1: $(grep '^Settings' "$WORK/out")"
else
  fail "train with per-layer rates and a schedule: exit $rc"
fi
run train $D --epochs 2 --save "$WORK/sched_part.safetensors"
run train $B --limit 200 --epochs 3 --resume "$WORK/sched_part.safetensors" --save "$WORK/sched_part.safetensors"
if [[ $rc -eq 0 ]] && cmp -s "$WORK/sched_straight.safetensors" "$WORK/sched_part.safetensors"; then
  pass "a scheduled run resumed after epoch 2 (the checkpoint's rates and schedule) is byte-identical"
else
  fail "scheduled resume: exit $rc or the checkpoints differ"
fi
if ! cmp -s "$WORK/sched_straight.safetensors" "$WORK/straight.safetensors"; then
  pass "the scheduled run differs from the constant-rate run"
else
  fail "--dropout-schedule late:1 changed nothing"
fi
expect_error "--resume with another schedule" 2 "--dropout-schedule early:1 differs from the checkpoint's late:1" \
  train $B --limit 200 --epochs 4 --resume "$WORK/sched_part.safetensors" --dropout-schedule early:1
expect_error "--dropout with three rates" 2 "give one rate for every dropout layer or one per layer" \
  train $T --dropout 0.1,0.2,0.3
expect_error "--dropout-schedule without epochs" 2 "expected constant, linear:START:EPOCHS, early:EPOCHS or late:EPOCHS" \
  train $T --dropout-schedule early
expect_error "--dropout-type unknown" 2 "unknown dropout type 'bernoulli'; expected dropout, spatial" \
  train $T --dropout-type bernoulli

run evaluate --weights "$WORK/straight.best.safetensors" --data "$SAMPLE" --device cpu
if [[ $rc -eq 0 ]] && tail -n 1 "$WORK/out" | grep -qE "^Test loss: [0-9.]+ - test accuracy: [0-9.]+$"; then
  pass "evaluate --weights: $(tail -n 1 "$WORK/out")"
else
  fail "evaluate --weights: exit $rc"
fi
run evaluate --weights "$WORK/straight.best.safetensors" --data "$SAMPLE" --device cpu --mc-samples 3
if [[ $rc -eq 0 ]] && grep -qE "^Without dropout \(weight scaling\): accuracy [0-9.]+ - NLL [0-9.]+ - Brier [0-9.]+ - ECE [0-9.]+" "$WORK/out" \
   && grep -qE "^MC dropout \(3 passes\): .* - mutual information [0-9.]+ - AUROC\(entropy\) [0-9.]+$" "$WORK/out"; then
  pass "evaluate --mc-samples 3: calibration metrics with and without MC dropout"
else
  fail "evaluate --mc-samples 3: exit $rc or metrics missing"
fi
run predict --weights "$WORK/straight.safetensors" --input "$SAMPLE/test_batch.bin" --records 5 --mc-samples 4 --device cpu
if [[ $rc -eq 0 && $(wc -l <"$WORK/out") -eq 6 ]] && head -n 1 "$WORK/out" | grep -q "^record,label,predicted,airplane" \
   && [[ $(tail -n 1 "$WORK/out" | tr ',' '\n' | wc -l) -eq 23 ]]; then
  pass "predict --mc-samples: 5 records, means and stds"
else
  fail "predict: exit $rc"
fi
# A BN checkpoint: evaluate and predict rebuild the BN variant from its train.batch_norm setting (a wrong
# architecture would fail to load); Monte Carlo dropout keeps BatchNormalization in inference.
run evaluate --weights "$WORK/bn.safetensors" --data "$SAMPLE" --device cpu --mc-samples 2
if [[ $rc -eq 0 ]] && grep -qE "^MC dropout \(2 passes\)" "$WORK/out"; then
  pass "evaluate --mc-samples 2 with a --batch-norm on checkpoint"
else
  fail "evaluate a --batch-norm on checkpoint: exit $rc"
fi
run predict --weights "$WORK/bn.safetensors" --input "$SAMPLE/test_batch.bin" --records 5 --device cpu
if [[ $rc -eq 0 && $(wc -l <"$WORK/out") -eq 6 ]]; then
  pass "predict with a --batch-norm on checkpoint"
else
  fail "predict a --batch-norm on checkpoint: exit $rc"
fi
expect_error "predict without --input" 2 "--input is required" predict --weights "$WORK/straight.safetensors"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all CLI checks passed"
