#!/usr/bin/env bash
# test_sweep_variants.sh: `dropnet-bench sweep --variants` (dropout type and schedule as a study axis) on the
# bundled CIFAR-10 sample: the runs are variants x rates x seeds with the variant in their ids and records
# (rate 0, no dropout whatever the variant, once per seed);
# the schedules change training exactly where they should (late:1 trains as rate 0 in epoch 1 and as the rate
# in epoch 2; early:1 the other way round: runs of one seed share initial weights and batches); shards merged
# and a study killed and resumed give byte-identical reports; bad variants fail before training with one
# line; `dropnet-bench slurm` passes --variants to the shards.
#
#   tests/bench/test_sweep_variants.sh BUILD/dropnet-bench SOURCE_DIR
set -euo pipefail

bench=${1:?usage: test_sweep_variants.sh path/to/dropnet-bench source-dir}
src=${2:?usage: test_sweep_variants.sh path/to/dropnet-bench source-dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

args=(sweep --variants dropout,dropout@early:1,dropout@late:1 --rates 0,0.5 --seeds 2 --mc-samples 2 --epochs 2
      --limit 200 --test-limit 100 --batch-size 50 --device cpu --data "$src/data/cifar10-sample")
"$bench" "${args[@]}" --out "$tmp/out" >"$tmp/table.md" 2>"$tmp/progress.log" \
  || { cat "$tmp/progress.log" >&2; fail "the sweep exited with $?"; }
grep -q FAILED "$tmp/progress.log" && { cat "$tmp/progress.log" >&2; fail "a run failed"; }
grep -q '^| variant | rate | seeds |' "$tmp/table.md" || fail "no variant column in the accuracy table"
grep -q 'gap |$' "$tmp/table.md" || fail "no generalisation gap column"
grep -q '^## Paired by seed against the baseline, dropout, rate 0' "$tmp/table.md" || fail "paired table title"
grep -q 'Schedules count epochs of 4 optimizer steps' "$tmp/table.md" || fail "the settings line does not give the steps"

python3 - "$tmp/out" <<'PY' || fail "output checks (above)"
import csv, json, sys, xml.dom.minidom, pathlib
out = pathlib.Path(sys.argv[1])
for svg in out.glob("*.svg"):
    xml.dom.minidom.parse(str(svg))
variants = ["dropout", "dropout@early:1", "dropout@late:1"]
lines = (out / "runs.jsonl").read_text().splitlines()
header = json.loads(lines[0])
assert header["settings"]["variants"] == variants and header["settings"]["baseline_variant"] == "dropout", header
recs = {(r["variant"], r["rate"], r["seed"]): r for r in map(json.loads, lines[1:])}
# Rate 0 is the same model for every variant here: trained once per seed, under the first variant.
assert sorted(r["id"] for r in recs.values()) == sorted(
    f"variant={v},rate={r},max_norm=2,seed={s}" for v in variants for r in (0, 0.5) for s in (1, 2)
    if r > 0 or v == "dropout")
assert all(r["status"] == "ok" for r in recs.values())
late = recs[("dropout@late:1", 0.5, 1)]
assert (late["dropout_type"], late["schedule_epochs"], late["schedule_steps"]) == ("dropout", "late:1", "late:4"), late
for s in (1, 2):
    # One seed, one set of initial weights, whatever the variant and rate.
    assert len({r["init_weights_fnv1a"] for (v, rate, seed), r in recs.items() if seed == s}) == 1
    ep = lambda v, rate: [(e["loss"], e["accuracy"], e["val_loss"], e["val_accuracy"]) for e in recs[(v, rate, s)]["epochs"]]
    assert ep("dropout@late:1", 0.5)[0] == ep("dropout", 0)[0], "late:1 is not rate 0 in epoch 1"
    assert ep("dropout@late:1", 0.5)[1] != ep("dropout", 0)[1], "late:1 did not switch dropout on in epoch 2"
    assert ep("dropout@late:1", 0.5)[1] != ep("dropout", 0.5)[1], "late:1 trains as constant dropout in epoch 2"
    assert ep("dropout@early:1", 0.5)[0] == ep("dropout", 0.5)[0], "early:1 is not the constant rate in epoch 1"
    assert ep("dropout@early:1", 0.5)[1] != ep("dropout", 0.5)[1], "early:1 did not switch dropout off in epoch 2"
    # After early:1 the rate is 0, so Monte Carlo dropout is one deterministic pass.
    assert recs[("dropout@early:1", 0.5, s)]["mc"]["passes"] == 1 and recs[("dropout@late:1", 0.5, s)]["mc"]["passes"] == 2
rows = list(csv.reader(open(out / "sweep.csv")))
assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "variant", "rate", "max_norm", "repeat",
                   "seed"], rows[0]
