#!/usr/bin/env bash
# test_sweep.sh: a tiny dropout sweep on the bundled CIFAR-10 sample, checking what `dropnet-bench sweep`
# promises: the output files exist, the SVGs are well-formed XML, the CSV has one row per rate x seed x
# epoch, the JSON parses, runs of different rates start from identical initial weights for each seed, a
# study killed with SIGKILL and resumed gives byte-identical reports, a failing run is recorded and the
# study goes on, two runs at a time (--concurrent 2) give the same records and reports as one at a time
# (killed and resumed, or with a failing run, too), and bad input fails with a non-zero exit before any
# training.
#
#   tests/bench/test_sweep.sh BUILD/dropnet-bench SOURCE_DIR
set -euo pipefail

bench=${1:?usage: test_sweep.sh path/to/dropnet-bench source-dir}
src=${2:?usage: test_sweep.sh path/to/dropnet-bench source-dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

args=(sweep --rates 0,0.5 --seeds 2 --mc-samples 3 --epochs 2 --limit 200 --test-limit 100 --batch-size 50
      --device cpu --data "$src/data/cifar10-sample")
"$bench" "${args[@]}" --out "$tmp/out" >"$tmp/table.md" 2>"$tmp/progress.log" \
  || { cat "$tmp/progress.log" >&2; fail "the sweep exited with $?"; }

for f in runs.jsonl report.md sweep.csv runs.csv sweep.json report.html accuracy.svg loss.svg gap.svg \
         test_accuracy.svg reliability_rate0.svg reliability_rate0.5.svg; do
  [[ -s "$tmp/out/$f" ]] || fail "missing or empty $f"
done
grep -q '^| rate |' "$tmp/table.md" || fail "no Markdown table on stdout"
cmp -s "$tmp/table.md" "$tmp/out/report.md" || fail "stdout differs from report.md"
grep -q 'highest mean test accuracy' "$tmp/table.md" || fail "no conclusion sentence"

python3 - "$tmp/out" <<'PY' || fail "output checks (above)"
import csv, json, sys, xml.dom.minidom, pathlib
out = pathlib.Path(sys.argv[1])
for svg in out.glob("*.svg"):
    xml.dom.minidom.parse(str(svg))
rows = list(csv.reader(open(out / "sweep.csv")))
want = ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "rate", "max_norm", "repeat", "seed"]
assert rows[0] == want, f"CSV header {rows[0]}"
assert len(rows) == 1 + 2 * 2 * 2, f"CSV has {len(rows) - 1} data rows, expected 2 rates x 2 seeds x 2 epochs"
lines = (out / "runs.jsonl").read_text().splitlines()
header = json.loads(lines[0])
assert header["type"] == "header" and header["settings"]["seeds"] == 2, header
for key in ["dropnet_version", "git_commit", "data_fnv1a", "device_description", "threads", "command"]:
    assert key in header["provenance"], key
records = [json.loads(l) for l in lines[1:]]
assert sorted(r["id"] for r in records) == sorted(f"rate={r},max_norm=2,seed={s}" for r in (0, 0.5) for s in (1, 2))
report = json.load(open(out / "sweep.json"))
runs = report["runs"]
assert [(r["rate"], r["seed"]) for r in runs] == [(0, 1), (0, 2), (0.5, 1), (0.5, 2)], "runs not in canonical order"
assert all(len(r["epochs"]) == 2 and r["status"] == "ok" for r in runs)
assert all(0 <= r["test_accuracy"] <= 1 and 0 <= r["standard"]["ece"] <= 1 for r in runs)
assert all(r["wall_seconds"] is None for r in runs), "timings leaked into sweep.json"
# The premise of the comparison: the same seed gives the same initial weights and the same batch order
# whatever the rate; another seed another order.
for s in (1, 2):
    hashes = {r["init_weights_fnv1a"] for r in runs if r["seed"] == s}
    assert len(hashes) == 1, f"initial weights differ between rates for seed {s}"
    orders = {r["batch_order_fnv1a"] for r in runs if r["seed"] == s}
    assert len(orders) == 1, f"batch orders differ between rates for seed {s}"
