#!/usr/bin/env python3
"""Prints the run records of a study's runs.jsonl without their timings (wall times, images/s, peak memory,
epoch seconds), one canonical JSON line each, in file order: what must not depend on how the study ran
(one run at a time or several, interrupted and resumed). Used by test_sweep.sh and test_sweep_emulated.sh.

    python3 tests/bench/run_records.py DIR/runs.jsonl
"""
import json
import sys

TIMINGS = ("wall_seconds", "train_seconds", "images_per_second", "peak_memory_mib")

for line in open(sys.argv[1]).read().splitlines()[1:]:
    record = json.loads(line)
    for key in TIMINGS:
        record.pop(key, None)
    for epoch in record.get("epochs", []):
        epoch.pop("seconds", None)
    print(json.dumps(record, sort_keys=True))
