#!/usr/bin/env bash
# test_sweep.sh: a tiny dropout sweep on the bundled CIFAR-10 sample, checking what `dropnet-bench sweep`
# promises: the output files exist, the SVGs are well-formed XML, the CSV has one row per rate x epoch,
# the JSON parses, runs of different rates start from identical initial weights, and bad input fails
# with a non-zero exit before any training.
#
#   tests/bench/test_sweep.sh BUILD/dropnet-bench SOURCE_DIR
set -euo pipefail

bench=${1:?usage: test_sweep.sh path/to/dropnet-bench source-dir}
src=${2:?usage: test_sweep.sh path/to/dropnet-bench source-dir}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bench" sweep --rates 0,0.5 --epochs 2 --limit 200 --test-limit 100 --batch-size 50 --device cpu \
  --data "$src/data/cifar10-sample" --out "$tmp/out" >"$tmp/table.md" 2>"$tmp/progress.log" \
  || { cat "$tmp/progress.log" >&2; fail "the sweep exited with $?"; }

for f in sweep.csv sweep.json report.html accuracy.svg loss.svg gap.svg test_accuracy.svg; do
  [[ -s "$tmp/out/$f" ]] || fail "missing or empty $f"
done
grep -q '^| rate |' "$tmp/table.md" || fail "no Markdown table on stdout"

python3 - "$tmp/out" <<'PY' || fail "output checks (above)"
import csv, json, sys, xml.dom.minidom, pathlib
out = pathlib.Path(sys.argv[1])
for svg in ["accuracy.svg", "loss.svg", "gap.svg", "test_accuracy.svg"]:
    xml.dom.minidom.parse(str(out / svg))
rows = list(csv.reader(open(out / "sweep.csv")))
want = ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "rate", "max_norm", "repeat", "seed"]
assert rows[0] == want, f"CSV header {rows[0]}"
assert len(rows) == 1 + 2 * 2, f"CSV has {len(rows) - 1} data rows, expected 2 rates x 2 epochs"
report = json.load(open(out / "sweep.json"))
runs = report["runs"]
assert [r["rate"] for r in runs] == [0, 0.5], [r["rate"] for r in runs]
assert all(len(r["epochs"]) == 2 for r in runs)
assert all(0 <= r["test_accuracy"] <= 1 for r in runs)
# The premise of the comparison: the same seed gives the same initial weights whatever the rate.
assert runs[0]["seed"] == runs[1]["seed"]
assert runs[0]["init_weights_fnv1a"] == runs[1]["init_weights_fnv1a"], "initial weights differ between rates"
assert "<svg" in (out / "report.html").read_text()
PY

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
check_rejects "--concurrent" --concurrent --rates 0.5 --out "$tmp/bad5"
echo "test_sweep.sh: all checks passed"