assert runs[0]["batch_order_fnv1a"] != runs[1]["batch_order_fnv1a"], "seeds 1 and 2 trained on one batch order"
# Every reported metric is compared paired, with Holm beside the raw p; MC against weight scaling at 0.5.
p = report["paired"][0]
for key in ["test_accuracy", "test_loss", "best_val_epoch_test_accuracy", "best_epoch", "final_gap", "nll",
            "brier", "ece"]:
    assert key in p and "p_holm" in p[key], f"paired {key}"
assert p["test_accuracy"]["compared_as_counts"] and not p["nll"]["compared_as_counts"]
mc = report["mc_vs_standard"]
assert [m["rate"] for m in mc] == [0.5] and all(k in mc[0] for k in ["accuracy", "nll", "brier", "ece"]), mc
assert runs[0]["mc"]["passes"] == 1 and runs[2]["mc"]["passes"] == 3, "MC passes"
assert runs[0]["mc"]["mutual_information"] == 0, "rate 0 has no model uncertainty"
assert len(report["paired"]) == 1 and report["paired"][0]["test_accuracy"]["difference"]["n"] == 2
assert report["conclusions"], "no conclusion"
html = (out / "report.html").read_text()
assert html.count("<svg") == 6, "report.html should inline the 6 plots"
PY

# The runs' records without their timings (wall times, images/s, peak memory), in file order: what must not
# depend on how the study ran.
records() { python3 "$src/tests/bench/run_records.py" "$1"; }  # the records without their timings
reports=(report.md report.html sweep.csv runs.csv sweep.json accuracy.svg loss.svg gap.svg test_accuracy.svg
         reliability_rate0.svg reliability_rate0.5.svg)
same_study() {  # same_study DIR_A DIR_B WHAT: records (timings aside) and every report byte-identical
  cmp -s <(records "$1/runs.jsonl") <(records "$2/runs.jsonl") || fail "$3: runs.jsonl records differ"
  for f in "${reports[@]}"; do cmp "$1/$f" "$2/$f" || fail "$3: $f differs"; done
}

# Two runs at once, each on its own thread with one CPU thread: the same records and reports as one by one.
"$bench" "${args[@]}" --concurrent 2 --threads-per-run 1 --out "$tmp/concurrent" >/dev/null 2>"$tmp/concurrent.log" \
  || { cat "$tmp/concurrent.log" >&2; fail "the sweep with --concurrent 2 exited with $?"; }
grep -q '2 runs at once, each on its own thread with 1 CPU thread' "$tmp/concurrent.log" \
  || { cat "$tmp/concurrent.log" >&2; fail "--concurrent 2: no line saying how the runs run"; }
same_study "$tmp/out" "$tmp/concurrent" "--concurrent 2 against --concurrent 1"
[[ -z $(find "$tmp/concurrent" -name '.best-weights*') ]] || fail "--concurrent 2 left its best-weights files"

# Killed with SIGKILL after the first finished run, then resumed: byte-identical reports.
"$bench" "${args[@]}" --out "$tmp/killed" >/dev/null 2>"$tmp/killed.log" &
pid=$!
finished() { local n; n=$(grep -c '"type":"run"' "$tmp/killed/runs.jsonl" 2>/dev/null); echo "${n:-0}"; }
for _ in $(seq 1 600); do [[ $(finished) -ge 1 ]] && break; sleep 0.05; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
n=$(finished)
[[ $n -ge 1 && $n -lt 4 ]] || fail "expected the kill to land mid-study, $n of 4 runs were finished"
[[ -f "$tmp/killed/report.md" ]] && fail "a report was written before the study finished"
"$bench" sweep --resume "$tmp/killed" >/dev/null 2>"$tmp/resume.log" || { cat "$tmp/resume.log" >&2; fail "resume failed"; }
grep -q "resuming .*: $n of 4 runs already finished" "$tmp/resume.log" || fail "resume did not skip the $n finished runs"
for f in sweep.csv sweep.json runs.csv report.md report.html accuracy.svg loss.svg reliability_rate0.5.svg; do
  cmp "$tmp/out/$f" "$tmp/killed/$f" || fail "$f after kill -9 and --resume differs from the uninterrupted study's"
