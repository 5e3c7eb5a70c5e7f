#!/usr/bin/env python3
"""Keras 3 goldens for dropnet's losses and metrics (issue 24).

Rerun in one command, from the repository root:

    bash tests/reference/generate_loss_goldens.sh            # rewrite tests/reference/goldens_loss/
    bash tests/reference/generate_loss_goldens.sh --check    # regenerate into a temp dir, compare

(the wrapper uses the pinned virtual environment of generate_goldens.sh: .venv-keras/ at the repository
root, or the one named by VENV_KERAS). Read by tests/cpu/test_keras_losses.cpp.

Per case (a loss, from_logits or not, a prediction y_pred and targets y_true), with Keras' loss object at its
default reduction ("sum_over_batch_size"):
  loss        the mean loss (float32 scalar)
  per_sample  the loss with reduction=None (Keras' values before the reduction)
  grad        d loss / d y_pred, by jax.grad through the Keras loss object
  metric      the mean of the metric Keras' compile() would attach for "accuracy" with these shapes
              (compile_utils.get_metric: binary for a last axis of 1, sparse for class-index targets, else
              categorical) and, where it applies, of "mae": [accuracy, mae] (nan where not computed)
and the inputs themselves (y_pred, y_true; class indices stored as float32, as dropnet takes them).

Edge inputs: probabilities exactly 0 and 1 (clipped to [1e-7, 1 - 1e-7] by Keras), rows of probabilities not
summing to 1 (categorical: divided by their sum first), logits of magnitude 100 and 1e4 (from_logits: computed
stably), soft targets, and an output of rank 3 (the loss over the last axis, the mean over the other two).
Deterministic: numpy default_rng seeds; XLA single-threaded on the CPU.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import pathlib
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import keras

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "goldens_loss"
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
            "generator": "tests/reference/generate_loss_goldens.py",
            "versions": {"keras": keras.__version__, "jax": jax.__version__, "numpy": np.__version__,
                         "backend": keras.backend.backend()},
            "cases": self.cases,
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


LOSSES = {
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "mean_squared_error": keras.losses.MeanSquaredError,
}


def accuracy_metric(y_true, y_pred) -> keras.metrics.Metric:
    # compile_utils.is_binary_or_sparse_categorical
    is_binary = y_pred.shape[-1] == 1
    is_sparse = len(y_true.shape) < len(y_pred.shape) or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1)
    if is_binary:
        return keras.metrics.BinaryAccuracy()
    if is_sparse:
        return keras.metrics.SparseCategoricalAccuracy()
    return keras.metrics.CategoricalAccuracy()


def metric_value(metric: keras.metrics.Metric, y_true, y_pred) -> float:
    metric.update_state(y_true, y_pred)
    return float(metric.result())


def add_case(w: Writer, name: str, loss: str, from_logits: bool, y_pred: np.ndarray, y_true: np.ndarray,
             what: str) -> None:
    kwargs = {} if loss == "mean_squared_error" else {"from_logits": from_logits}
    w.case(name, loss=loss, from_logits=from_logits, inputs=what)
    mean_loss = LOSSES[loss](**kwargs)
    per_sample = LOSSES[loss](reduction=None, **kwargs)
    value = mean_loss(y_true, y_pred)
    grad = jax.grad(lambda p: mean_loss(y_true, p))(jnp.asarray(y_pred))
    sparse = loss.startswith("sparse")
    acc = metric_value(accuracy_metric(y_true, y_pred), y_true, y_pred)
    mae = float("nan") if sparse else metric_value(keras.metrics.MeanAbsoluteError(), y_true, y_pred)
    w.save(name, "y_pred", y_pred)
    w.save(name, "y_true", y_true.astype(f32))
    w.save(name, "loss", [float(value)])
    w.save(name, "per_sample", per_sample(y_true, y_pred))
    w.save(name, "grad", grad)
    w.save(name, "metric", [acc, mae], np.float64)


def probabilities(rng, n, c) -> np.ndarray:
    p = rng.uniform(0.05, 1.0, (n, c)).astype(f32)
    return (p / p.sum(-1, keepdims=True)).astype(f32)


def categorical(w: Writer) -> None:
    rng = np.random.default_rng(2401)
    n, c = 6, 5
    labels = rng.integers(0, c, n)
    onehot = np.eye(c, dtype=f32)[labels]
    # Probabilities: normalised rows, rows that do not sum to 1, exact 0 and 1 (on and off the target).
    p = probabilities(rng, n, c)
    p[1] *= f32(1.7)                      # sums to 1.7: divided by the sum first
    p[2] = 0.0
    p[2, labels[2]] = 1.0                 # the target probability exactly 1
    p[3] = 0.25
    p[3, labels[3]] = 0.0                 # the target probability exactly 0
    p[3, (labels[3] + 1) % c] = 0.0
    soft = rng.uniform(0.0, 1.0, (n, c)).astype(f32)
    soft = (soft / soft.sum(-1, keepdims=True)).astype(f32)
    for sparse in (False, True):
        loss = "sparse_categorical_crossentropy" if sparse else "categorical_crossentropy"
        short = "scce" if sparse else "cce"
        y_true = labels.astype(np.int32) if sparse else onehot
        add_case(w, f"{short}_probs", loss, False, p, y_true, "probabilities with exact 0 and 1, unnormalised rows")
        z = rng.standard_normal((n, c)).astype(f32) * f32(3)
        z[1] = [100, -100, 0, 50, -50]
        z[2] = [1e4, -1e4, 0, 5e3, -1]
        z[3] = -1e4
        z[3, 0] = 1e4
        add_case(w, f"{short}_logits", loss, True, z, y_true, "logits of magnitude up to 1e4")
    add_case(w, "cce_probs_soft", "categorical_crossentropy", False, probabilities(rng, n, c), soft, "soft targets")
    z = rng.standard_normal((n, c)).astype(f32) * f32(4)
    add_case(w, "cce_logits_soft", "categorical_crossentropy", True, z, soft, "soft targets")
    # Rank 3: (N, 2, C), the loss over the last axis, the mean over N and the middle axis.
    z3 = rng.standard_normal((3, 2, c)).astype(f32) * f32(2)
    labels3 = rng.integers(0, c, (3, 2))
    add_case(w, "cce_logits_rank3", "categorical_crossentropy", True, z3, np.eye(c, dtype=f32)[labels3], "rank 3")
    add_case(w, "scce_logits_rank3", "sparse_categorical_crossentropy", True, z3, labels3.astype(np.int32), "rank 3")


def binary(w: Writer) -> None:
    rng = np.random.default_rng(2402)
    n, c = 6, 4
    t = rng.integers(0, 2, (n, c)).astype(f32)
    t[5] = [0.3, 0.7, 0.5, 0.0]           # soft targets
    p = rng.uniform(0.02, 0.98, (n, c)).astype(f32)
    p[1] = [0.0, 1.0, 0.0, 1.0]           # exact 0 and 1
    t[1] = [0.0, 1.0, 1.0, 0.0]           # right and wrong
    add_case(w, "bce_probs", "binary_crossentropy", False, p, t, "probabilities with exact 0 and 1, soft targets")
    z = rng.standard_normal((n, c)).astype(f32) * f32(3)
    z[1] = [100, -100, 1e4, -1e4]
    z[2] = [-1e4, 1e4, 100, -100]
    t[2] = [1.0, 0.0, 0.0, 1.0]
    add_case(w, "bce_logits", "binary_crossentropy", True, z, t, "logits of magnitude up to 1e4, soft targets")
    # One output unit (N, 1): accuracy resolves to binary_accuracy.
    p1 = rng.uniform(0.0, 1.0, (n, 1)).astype(f32)
    p1[0, 0] = 0.5                        # not above the threshold
    t1 = rng.integers(0, 2, (n, 1)).astype(f32)
    add_case(w, "bce_probs_unit", "binary_crossentropy", False, p1, t1, "one unit")


def mse(w: Writer) -> None:
    rng = np.random.default_rng(2403)
    y = rng.standard_normal((5, 3)).astype(f32)
    t = rng.standard_normal((5, 3)).astype(f32)
    add_case(w, "mse", "mean_squared_error", False, y, t, "random")
    y3 = rng.standard_normal((2, 4, 3)).astype(f32)
    t3 = rng.standard_normal((2, 4, 3)).astype(f32)
    add_case(w, "mse_rank3", "mean_squared_error", False, y3, t3, "rank 3")


def generate(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    w = Writer(out)
    categorical(w)
    binary(w)
    mse(w)
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
