#!/usr/bin/env bash
# test_sweep_emulated.sh: `dropnet-bench sweep --device cuda --concurrent 2` on the emulated device: two runs
# at once, each its own model on its own host thread and non-blocking stream (with its own recorded CUDA
# graph), whose queued work the emulation runs as independent queues, give the same records (timings aside)
# and byte-identical reports as the same study one run at a time; a run forced to fail leaves the others
# recorded as they are one at a time; runs that would not fit in the GPU's memory are refused up front.
#
#   tests/bench/test_sweep_emulated.sh BUILD/dropnet-bench-emulated SOURCE_DIR
set -euo pipefail

bench=${1:?usage: test_sweep_emulated.sh path/to/dropnet-bench-emulated source-dir}
src=${2:?usage: test_sweep_emulated.sh path/to/dropnet-bench-emulated source-dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

records() { python3 "$src/tests/bench/run_records.py" "$1"; }  # the records without their timings

# 2 rates x 2 seeds; 2 epochs of 2 full batches (the second epoch's step replays the recorded graph).
args=(sweep --rates 0,0.5 --seeds 2 --mc-samples 2 --epochs 2 --limit 125 --test-limit 50 --batch-size 50
      --device cuda --data "$src/data/cifar10-sample")
"$bench" "${args[@]}" --out "$tmp/one" >/dev/null 2>"$tmp/one.log" || { cat "$tmp/one.log" >&2; fail "--concurrent 1 exited with $?"; }
"$bench" "${args[@]}" --concurrent 2 --out "$tmp/two" >/dev/null 2>"$tmp/two.log" || { cat "$tmp/two.log" >&2; fail "--concurrent 2 exited with $?"; }
grep -q '2 runs at once, each on its own thread and its own stream' "$tmp/two.log" || { cat "$tmp/two.log" >&2; fail "no line saying how the runs run"; }
[[ $(grep -c '"status":"ok"' "$tmp/one/runs.jsonl") -eq 4 ]] || fail "not every run finished"
cmp -s <(records "$tmp/one/runs.jsonl") <(records "$tmp/two/runs.jsonl") || fail "--concurrent 2: runs.jsonl records differ from --concurrent 1"
for f in report.md report.html sweep.csv runs.csv sweep.json accuracy.svg loss.svg gap.svg test_accuracy.svg \
         reliability_rate0.svg reliability_rate0.5.svg; do
  cmp "$tmp/one/$f" "$tmp/two/$f" || fail "--concurrent 2: $f differs from --concurrent 1"
done

# A run forced to fail, with its neighbour in flight: the others are recorded as one at a time.
DROPNET_BENCH_FAIL_RUN="rate=0,max_norm=2,seed=2" "$bench" "${args[@]}" --concurrent 2 --out "$tmp/failed" \
  >/dev/null 2>"$tmp/failed.log" || { cat "$tmp/failed.log" >&2; fail "a failed run stopped the study"; }
grep -q '"id":"rate=0,max_norm=2,seed=2","status":"failed","failure":"injected failure' "$tmp/failed/runs.jsonl" \
  || fail "the failure is not recorded"
cmp -s <(records "$tmp/one/runs.jsonl" | grep -v '"rate=0,max_norm=2,seed=2"') \
       <(records "$tmp/failed/runs.jsonl" | grep -v '"rate=0,max_norm=2,seed=2"') \
  || fail "the runs beside the failed one differ from the study without a failure"
# A GPU too small for the runs asked for: refused before anything is written, naming how many fit.
if DROPNET_EMULATION_MEMORY_MIB=200 "$bench" "${args[@]}" --concurrent 4 --out "$tmp/small" >/dev/null 2>"$tmp/small.log"; then
  fail "--concurrent 4 on a 200 MiB GPU was accepted"
fi
grep -qE -- '--concurrent 4: 4 runs need about [0-9]+ MiB of GPU memory .* at most [0-9]+ fit: give --concurrent [0-9]+ or less' \
  "$tmp/small.log" || { cat "$tmp/small.log" >&2; fail "--concurrent 4 on a small GPU: no error naming how many runs fit"; }
[[ ! -e $tmp/small/runs.jsonl ]] || fail "a refused study wrote runs.jsonl"
echo "test_sweep_emulated.sh: all checks passed"
