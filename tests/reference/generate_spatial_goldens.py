#!/usr/bin/env python3
"""Keras 3 goldens for dropnet's SpatialDropout1D/2D/3D (issue 15), read by tests/cpu/test_spatial_dropout.cpp.

Rerun in one command, from the repository root (the venv of generate_goldens.sh, keras 3.15.1 on jax 0.10.2):

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu .venv-keras/bin/python tests/reference/generate_spatial_goldens.py

Writes tests/reference/goldens_spatial/ (deterministic: fixed seeds, rerunning rewrites the same bytes):
  <layer>__x.npy, <layer>__y.npy    inference: a random input and Keras' output with training=False (the identity)
  <layer>__stats.npy                float64 [rate, channel_draws, dropped_channels, kept_value, all_or_nothing,
                                    input_rank]: Keras' training outputs on a constant input of ones over
                                    `steps` calls of one seeded layer (its SeedGenerator moves on each call):
                                    channels (sample, channel) drawn, channels zeroed, the value of every kept
                                    element (1 / (1 - rate) in float32; NaN if kept values differ), and 1 if
                                    every channel was all zeros or all kept_value
  <layer>__ndim_error.txt           Keras' message for an input of the wrong rank (InputSpec)
  rate_error.txt                    Keras' message for SpatialDropout2D(1.5)
DropBlock2D has no Keras-core layer: tests/cpu/test_dropblock.cpp checks it against the paper's formulas.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

import pathlib

import numpy as np
import keras
from keras import layers

OUT = pathlib.Path(__file__).resolve().parent / "goldens_spatial"

# name, class, rate, training input shape (batch included), steps, inference input shape, wrong-rank shape
CASES = [
    ("spatial_dropout1d", layers.SpatialDropout1D, 0.3, (2000, 3, 250), 4, (2, 5, 3), (2, 5)),
    ("spatial_dropout2d", layers.SpatialDropout2D, 0.5, (1000, 2, 2, 250), 8, (2, 4, 3, 5), (2, 8, 8)),
    ("spatial_dropout3d", layers.SpatialDropout3D, 0.2, (500, 2, 2, 2, 200), 10, (2, 3, 2, 4, 3), (2, 4, 4, 4)),
]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(15)
    for name, cls, rate, shape, steps, infer_shape, bad_shape in CASES:
        layer = cls(rate, seed=1234)
        x = rng.uniform(-1.0, 1.0, infer_shape).astype(np.float32)
        y = np.asarray(layer(x, training=False))
        np.save(OUT / f"{name}__x.npy", x, allow_pickle=False)
        np.save(OUT / f"{name}__y.npy", y, allow_pickle=False)

        ones = np.ones(shape, np.float32)
        spatial_axes = tuple(range(1, len(shape) - 1))
        draws = dropped = 0
        kept_values = set()
        all_or_nothing = True
        for _ in range(steps):
            out = np.asarray(layer(ones, training=True))
            lo, hi = out.min(axis=spatial_axes), out.max(axis=spatial_axes)  # (N, C) per channel
            all_or_nothing &= bool(np.all(lo == hi))
            draws += lo.size
            dropped += int(np.sum(hi == 0))
            kept_values.update(np.unique(out[out != 0]).tolist())
        kept = kept_values.pop() if len(kept_values) == 1 else float("nan")
        stats = np.array([rate, draws, dropped, kept, 1.0 if all_or_nothing else 0.0, len(shape)], np.float64)
        np.save(OUT / f"{name}__stats.npy", stats, allow_pickle=False)
        print(f"{name}: {dropped} of {draws} channels dropped ({dropped / draws:.5f}, rate {rate}), kept value {kept!r}")

        try:
            keras.Sequential([keras.Input(bad_shape[1:]), cls(rate, name=name)])
            raise SystemExit(f"{name}: Keras accepted an input of rank {len(bad_shape)}")
        except ValueError as e:
            (OUT / f"{name}__ndim_error.txt").write_text(str(e).strip() + "\n")
    try:
        layers.SpatialDropout2D(1.5)
        raise SystemExit("Keras accepted rate=1.5")
    except ValueError as e:
        (OUT / "rate_error.txt").write_text(str(e).strip() + "\n")


if __name__ == "__main__":
    main()