assert len(rows) == 1 + 4 * 2 * 2
runs_csv = list(csv.DictReader(open(out / "runs.csv")))
assert [r["variant"] for r in runs_csv][:5] == ["dropout"] * 4 + ["dropout@early:1"], runs_csv
assert all(r["failure"] == "" for r in runs_csv), "runs.csv columns are shifted"
report = json.load(open(out / "sweep.json"))
assert [(s["variant"], s["rate"]) for s in report["summary"]] == [
    ("dropout", 0), ("dropout", 0.5), ("dropout@early:1", 0.5), ("dropout@late:1", 0.5)]
assert len(report["paired"]) == 3 and all(p["baseline_variant"] == "dropout" for p in report["paired"])
html = (out / "report.html").read_text()
assert html.count("<svg") == 4 + 4, "report.html should inline 4 plots and 4 reliability diagrams"
assert not (out / "reliability_dropout-late-1_rate0.svg").exists()
assert (out / "reliability_dropout-early-1_rate0.5.svg").exists()
for name in ("accuracy.svg", "loss.svg", "gap.svg"):  # one panel per variant
    text = (out / name).read_text()
    assert all(f">{v}</text>" in text for v in variants), f"{name}: a panel per variant"
labels = (out / "test_accuracy.svg").read_text()
assert all(v in labels for v in variants), "test_accuracy.svg: one line per variant"
PY

# The premise of training rate 0 once: under a schedule, rate 0 trains exactly as plain rate 0 (seed 1).
"$bench" sweep --variants dropout@late:1 --rates 0 --seeds 1 --mc-samples 0 --epochs 2 --limit 200 --test-limit 100 \
  --batch-size 50 --device cpu --data "$src/data/cifar10-sample" --out "$tmp/late0" >/dev/null 2>"$tmp/late0.log" \
  || { cat "$tmp/late0.log" >&2; fail "late:1 at rate 0"; }
python3 - "$tmp/out" "$tmp/late0" <<'PY' || fail "rate 0 under a schedule differs from plain rate 0"
import json, sys
def run(path, id):
    for line in open(f"{path}/runs.jsonl").read().splitlines()[1:]:
        r = json.loads(line)
        if r["id"] == id: return r
a = run(sys.argv[1], "variant=dropout,rate=0,max_norm=2,seed=1")
b = run(sys.argv[2], "variant=dropout@late:1,rate=0,max_norm=2,seed=1")
strip = lambda r: [(e["loss"], e["accuracy"], e["val_loss"], e["val_accuracy"]) for e in r["epochs"]]
assert strip(a) == strip(b) and a["test_accuracy"] == b["test_accuracy"] and a["test_loss"] == b["test_loss"]
PY

# Shards merged: byte-identical to the single-process study.
"$bench" "${args[@]}" --shard 1/2 --out "$tmp/s1" >/dev/null 2>"$tmp/s1.log" || { cat "$tmp/s1.log" >&2; fail "shard 1"; }
"$bench" "${args[@]}" --shard 2/2 --out "$tmp/s2" >/dev/null 2>"$tmp/s2.log" || { cat "$tmp/s2.log" >&2; fail "shard 2"; }
[[ $(grep -c '"type":"run"' "$tmp/s1/runs.jsonl") -eq 4 ]] || fail "shard 1 should hold seed 1's 4 runs"
"$bench" merge "$tmp/merged" "$tmp/s1" "$tmp/s2" >/dev/null 2>"$tmp/merge.log" || { cat "$tmp/merge.log" >&2; fail "merge"; }
for f in sweep.csv sweep.json runs.csv report.md report.html accuracy.svg test_accuracy.svg \
         reliability_dropout-late-1_rate0.5.svg; do
  cmp "$tmp/out/$f" "$tmp/merged/$f" || fail "$f of the merged shards differs from the single-process study's"
done

