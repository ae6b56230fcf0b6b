"""fvae's benchmark models written in Keras 3 on JAX, as a reference a user can run and compare.

    .venv-peers/bin/python benchmarks/peers/keras_vae.py --model mlp500 [--epochs 3] [--json]

The models, loss, optimizer and data of torch_vae.py (its docstring), written the way the Keras
VAE example does: a sampling layer that adds the KL with `add_loss`, a per-image reconstruction
loss, `model.fit` (jit-compiled, XLA), batch 128, Adam 1e-3. It prints images/s over the timed
epochs (after one warm-up epoch that compiles); --json prints one JSON line instead.
"""

from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import arguments, report, synthetic_images  # noqa: E402
from keras import layers, ops  # noqa: E402


class Sampling(layers.Layer):
    """z = mean + exp(logvar / 2) * eps from a (mean, logvar) pair; adds the batch-mean KL to N(0, I)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed = keras.random.SeedGenerator(0)

    def call(self, moments):
        mean, logvar = ops.split(moments, 2, axis=-1)
        self.add_loss(ops.mean(0.5 * ops.sum(ops.square(mean) + ops.exp(logvar) - 1 - logvar, axis=-1)))
        return mean + ops.exp(0.5 * logvar) * keras.random.normal(ops.shape(mean), seed=self.seed)


def reconstruction_loss(x, logits):
    """Bernoulli negative log-likelihood of grey pixels x, summed over pixels: (B,)."""
    return ops.sum(ops.softplus(logits) - x * logits, axis=-1)


def build(name: str) -> keras.Model:
    x = keras.Input((784,))
    if name == "mlp500":
        moments = layers.Dense(2 * 20)(layers.Dense(500, activation="relu")(x))
        z = Sampling()(moments)
        logits = layers.Dense(784)(layers.Dense(500, activation="relu")(z))
        return keras.Model(x, logits)
    h = layers.Reshape((28, 28, 1))(x)
    h = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Dense(16, activation="relu")(layers.Flatten()(h))
    z = Sampling()(layers.Dense(2 * 2)(h))
    h = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation="relu")(z))
    for channels in (64, 32):
        if name == "conv_chollet":
            h = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="relu")(h)
        else:  # conv_2d: a conv to 4x the channels, then depth to space.
            h = layers.Conv2D(4 * channels, 3, padding="same")(h)
            h = layers.Activation("relu")(_depth_to_space(h))
    logits = layers.Flatten()(layers.Conv2D(1, 3, padding="same")(h))
    return keras.Model(x, logits)


def _depth_to_space(h):
    """(B, H, W, 4C) -> (B, 2H, 2W, C)."""
    _, height, width, channels = ops.shape(h)
    h = ops.reshape(h, (-1, height, width, 2, 2, channels // 4))
    return ops.reshape(ops.transpose(h, (0, 1, 3, 2, 4, 5)), (-1, 2 * height, 2 * width, channels // 4))


MODELS = ("conv_2d", "conv_chollet", "mlp500")


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.begin = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.begin)

    def on_train_begin(self, logs=None):
        self.seconds = []


def train(name: str, epochs: int, train_images: int, batch_size: int) -> dict:
    keras.utils.set_random_seed(0)
    images = synthetic_images(train_images).astype(np.float32) / 255
    images = images[:train_images // batch_size * batch_size]  # Whole batches only, as fvae and torch_vae.py.
    model = build(name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=reconstruction_loss)
    timer = EpochTimer()
    history = model.fit(images, images, batch_size=batch_size, epochs=epochs + 1, shuffle=True, verbose=0,
                        callbacks=[timer])
    timed = timer.seconds[1:]
    return {"peer": "keras_jax", "model": name, "batch_size": batch_size, "epochs_timed": epochs,
            "images_per_second": len(images) * len(timed) / sum(timed), "seconds_per_epoch": timed,
            "final_loss": float(history.history["loss"][-1]), "keras": keras.__version__,
            "backend": keras.backend.backend(), "machine": platform.machine()}


def main() -> None:
    args = arguments(__doc__.split("\n")[0], MODELS, "mlp500")
    result = train(args.model, args.epochs, args.train_images, args.batch_size)
    report(result, args.json, f"{args.model}: {result['images_per_second']:,.0f} images/s "
           f"(Keras {result['keras']} on {result['backend']})")


if __name__ == "__main__":
    main()