done
# Resuming a finished study runs nothing and rewrites the same reports; other flags than the study's fail.
"$bench" "${args[@]}" --resume "$tmp/killed" >/dev/null 2>"$tmp/resume2.log" || fail "resume with the same flags"
grep -q "resuming .*: 4 of 4 runs" "$tmp/resume2.log" || fail "a finished study was not recognised"
if "$bench" sweep --epochs 3 --resume "$tmp/killed" >/dev/null 2>"$tmp/bad.err"; then fail "resume with other settings accepted"; fi
[[ $(wc -l <"$tmp/bad.err") -eq 1 ]] || fail "resume with other settings: expected one line on stderr"

# The same with two runs in flight: killed after the first finished, resumed with --concurrent 2.
"$bench" "${args[@]}" --concurrent 2 --out "$tmp/killed2" >/dev/null 2>"$tmp/killed2.log" &
pid=$!
finished2() { local n; n=$(grep -c '"type":"run"' "$tmp/killed2/runs.jsonl" 2>/dev/null); echo "${n:-0}"; }
for _ in $(seq 1 600); do [[ $(finished2) -ge 1 ]] && break; sleep 0.05; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
n=$(finished2)
[[ $n -ge 1 && $n -lt 4 ]] || fail "--concurrent 2: expected the kill to land mid-study, $n of 4 runs were finished"
"$bench" sweep --resume "$tmp/killed2" --concurrent 2 >/dev/null 2>"$tmp/resume3.log" || { cat "$tmp/resume3.log" >&2; fail "resume with --concurrent 2 failed"; }
grep -q "resuming .*: $n of 4 runs already finished" "$tmp/resume3.log" || fail "resume --concurrent 2 did not skip the $n finished runs"
same_study "$tmp/out" "$tmp/killed2" "kill -9 and --resume with --concurrent 2"

# Runs of one seed that trained on different batch orders cannot be paired: resume and merge refuse them.
mkdir "$tmp/tampered"
python3 - "$tmp/out/runs.jsonl" "$tmp/tampered/runs.jsonl" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines(keepends=True)
lines[-1] = re.sub(r'"batch_order_fnv1a":"[0-9a-f]+"', '"batch_order_fnv1a":"0123456789abcdef"', lines[-1])
open(sys.argv[2], "w").writelines(lines)
PY
if "$bench" sweep --resume "$tmp/tampered" >/dev/null 2>"$tmp/tampered.err"; then fail "resume accepted two batch orders for one seed"; fi
grep -q "trained on different batch orders (seed 2" "$tmp/tampered.err" || { cat "$tmp/tampered.err" >&2; fail "resume: wrong reason"; }
if "$bench" merge "$tmp/tampered-merged" "$tmp/tampered" >/dev/null 2>"$tmp/tampered.err"; then fail "merge accepted two batch orders for one seed"; fi
grep -q "trained on different batch orders (seed 2" "$tmp/tampered.err" || { cat "$tmp/tampered.err" >&2; fail "merge: wrong reason"; }

# A failing run is recorded with its reason, the study goes on, and the report lists it.
DROPNET_BENCH_FAIL_RUN="rate=0.5,max_norm=2,seed=2" "$bench" sweep --rates 0,0.5 --seeds 2 --mc-samples 0 \
  --epochs 1 --limit 100 --test-limit 50 --batch-size 50 --device cpu --data "$src/data/cifar10-sample" \
  --out "$tmp/failed" >"$tmp/failed.md" 2>"$tmp/failed.log" || fail "a failed run stopped the study"
grep -q '"status":"failed","failure":"injected failure' "$tmp/failed/runs.jsonl" || fail "the failure is not recorded"
[[ $(grep -c '"status":"ok"' "$tmp/failed/runs.jsonl") -eq 3 ]] || fail "the other runs did not go on"
grep -q '^## Failed runs' "$tmp/failed.md" || fail "the report does not list the failed run"
grep -q '^- rate=0.5,max_norm=2,seed=2: injected failure' "$tmp/failed.md" || fail "the failed run's reason is missing"
# The same failure with two runs in flight: the run beside it goes on, and every record equals the one-by-one
# study's (the failed run's included).
DROPNET_BENCH_FAIL_RUN="rate=0.5,max_norm=2,seed=2" "$bench" sweep --rates 0,0.5 --seeds 2 --mc-samples 0 \
  --epochs 1 --limit 100 --test-limit 50 --batch-size 50 --device cpu --data "$src/data/cifar10-sample" \
  --concurrent 2 --out "$tmp/failed2" >"$tmp/failed2.md" 2>"$tmp/failed2.log" || fail "a failed run stopped the concurrent study"
