#!/usr/bin/env bash
# test_report_browser.sh: a tiny dropout study on the bundled sample, then its report.html opened in headless
# Chromium (check_report_chromium.py): no console error, no missing image, the plots shown, a screenshot.
# Exit 77 (CTest: skipped) when Chromium is not installed.
#
#   tests/bench/test_report_browser.sh BUILD/dropnet-bench SOURCE_DIR
set -euo pipefail
bench=${1:?usage: test_report_browser.sh path/to/dropnet-bench source-dir}
src=${2:?usage: test_report_browser.sh path/to/dropnet-bench source-dir}
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "SKIP: chromium is not installed (Debian: apt-get install chromium)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bench" sweep --rates 0,0.5 --seeds 2 --mc-samples 3 --epochs 2 --limit 200 --test-limit 100 --batch-size 50 \
  --device cpu --data "$src/data/cifar10-sample" --out "$tmp/out" >/dev/null 2>"$tmp/log" \
  || { cat "$tmp/log" >&2; echo "FAIL: the sweep exited with an error"; exit 1; }
python3 "$src/tests/bench/check_report_chromium.py" "$tmp/out" "$tmp/report.png"
