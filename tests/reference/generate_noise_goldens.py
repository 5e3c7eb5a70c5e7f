#!/usr/bin/env python3
"""Keras 3 goldens for dropnet's GaussianDropout, GaussianNoise and AlphaDropout (issue 15).

Rerun in one command, from the repository root:

    bash tests/reference/generate_noise_goldens.sh            # rewrite tests/reference/goldens_noise/
    bash tests/reference/generate_noise_goldens.sh --check    # regenerate into a temp dir, compare

(the wrapper uses the pinned virtual environment of generate_goldens.sh: .venv-keras/ at the repository
root, or the one named by VENV_KERAS). Read by tests/cpu/test_noise_keras.cpp.

Keras draws other random numbers than dropnet, so the goldens hold what can be compared:
  * inference outputs (training=False) for a fixed input: the input itself;
  * the constants Keras computes in Python floats (float64): GaussianDropout's stddev sqrt(rate / (1 - rate)),
    AlphaDropout's alpha_p, a, b and the dropped value a * alpha_p + b;
  * statistics of Keras' own training outputs (layer(x, training=True), seeded) over N = 2^22 elements,
    accumulated in float64: GaussianDropout on x = 1 (y is the multiplicative noise), GaussianNoise on x = 0
    (y is the additive noise), AlphaDropout on a standard normal input (mean, variance, the fraction of
    outputs equal to the dropped value, and for a noise_shape case whether every broadcast group is dropped
    as one);
  * what Keras does at rate 1 in training (GaussianDropout and AlphaDropout raise ZeroDivisionError).

Files: per case a float64 .npy of statistics ("<case>__stats.npy", fields in manifest.json's "stats_fields")
and one of constants ("<case>__constants.npy": GaussianDropout [stddev]; AlphaDropout [alpha_p, a, b,
a * alpha_p + b, the dropped value Keras' float32 outputs hold]), float32 inputs and inference outputs, and manifest.json with every parameter and constant.
Deterministic: fixed Keras seeds and numpy default_rng seeds; XLA single-threaded on the CPU.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import math
import pathlib
import re
import sys
import tempfile

import jax
import numpy as np
import keras
from keras import layers

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "goldens_noise"
N = 1 << 22                 # training-output sample size per case
SHAPE = (1 << 12, 1 << 10)  # the sample as a (batch, features) input
STATS_FIELDS = ["n", "mean", "var", "m3", "m4", "frac_dropped", "frac_groups_uniform"]
f32 = np.float32


class Writer:
    def __init__(self, out: pathlib.Path):
        self.out = out
        self.cases: dict[str, dict] = {}

    def case(self, name: str, **params) -> dict:
        entry = {"params": params, "files": {}}
        self.cases[name] = entry
        return entry

    def save(self, case: str, key: str, array, dtype=np.float32) -> None:
        arr = np.ascontiguousarray(np.asarray(array), dtype=dtype)
        fname = f"{case}__{key}.npy"
        np.save(self.out / fname, arr, allow_pickle=False)
        self.cases[case]["files"][key] = {"file": fname, "shape": list(arr.shape), "dtype": arr.dtype.str}

    def finish(self) -> None:
        manifest = {
            "generator": "tests/reference/generate_noise_goldens.py",
            "versions": {"keras": keras.__version__, "jax": jax.__version__, "numpy": np.__version__,
                         "backend": keras.backend.backend()},
            "stats_fields": STATS_FIELDS,
            "cases": self.cases,
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def moments(y: np.ndarray, dropped=None, groups_uniform=float("nan")) -> np.ndarray:
    """n, mean, central moments 2..4 (float64), the fraction equal to `dropped`, the group statistic."""
    y64 = y.astype(np.float64).ravel()
    mean = y64.mean()
    d = y64 - mean
    frac = float("nan") if dropped is None else float(np.mean(y.ravel() == f32(dropped)))
    return np.array([y64.size, mean, np.mean(d * d), np.mean(d ** 3), np.mean(d ** 4), frac, groups_uniform])


def call_error(layer, x) -> str:
    try:
        layer(x, training=True)
    except Exception as e:  # noqa: BLE001 (what Keras raises is the golden)
        # Keras wraps the message in its call context with terminal colours: keep the bold core message.
        core = re.search(r"\x1b\[1m(.*?)\x1b\[0m", str(e))
        return f"{type(e).__name__}: {core.group(1) if core else str(e).splitlines()[0]}"
    return "no error"


def inference_case(w: Writer, name: str, layer) -> None:
    x = np.random.default_rng(1234).standard_normal((3, 4, 5)).astype(f32)
    y = np.asarray(layer(x, training=False))
    assert np.array_equal(x, y), name
    w.save(name, "x", x)
    w.save(name, "y_inference", y)


def gaussian_dropout(w: Writer) -> None:
    for rate in [0.1, 0.3, 0.5]:
        name = f"gaussian_dropout_r{rate}"
        layer = layers.GaussianDropout(rate, seed=101)
        stddev = math.sqrt(rate / (1.0 - rate))
        w.case(name, rate=rate, seed=101, stddev=stddev, input="ones", n=N)
        y = np.asarray(layer(np.ones(SHAPE, f32), training=True))
        w.save(name, "stats", moments(y), np.float64)
        w.save(name, "constants", [stddev], np.float64)
        inference_case(w, name, layer)
    name = "gaussian_dropout_r1"
    w.case(name, rate=1.0, training_call=call_error(layers.GaussianDropout(1.0, seed=1), np.ones((2, 3), f32)))


def gaussian_noise(w: Writer) -> None:
    for stddev in [0.1, 0.5, 1.0]:
        name = f"gaussian_noise_s{stddev}"
        layer = layers.GaussianNoise(stddev, seed=202)
        w.case(name, stddev=stddev, seed=202, input="zeros", n=N)
        y = np.asarray(layer(np.zeros(SHAPE, f32), training=True))
        w.save(name, "stats", moments(y), np.float64)
        inference_case(w, name, layer)


def alpha_dropout(w: Writer) -> None:
    alpha = 1.6732632423543772848170429916717
    scale = 1.0507009873554804934193349852946
    alpha_p = -alpha * scale
    cases = [(0.1, None, SHAPE), (0.3, None, SHAPE), (0.2, (None, 1, 16), (1 << 14, 16, 16))]
    for rate, noise_shape, shape in cases:
        name = f"alpha_dropout_r{rate}" + ("_noise_shape" if noise_shape else "")
        layer = layers.AlphaDropout(rate, noise_shape=noise_shape, seed=303)
        a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * rate
        x = np.random.default_rng(7).standard_normal(shape).astype(f32)
        y = np.asarray(layer(x, training=True))
        # The dropped value as Keras' float32 arithmetic produces it: the most frequent output.
        values, counts = np.unique(y, return_counts=True)
        dropped = values[np.argmax(counts)]
        groups = float("nan")
        if noise_shape:
            drop = y == dropped
            groups = float(np.mean(np.all(drop, axis=1) | np.all(~drop, axis=1)))  # one draw per (n, 1, c)
        w.case(name, rate=rate, seed=303, noise_shape=list(noise_shape) if noise_shape else None,
               input_shape=list(shape), input="standard normal, default_rng(7)", n=int(np.prod(shape)),
               alpha=alpha, scale=scale, alpha_p=alpha_p, a=a, b=b, dropped_exact=a * alpha_p + b,
               dropped_float32=float(dropped))
        w.save(name, "stats", moments(y, dropped, groups), np.float64)
        w.save(name, "constants", [alpha_p, a, b, a * alpha_p + b, dropped], np.float64)
        inference_case(w, name, layer)
    w.case("alpha_dropout_r1", rate=1.0,
           training_call=call_error(layers.AlphaDropout(1.0, seed=1), np.ones((2, 3), f32)))


def generate(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    w = Writer(out)
    gaussian_dropout(w)
    gaussian_noise(w)
    alpha_dropout(w)
    w.finish()


def check(reference: pathlib.Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp)
        generate(fresh)
        bad = 0
        for f in sorted(p.name for p in fresh.iterdir()):
            if not (reference / f).exists() or (reference / f).read_bytes() != (fresh / f).read_bytes():
                bad += 1
                print(f"differs: {f}")
        print(f"{len(list(fresh.iterdir()))} files, {bad} differ")
        return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="regenerate into a temporary folder and compare")
    args = parser.parse_args()
    if args.check:
        return check(args.out)
    generate(args.out)
    print(f"wrote {len(list(args.out.iterdir()))} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
