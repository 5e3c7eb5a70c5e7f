#!/usr/bin/env python3
"""One sitting of CPU speed measurements: dropnet builds and PyTorch's CPU step, alternated.

    benchmarks/reference/cpu_sitting.py --bench before=OLD/dropnet-bench --bench after=build/dropnet-bench \\
        --rounds 5 [--torch] [--json out.json]

Each round runs `dropnet-bench throughput --device cpu --profile 0` once per build given, in the order given,
and (with --torch) benchmarks/reference/torch_seed_model.py --device cpu once: the machines are noisy and
their load changes over minutes, so alternating within rounds keeps the comparison fair. Prints, for each
build and for torch, the median over rounds of the median step, the spread (min-max over rounds), and the
ratios: every build's images/s against the first build's and against torch's, from the same rounds.

Ratios, not absolute times, are what carry from one sitting to another: the CPUs differ between machines.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

STEP = re.compile(r"median step ([0-9.]+) ms over \d+ steps .* = ([0-9.]+) images/s")
EFFICIENCY = re.compile(r"^efficiency = .* = ([0-9.]+) ")
INFERENCE = re.compile(r"^inference .*= ([0-9.]+) images/s")
DEVICE = re.compile(r"^device: (.*)$")
ISA = re.compile(r"^CPU threads: .*; ISA: (.*)$")
TORCH_STEP = re.compile(r"median step ([0-9.]+) ms .* = ([0-9.]+) images/s")


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def dropnet_round(binary, steps):
    text = run([binary, "throughput", "--device", "cpu", "--profile", "0", "--steps", str(steps)])
    r = {}
    for line in text.splitlines():
        if m := STEP.search(line):
            r["step_ms"], r["images_per_second"] = float(m[1]), float(m[2])
        elif m := EFFICIENCY.search(line):
            r["efficiency"] = float(m[1])
        elif m := INFERENCE.search(line):
            r["inference_images_per_second"] = float(m[1])
        elif m := DEVICE.search(line):
            r["device"] = m[1]
        elif m := ISA.search(line):
            r["isa"] = m[1]
    if "step_ms" not in r:
        raise SystemExit(f"cpu_sitting.py: no step time in the output of {binary}:\n{text}")
    return r


def python_with_torch():
    """This interpreter if it imports torch, else the system's (Debian's python3-torch installs there)."""
    for python in (sys.executable, "/usr/bin/python3"):
        if os.access(python, os.X_OK) and subprocess.run([python, "-c", "import torch, numpy"],
                                                         capture_output=True).returncode == 0:
            return python
    raise SystemExit("cpu_sitting.py: --torch needs torch and numpy (Debian: apt-get install python3-torch)")


def torch_round(python, steps):
    text = run([python, os.path.join(HERE, "torch_seed_model.py"), "--device", "cpu", "--steps", str(steps),
                "--warmup", "3"])
    m = TORCH_STEP.search(text)
    if not m:
        raise SystemExit(f"cpu_sitting.py: no step time in torch_seed_model.py's output:\n{text}")
    version = re.search(r"\(torch ([^)]*)\)", text)
    return {"step_ms": float(m[1]), "images_per_second": float(m[2]), "torch": version[1] if version else "?"}


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", action="append", required=True, metavar="NAME=PATH",
                   help="a dropnet-bench binary and the name to report it under (repeatable)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=12, help="timed steps per run")
    p.add_argument("--torch", action="store_true", help="also time PyTorch's CPU step in every round")
    p.add_argument("--json", help="write every round's figures here")
    args = p.parse_args()
    benches = []
    for item in args.bench:
        name, sep, path = item.partition("=")
        if not sep or not os.access(path, os.X_OK):
            raise SystemExit(f"cpu_sitting.py: --bench wants NAME=PATH to an executable, got {item!r}")
        benches.append((name, path))

    rounds = {name: [] for name, _ in benches}
    if args.torch:
        python = python_with_torch()
        rounds["torch"] = []
    for r in range(args.rounds):
        for name, path in benches:
            rounds[name].append(dropnet_round(path, args.steps))
        if args.torch:
            rounds["torch"].append(torch_round(python, args.steps))
        line = ", ".join(f"{k} {v[-1]['step_ms']:.1f} ms" for k, v in rounds.items())
        print(f"round {r + 1}/{args.rounds}: {line}", flush=True)

    first = benches[0][0]
    isa = next((v[0]["isa"] for v in rounds.values() if "isa" in v[0]), "not printed")
    print(f"\ndevice: {rounds[first][0].get('device', '?')}; ISA path (of the builds that print it): {isa}")
    print(f"{args.rounds} rounds, {args.steps} timed steps each; median over rounds [min, max]\n")
    print("| run | step ms | images/s | efficiency vs sgemm | inference images/s | "
          f"speed vs {first} | speed vs torch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    result = {"rounds": rounds, "summary": {}}
    for name, values in rounds.items():
        step = summary([v["step_ms"] for v in values])
        # Ratios round by round (same round = same machine load), then their median and range.
        def ratio_to(other):
            if other not in rounds or other == name:
                return None
            return summary([o["step_ms"] / v["step_ms"] for v, o in zip(values, rounds[other])])
        vs_first, vs_torch = ratio_to(first), ratio_to("torch")
        fmt_ratio = lambda s: f"{s['median']:.2f}x [{s['min']:.2f}, {s['max']:.2f}]" if s else "—"
        eff = [v["efficiency"] for v in values if "efficiency" in v]
        inf = [v["inference_images_per_second"] for v in values if "inference_images_per_second" in v]
        ips = statistics.median(v["images_per_second"] for v in values)
        cells = [name, f"{step['median']:.1f} [{step['min']:.1f}, {step['max']:.1f}]", f"{ips:.0f}",
                 f"{statistics.median(eff):.2f}" if eff else "—", f"{statistics.median(inf):.0f}" if inf else "—",
                 fmt_ratio(vs_first), fmt_ratio(vs_torch)]
        print("| " + " | ".join(cells) + " |")
        result["summary"][name] = {"step_ms": step, "speed_vs_first": vs_first, "speed_vs_torch": vs_torch}
    if args.torch:
        print(f"\ntorch {rounds['torch'][0]['torch']} on the CPU, {os.cpu_count()} threads, same model, batch 250, float32")
    print("speed vs X = X's step time / this run's step time, per round (same round, same load), median [min, max]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