# Killed with SIGKILL after the first finished run, then resumed: byte-identical reports.
"$bench" "${args[@]}" --out "$tmp/killed" >/dev/null 2>"$tmp/killed.log" &
pid=$!
finished() { local n; n=$(grep -c '"type":"run"' "$tmp/killed/runs.jsonl" 2>/dev/null); echo "${n:-0}"; }
for _ in $(seq 1 600); do [[ $(finished) -ge 1 ]] && break; sleep 0.05; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
n=$(finished)
[[ $n -ge 1 && $n -lt 8 ]] || fail "expected the kill to land mid-study, $n of 8 runs were finished"
"$bench" sweep --resume "$tmp/killed" >/dev/null 2>"$tmp/resume.log" || { cat "$tmp/resume.log" >&2; fail "resume failed"; }
grep -q "resuming .*: $n of 8 runs already finished" "$tmp/resume.log" || fail "resume did not skip the $n finished runs"
for f in sweep.csv sweep.json runs.csv report.md report.html gap.svg reliability_dropout-early-1_rate0.5.svg; do
  cmp "$tmp/out/$f" "$tmp/killed/$f" || fail "$f after kill -9 and --resume differs from the uninterrupted study's"
done
# Other variants than the study's: refused.
if "$bench" sweep --variants dropout,dropout@late:1 --rates 0,0.5 --seeds 2 --mc-samples 2 --epochs 2 --limit 200 \
    --test-limit 100 --batch-size 50 --device cpu --data "$src/data/cifar10-sample" --resume "$tmp/killed" \
    >/dev/null 2>"$tmp/bad.err"; then fail "resume with other variants accepted"; fi
grep -q 'other settings' "$tmp/bad.err" || fail "resume with other variants: $(cat "$tmp/bad.err")"

# Bad variants fail fast (no training) with a non-zero exit and one line on stderr.
check_rejects() {
  local why=$1 want=$2; shift 2
  if "$bench" sweep "$@" --epochs 2 --limit 100 --device cpu --data "$src/data/cifar10-sample" \
      --out "$tmp/bad" >"$tmp/bad.out" 2>"$tmp/bad.err"; then
    fail "$why: accepted"
  fi
  grep -q 'epoch [0-9]' "$tmp/bad.err" && fail "$why: training started before the error"
  [[ $(wc -l <"$tmp/bad.err") -eq 1 ]] || { cat "$tmp/bad.err" >&2; fail "$why: expected one line on stderr"; }
  grep -q -- "$want" "$tmp/bad.err" || { cat "$tmp/bad.err" >&2; fail "$why: expected '$want'"; }
}
check_rejects "unknown type" "unknown dropout type 'spatail'" --variants dropout,spatail
check_rejects "unknown schedule" "unknown form" --variants dropout@sometimes:1
check_rejects "schedule longer than the study" "3 epochs is more than --epochs 2" --variants dropout@late:3
check_rejects "duplicate variant" "listed twice" --variants dropout,dropout@constant
check_rejects "empty variant" "an empty entry" --variants dropout,,spatial
check_rejects "baseline variant not in the list" "not one of --variants" --variants dropout,dropout@late:1 \
  --baseline-variant dropout@early:1
check_rejects "baseline variant without variants" "only with --variants" --baseline-variant dropout
check_rejects "block size without dropblock" "only DropBlock uses it" --variants dropout --block-size 5
if ! "$bench" sweep --variants spatial --epochs 1 --limit 100 --device cpu --data "$src/data/cifar10-sample" \
    --out "$tmp/bad" >/dev/null 2>"$tmp/bad.err"; then
  # A type this build lacks fails before training (the seed model builder says so), in one line.
  [[ $(wc -l <"$tmp/bad.err") -eq 1 ]] || { cat "$tmp/bad.err" >&2; fail "unavailable type: expected one line"; }
  grep -q 'epoch [0-9]' "$tmp/bad.err" && fail "unavailable type: training started before the error"
fi

# dropnet-bench slurm passes --variants to every shard (the scripts only; no Slurm needed).
"$bench" slurm --shards 2 --out "$tmp/slurm" --variants dropout,dropout@late:1 --rates 0,0.5 --seeds 2 --epochs 2 \
  --limit 100 --device cpu --data "$src/data/cifar10-sample" >/dev/null 2>"$tmp/slurm.log" \
  || { cat "$tmp/slurm.log" >&2; fail "slurm with --variants"; }
grep -q -- '--variants dropout,dropout@late:1' "$tmp/slurm/study.sbatch" || fail "study.sbatch lacks --variants"
grep -q '6 runs in 2 shards' "$tmp/slurm.log" || fail "slurm: expected 6 runs ($(cat "$tmp/slurm.log"))"
echo "test_sweep_variants.sh: all checks passed"
