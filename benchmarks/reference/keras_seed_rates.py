"""The seed model in Keras 3 (JAX backend), trained like `dropnet-bench sweep` trains it, to cross-check a
sweep's figures against an independent implementation.

    KERAS_BACKEND=jax python benchmarks/reference/keras_seed_rates.py \
        --data /path/to/cifar-10-batches-bin --rates 0,0.5 --epochs 3 --limit 4000 --seeds 1,2

Prints, per rate and seed, Keras' History and the test loss and accuracy. Needs keras and jax (the
.venv-keras that tests/reference uses has both).
"""
import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402


def load(files, limit):
    """Official binary layout: a label byte, then 3072 bytes of R, G, B planes; NHWC in [0, 1], one-hot."""
    raw = np.concatenate([np.fromfile(f, np.uint8).reshape(-1, 3073) for f in files])
    raw = raw[:limit] if limit else raw
    x = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype("float32") / 255
    return x, keras.utils.to_categorical(raw[:, 0], 10)


def seed_model(rate, max_norm):
    constraint = keras.constraints.MaxNorm(max_norm) if max_norm > 0 else None
    conv = dict(activation="relu", kernel_initializer="he_uniform", kernel_constraint=constraint)
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(64, 3, **conv), layers.MaxPooling2D(2), layers.Dropout(rate),
        layers.Conv2D(64, 3, **conv), layers.MaxPooling2D(2), layers.Dropout(rate),
        layers.Flatten(),
        layers.Dense(256, **conv),
        layers.Dense(10, activation="softmax"),
    ])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--rates", default="0,0.5")
    p.add_argument("--seeds", default="1")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--max-norm", type=float, default=2.0)
    p.add_argument("--validation-split", type=float, default=0.2)
    a = p.parse_args()
    x, y = load([f"{a.data}/data_batch_{i}.bin" for i in range(1, 6)], a.limit)
    xt, yt = load([f"{a.data}/test_batch.bin"], None)
    for rate in (float(r) for r in a.rates.split(",")):
        for seed in (int(s) for s in a.seeds.split(",")):
            keras.utils.set_random_seed(seed)
            model = seed_model(rate, a.max_norm)
            model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
            h = model.fit(x, y, batch_size=a.batch_size, epochs=a.epochs, validation_split=a.validation_split,
                          verbose=0)
            loss, acc = model.evaluate(xt, yt, batch_size=a.batch_size, verbose=0)
            history = {k: [round(v, 4) for v in vs] for k, vs in h.history.items()}
            print(f"rate {rate} seed {seed}: {history} test_loss {loss:.4f} test_accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