cmp -s <(records "$tmp/failed/runs.jsonl") <(records "$tmp/failed2/runs.jsonl") \
  || fail "--concurrent 2 with a failing run: the records differ from the one-by-one study's"
cmp "$tmp/failed.md" "$tmp/failed2.md" || fail "--concurrent 2 with a failing run: the reports differ"

# Bad input fails fast (no training: no progress lines) with a non-zero exit and one line on stderr.
check_rejects() {
  local why=$1; shift
  if "$bench" sweep "$@" --epochs 1 --limit 100 --device cpu --data "$src/data/cifar10-sample" \
      >"$tmp/bad.out" 2>"$tmp/bad.err"; then
    fail "$why: accepted"
  fi
  grep -q 'epoch' "$tmp/bad.err" && fail "$why: training started before the error"
  [[ $(wc -l <"$tmp/bad.err") -eq 1 ]] || { cat "$tmp/bad.err" >&2; fail "$why: expected one line on stderr"; }
}
check_rejects "rate 1.5" --rates 0,1.5 --out "$tmp/bad1"
check_rejects "negative rate" --rates -0.1 --out "$tmp/bad2"
check_rejects "empty rate list" --rates , --out "$tmp/bad3"
check_rejects "unknown flag" --rats 0.5 --out "$tmp/bad4"
touch "$tmp/file"
check_rejects "unwritable --out" --rates 0.5 --out "$tmp/file/sub"
check_rejects "--concurrent 0" --concurrent 0 --rates 0.5 --out "$tmp/bad5"
check_rejects "--concurrent with a progress bar" --concurrent 2 --verbose 1 --rates 0.5 --out "$tmp/bad5b"
check_rejects "baseline not a rate" --rates 0,0.5 --baseline 0.3 --out "$tmp/bad6"
check_rejects "duplicate rate" --rates 0.5,0.5 --out "$tmp/bad7"
check_rejects "--seeds and --repeats" --seeds 2 --repeats 2 --out "$tmp/bad8"
check_rejects "--resume of nothing" --resume "$tmp/nothing-here"
# The committed studies' reports come back byte for byte from its records (merge rebuilds them with today's
# report code): a change to the reports that alters a study without the new axes shows here.
for study in cifar10-cpu-5seeds-10epochs cifar10-cpu-5seeds-55epochs; do
  committed=$src/benchmarks/results/$study
  rm -rf "$tmp/committed"
  "$bench" merge "$tmp/committed" "$committed" >/dev/null 2>"$tmp/committed.log" || { cat "$tmp/committed.log" >&2; fail "merge of $committed"; }
  for f in report.md report.html runs.csv sweep.csv sweep.json accuracy.svg loss.svg gap.svg test_accuracy.svg \
           reliability_rate0.svg reliability_rate0.25.svg reliability_rate0.5.svg; do
    cmp "$committed/$f" "$tmp/committed/$f" || fail "$f rebuilt from $committed/runs.jsonl differs from the committed one"
  done
done
# The same for the dropout x batch normalization study (variants dropout and dropout+bn).
committed=$src/benchmarks/results/cifar10-cpu-5seeds-10epochs-batchnorm
rm -rf "$tmp/committed"
"$bench" merge "$tmp/committed" "$committed" >/dev/null 2>"$tmp/committed.log" || { cat "$tmp/committed.log" >&2; fail "merge of $committed"; }
for f in report.md report.html runs.csv sweep.csv sweep.json accuracy.svg loss.svg gap.svg test_accuracy.svg \
         reliability_dropout_rate0.svg reliability_dropout_rate0.5.svg reliability_dropout+bn_rate0.svg \
         reliability_dropout+bn_rate0.5.svg; do
  cmp "$committed/$f" "$tmp/committed/$f" || fail "$f rebuilt from $committed/runs.jsonl differs from the committed one"
done
echo "test_sweep.sh: all checks passed"
