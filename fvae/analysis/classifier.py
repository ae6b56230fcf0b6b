"""A Fashion-MNIST classifier that fvae trains itself: the feature space of the sample-quality
score (fvae.analysis.sample_scores) and the judge of class-conditional samples.

A small CNN (two stride-2 3x3 convs, 28 -> 14 -> 7, a dense layer of 128 features, 10
logits), trained with Adam on all 60,000 training images (grey, in [0, 1]). Training is a
pure function of the images and the seed, so the same data and seed give the same
classifier on the same machine, and slightly different ones on different CPUs. The score
uses the weights fvae ships (`shipped_classifier`, checked against their SHA-256), so it
means the same on every machine; `cached_classifier` trains one afresh (kept in the data
directory) only when asked to.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from fvae.data import NUM_CLASSES, Dataset, to_unit_interval
from fvae.errors import DamagedFileError
from fvae.files import DIGEST_FILE, verify_digest, write_bytes, write_json
from fvae.models.conv_layers import Conv3x3

Params = dict
# Part of the cache file's name: changing the network or its training must change it, so
# that caches made by other code are never read.
CLASSIFIER_VERSION = 1


class Classifier(nn.Module):
    """Images (B, 784) or (B, 28, 28, 1) in [0, 1] -> (logits (B, 10), features (B, F))."""

    features: int = 128

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x.reshape(x.shape[0], 28, 28, 1)
        h = nn.relu(Conv3x3(32, 2, name="conv_0")(h))  # (B, 14, 14, 32)
        h = nn.relu(Conv3x3(64, 2, name="conv_1")(h))  # (B, 7, 7, 64)
        features = nn.relu(nn.Dense(self.features, name="features")(h.reshape(h.shape[0], -1)))
        return nn.Dense(NUM_CLASSES, name="logits")(features), features


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """How the classifier is trained; every field is part of the cache file's name."""

    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    features: int = 128

    @property
    def file_name(self) -> str:
        return (f"classifier_v{CLASSIFIER_VERSION}_seed{self.seed}_epochs{self.epochs}_batch{self.batch_size}"
                f"_lr{self.learning_rate:g}_features{self.features}.msgpack")


@functools.partial(jax.jit, static_argnames=("spec",))
def train_classifier(images: jax.Array, labels: jax.Array, spec: ClassifierSpec = ClassifierSpec()) -> Params:
    """Parameters of a Classifier trained on images (N, 784) uint8 or [0, 1] with labels (N,):
    `spec.epochs` epochs of Adam on cross-entropy, batches shuffled by fold_in(seed, epoch)
    (the N % batch_size images left over differ every epoch). One compiled call."""
    model = Classifier(spec.features)
    init_key, shuffle_key = jax.random.split(jax.random.key(spec.seed))
    params = model.init(init_key, jnp.zeros((1, 784), jnp.float32))["params"]
    tx = optax.adam(spec.learning_rate)
    steps = images.shape[0] // spec.batch_size

    def step(carry, indices):
        params, opt_state = carry

        def loss_fn(params):
            logits, _ = model.apply({"params": params}, to_unit_interval(images[indices]))
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels[indices]).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def epoch(carry, e):
        order = jax.random.permutation(jax.random.fold_in(shuffle_key, e), images.shape[0])
        return jax.lax.scan(step, carry, order[:steps * spec.batch_size].reshape(steps, spec.batch_size))[0], None

    (params, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), jnp.arange(spec.epochs))
    return params


@functools.partial(jax.jit, static_argnames=("batch_size",))
def classify(params: Params, images: jax.Array, batch_size: int = 1000) -> tuple[jax.Array, jax.Array]:
    """(logits (N, 10), features (N, F)) of images (N, 784) uint8 or [0, 1], in batches."""
    features = params["features"]["kernel"].shape[1]
    n = images.shape[0]
    batch_size = min(batch_size, n)
    padded = jnp.concatenate([images, jnp.zeros((-n % batch_size, *images.shape[1:]), images.dtype)])
    batches = padded.reshape(-1, batch_size, *images.shape[1:])

    def forward(carry: None, batch: jax.Array) -> tuple[None, tuple[jax.Array, jax.Array]]:
        return carry, Classifier(features).apply({"params": params}, to_unit_interval(batch))  # type: ignore[return-value]

    _, (logits, feats) = jax.lax.scan(forward, None, batches)
    return logits.reshape(-1, NUM_CLASSES)[:n], feats.reshape(-1, features)[:n]


def accuracy(params: Params, dataset: Dataset) -> float:
    """Fraction of `dataset`'s images whose predicted class is its label."""
    logits, _ = classify(params, jnp.asarray(dataset.images))
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == np.asarray(dataset.labels)))


# The shipped weights: cached_classifier's file for ClassifierSpec(), with the note of how,
# where and when it was trained (classifier.json) and the folder's SHA-256 digests.
SHIPPED_DIR = Path(__file__).parent / "classifier_weights"


def _template(features: int) -> Params:
    return Classifier(features).init(jax.random.key(0), jnp.zeros((1, 784), jnp.float32))["params"]


def shipped_classifier() -> Params:
    """The parameters fvae ships, after checking them against their recorded SHA-256."""
    if not (SHIPPED_DIR / DIGEST_FILE).is_file():
        raise DamagedFileError(f"{SHIPPED_DIR / DIGEST_FILE} is missing: reinstall fvae.")
    verify_digest(SHIPPED_DIR)
    features = json.loads((SHIPPED_DIR / "classifier.json").read_text())["features"]
    return serialization.from_bytes(_template(features), (SHIPPED_DIR / "classifier.msgpack").read_bytes())


def shipped_digest() -> str:
    """The first 12 hex digits of the shipped weights' SHA-256: which classifier a score used."""
    return json.loads((SHIPPED_DIR / DIGEST_FILE).read_text())["classifier.msgpack"][:12]


def cached_classifier(folder: str | Path, training_data: Callable[[], Dataset],
                      spec: ClassifierSpec = ClassifierSpec(), log=print) -> Params:
    """The classifier of `spec` from `folder`, trained on training_data() and saved there
    first if its file is missing (or unreadable). The file is written atomically, with a
    JSON note beside it of how it was made."""
    folder = Path(folder)
    path = folder / spec.file_name
    template = _template(spec.features)
    if path.is_file():
        try:
            return serialization.from_bytes(template, path.read_bytes())
        except Exception as err:  # noqa: BLE001 (any unreadable file is trained again)
            log(f"Classifier file {path} is unreadable ({err}); training it again.")
    dataset = training_data()
    log(f"Training the sample-quality classifier on {dataset.num_examples} images ({spec.epochs} epochs); "
        f"it is kept in {path}.")
    params = train_classifier(jnp.asarray(dataset.images), jnp.asarray(dataset.labels, jnp.int32), spec)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(path, serialization.to_bytes(params))
    write_json(path.with_suffix(".json"), {**dataclasses.asdict(spec), "version": CLASSIFIER_VERSION,
                                           "training_images": dataset.num_examples,
                                           "training_accuracy": accuracy(params, dataset)})
    return params


def describe(folder: str | Path, spec: ClassifierSpec = ClassifierSpec()) -> dict:
    """The JSON note saved beside a cached classifier (how it was made), or {} if none."""
    path = (Path(folder) / spec.file_name).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else {}
