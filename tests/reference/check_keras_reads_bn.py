#!/usr/bin/env python3
"""Keras reads dropnet's BatchNormalization weights (issue 24): loads a checkpoint of the seed model's BN
variant (`dropnet train --batch-norm on --save RUN.safetensors`) into the equivalent Keras 3 model by weight
name ("<layer>/<gamma|beta|moving_mean|moving_variance|kernel|bias>"), predicts the first records of a
CIFAR-10 file in inference mode, and compares with `dropnet predict` on the same file (its CSV on stdin).

    dropnet predict --weights RUN.safetensors --input test_batch.bin --records 50 --device cpu > p.csv
    KERAS_BACKEND=jax .venv-keras/bin/python tests/reference/check_keras_reads_bn.py RUN.safetensors \
        test_batch.bin < p.csv

Exits 1 when a probability differs by more than 1e-5 or a weight is missing.
"""
import csv
import json
import os
import struct
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import keras
from keras import layers


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + lo:8 + n + hi], dtype="<f4").reshape(info["shape"])
    return out


def bn_seed_model():
    conv = dict(padding="valid", use_bias=False)
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(64, (3, 3), name="conv2d", **conv),
        layers.BatchNormalization(name="batch_normalization"),
        layers.Activation("relu", name="activation"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.5),
        layers.Conv2D(64, (3, 3), name="conv2d_1", **conv),
        layers.BatchNormalization(name="batch_normalization_1"),
        layers.Activation("relu", name="activation_1"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.5),
        layers.Flatten(),
        layers.Dense(256, activation="relu", name="dense"),
        layers.Dense(10, activation="softmax", name="dense_1"),
    ])


def main():
    weights_path, records_path = sys.argv[1], sys.argv[2]
    w = read_safetensors(weights_path)
    model = bn_seed_model()
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([w[f"{layer.name}/{v.path.split('/')[-1]}"] for v in layer.weights])
    rows = list(csv.DictReader(sys.stdin))
    raw = np.fromfile(records_path, dtype=np.uint8)[: len(rows) * 3073].reshape(len(rows), 3073)
    x = raw[:, 1:].reshape(len(rows), 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    keras_p = np.asarray(model.predict(x, verbose=0))
    names = [k for k in rows[0] if k not in ("record", "label", "predicted") and not k.endswith("_std")]
    dropnet_p = np.array([[float(r[k]) for k in names] for r in rows])
    diff = float(np.max(np.abs(keras_p - dropnet_p)))
    print(f"{len(rows)} records: largest |keras - dropnet| probability difference {diff:.3g}")
    sys.exit(0 if diff <= 1e-5 else 1)


if __name__ == "__main__":
    main()
