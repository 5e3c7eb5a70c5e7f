#!/usr/bin/env python3
"""Keras 3 goldens for dropnet's BatchNormalization, AveragePooling2D and GlobalAveragePooling2D (issue 24),
read by tests/cpu/test_norm_pool_keras.cpp (and the emulated CUDA suite's tests/cuda/test_norm_pool_ops.cpp).

Rerun in one command, from the repository root (the venv of generate_goldens.sh, keras 3.15.1 on jax 0.10.2):

    KERAS_BACKEND=jax JAX_PLATFORMS=cpu .venv-keras/bin/python tests/reference/generate_norm_pool_goldens.py

Writes tests/reference/goldens_norm_pool/ (deterministic: fixed seeds; float32 unless noted). G is a fixed
random upstream gradient; gradients are those of sum(output * G), taken with jax.grad through the layer's
own call (Layer.stateless_call, explicit weights), in training mode for BatchNormalization.

  bn_<case>__x{0,1,2}.npy      three inputs, fed to one layer in three training calls in turn
  bn_<case>__gamma, __beta, __moving_mean0, __moving_variance0   the weights before the first call
  bn_<case>__g.npy             the upstream gradient (x0's shape)
  bn_<case>__y_train.npy       the first training call's output (batch statistics)
  bn_<case>__dx, __dgamma, __dbeta   gradients of sum(y_train * g)
  bn_<case>__moving_mean{1,2,3}, __moving_variance{1,2,3}   the moving statistics after each training call
  bn_<case>__y_infer.npy       inference output on x0 with the statistics after the third call
  cases: "image" (x (4, 5, 6, 3), offset and scaled so normalisation matters) and "flat" (x (7, 5));
  momentum 0.9 in "image" (so three steps move the statistics visibly), Keras' default 0.99 in "flat".
  avgpool_<case>__x, __y, __g, __dx    AveragePooling2D forward and input gradient; cases in CASES below
  gap__x, __y, __g, __dx               GlobalAveragePooling2D
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

import pathlib

import jax
import numpy as np
from keras import layers

OUT = pathlib.Path(__file__).resolve().parent / "goldens_norm_pool"
rng = np.random.default_rng(24)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def save(name, array):
    np.save(OUT / f"{name}.npy", f32(array), allow_pickle=False)


def batch_norm_case(name, shape, momentum, offset, scale):
    xs = [f32(offset + scale * rng.standard_normal(shape)) for _ in range(3)]
    c = shape[-1]
    gamma = f32(rng.uniform(0.5, 1.5, c))
    beta = f32(rng.uniform(-0.5, 0.5, c))
    mean0 = f32(rng.uniform(-0.2, 0.2, c))
    var0 = f32(rng.uniform(0.5, 1.5, c))
    g = f32(rng.standard_normal(shape))
    layer = layers.BatchNormalization(momentum=momentum)  # axis=-1, epsilon=1e-3
    layer.build(shape)
    assert [w.path.split("/")[-1] for w in layer.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    trainable = [gamma, beta]
    fixed = [mean0, var0]

    def loss(tr, x):
        y, _ = layer.stateless_call(tr, fixed, x, training=True)
        return (y * g).sum()

    y_train, _ = layer.stateless_call(trainable, fixed, xs[0], training=True)
    (dgamma, dbeta), dx = jax.grad(loss, argnums=(0, 1))(trainable, xs[0])
    for i, x in enumerate(xs):
        save(f"bn_{name}__x{i}", x)
    for key, v in [("gamma", gamma), ("beta", beta), ("moving_mean0", mean0), ("moving_variance0", var0), ("g", g),
                   ("y_train", y_train), ("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta)]:
        save(f"bn_{name}__{key}", v)
    state = fixed
    for step, x in enumerate(xs, start=1):
        _, state = layer.stateless_call(trainable, state, x, training=True)
        save(f"bn_{name}__moving_mean{step}", state[0])
        save(f"bn_{name}__moving_variance{step}", state[1])
    y_infer, _ = layer.stateless_call(trainable, state, xs[0], training=False)
    save(f"bn_{name}__y_infer", y_infer)
    print(f"bn_{name}: moving_mean after 3 steps {np.asarray(state[0])}")


# name, pool_size, strides (None: pool_size), padding; input (2, 7, 9, 3)
CASES = [
    ("p2_valid", (2, 2), None, "valid"),
    ("p3_s2_same", (3, 3), (2, 2), "same"),
    ("p2x3_s1x2_valid", (2, 3), (1, 2), "valid"),
    ("p3_s1_same", (3, 3), (1, 1), "same"),
    ("p2_s3_same", (2, 2), (3, 3), "same"),
]


def pooling_case(name, layer, shape):
    x = f32(rng.standard_normal(shape))
    y, _ = layer.stateless_call([], [], x)
    g = f32(rng.standard_normal(np.asarray(y).shape))
    dx = jax.grad(lambda v: (layer.stateless_call([], [], v)[0] * g).sum())(x)
    for key, v in [("x", x), ("y", y), ("g", g), ("dx", dx)]:
        save(f"{name}__{key}", v)


def main():
    OUT.mkdir(exist_ok=True)
    batch_norm_case("image", (4, 5, 6, 3), 0.9, 2.0, 3.0)
    batch_norm_case("flat", (7, 5), 0.99, -1.0, 0.5)
    for name, pool, strides, padding in CASES:
        layer = layers.AveragePooling2D(pool, strides=strides, padding=padding)
        layer.build((2, 7, 9, 3))
        pooling_case(f"avgpool_{name}", layer, (2, 7, 9, 3))
    gap = layers.GlobalAveragePooling2D()
    gap.build((2, 5, 7, 3))
    pooling_case("gap", gap, (2, 5, 7, 3))


if __name__ == "__main__":
    main()
