"""Fashion-MNIST as arrays: the prepared tfds splits read into memory, the validation
split, and small transforms (fixed binarization, unit interval, class names).

Preparing and verifying the raw files is fvae.data.sources; `load` prepares once through
it. TensorFlow is imported lazily: importing `fvae.data` stays cheap.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fvae.data import sources
from fvae.data.sources import DATASET_NAME, import_tfds
from fvae.errors import ConfigError, DataError

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (28, 28, 1)


class Dataset(NamedTuple):
    """Images (N, 784) or (N, 28, 28, 1), uint8, and their int32 class labels (N,), or None
    where no labels are wanted (unconditional models read none).

    A NamedTuple, hence a pytree: `jax.device_put(dataset, sharding)` places both arrays,
    and jitted functions take it as one argument.
    """

    images: Any
    labels: Any = None

    @property
    def num_examples(self) -> int:
        return self.images.shape[0]

    def take(self, n: int) -> Dataset:
        """The first n examples."""
        return Dataset(self.images[:n], None if self.labels is None else self.labels[:n])


def as_dataset(images_or_dataset) -> Dataset:
    """A Dataset as it is; bare images become a Dataset without labels."""
    if isinstance(images_or_dataset, Dataset):
        return images_or_dataset
    return Dataset(images_or_dataset)


@dataclasses.dataclass(frozen=True)
class Splits:
    """The three splits, each a Dataset of uint8 images and int32 labels."""

    train: Dataset
    val: Dataset
    test: Dataset


def load_split(data_dir: Path, split: str) -> Dataset:
    """Reads a prepared split as uint8 images (N, 28, 28, 1) and int32 labels (N,).

    N is the number of examples the tfds builder declares for the split (60,000 and
    10,000 for the real data; whatever `tfds.testing.mock_data` generates under it).
    """
    tfds = import_tfds()
    builder = tfds.builder(DATASET_NAME, data_dir=str(data_dir))
    examples = builder.as_dataset(split=split, shuffle_files=False)
    count = int(examples.cardinality())
    if count <= 0:
        raise DataError(f"Prepared split {split!r} in {data_dir} declares no examples ({count}). "
                        f"Delete {data_dir / DATASET_NAME} and run again to re-prepare it.")
    arrays = tfds.as_numpy(examples.batch(count).get_single_element())
    images, labels = arrays["image"], arrays["label"].astype(np.int32)
    if images.shape != (count, *IMAGE_SHAPE) or images.dtype != np.uint8 or labels.shape != (count,):
        raise DataError(f"Prepared split {split!r} in {data_dir} has images {images.shape} {images.dtype} and "
                        f"labels {labels.shape}, expected ({count}, 28, 28, 1) uint8 and ({count},). "
                        f"Delete {data_dir / DATASET_NAME} and run again to re-prepare it.")
    return Dataset(images, labels)


def split_validation(train: Dataset, val_size: int, seed: int) -> tuple[Dataset, Dataset]:
    """Deterministically (by seed) holds out `val_size` training examples: (train, val)."""
    n = train.num_examples
    if not 0 < val_size < n:
        raise ConfigError(f"data.val_size must be in 1..{n - 1} (there are {n} training images), got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    val, kept = np.sort(order[:val_size]), np.sort(order[val_size:])
    return Dataset(train.images[kept], train.labels[kept]), Dataset(train.images[val], train.labels[val])


class StoredSplits(NamedTuple):
    """Fashion-MNIST's two splits as stored: all 60,000 training images (no validation held
    out) and the 10,000 test images, each a Dataset of grey uint8 images and int32 labels."""

    train: Dataset
    test: Dataset


def load_stored(data_dir: str | os.PathLike | None = None, manual_dir: str | os.PathLike | None = None,
                *, flatten: bool = True) -> StoredSplits:
    """Prepares (once) and reads the stored train and test splits; flatten: images as (N, 784)
    for MLP models, else (N, 28, 28, 1)."""
    data_dir = sources.prepare(data_dir, manual_dir)  # Through the module: tests serve mock data.
    train, test = load_split(data_dir, "train"), load_split(data_dir, "test")
    if flatten:
        train, test = (Dataset(d.images.reshape(d.num_examples, -1), d.labels) for d in (train, test))
    return StoredSplits(train, test)


def split(stored: StoredSplits, *, val_size: int = 5000, seed: int = 0, train_subset: int = 0) -> Splits:
    """train/val/test from the stored splits: `val_size` training images held out by `seed`
    (split_validation); train_subset: if > 0, keep only that many training images (after the
    validation split; for quick runs and tests). Validation and test sets are never subsampled
    by it, except that val_size itself is configurable."""
    train, val = split_validation(stored.train, val_size, seed)
    if train_subset:
        train = train.take(train_subset)
    return Splits(train, val, stored.test)


def load(data_dir: str | os.PathLike | None = None, manual_dir: str | os.PathLike | None = None,
         *, val_size: int = 5000, seed: int = 0, flatten: bool = True, train_subset: int = 0) -> Splits:
    """Prepares (once) and loads train/val/test as uint8 arrays: `split` of `load_stored`."""
    return split(load_stored(data_dir, manual_dir, flatten=flatten), val_size=val_size, seed=seed,
                 train_subset=train_subset)


def _normalized(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def parse_label(text: str | int) -> int:
    """A class given as an index (0-9) or a name ("Dress", "ankle boot", "T-shirt") -> its index.

    Raises ConfigError naming every accepted class when the text matches none.
    """
    value = str(text).strip()
    if value.isdigit() and int(value) < NUM_CLASSES:
        return int(value)
    wanted = _normalized(value)
    for index, name in enumerate(CLASS_NAMES):
        if wanted and wanted in (_normalized(name), *(_normalized(part) for part in name.split("/"))):
            return index
    choices = ", ".join(f"{i}={name}" for i, name in enumerate(CLASS_NAMES))
    raise ConfigError(f"unknown class {text!r}: give an index 0-{NUM_CLASSES - 1} or a name ({choices}); "
                      "case, spaces and dashes do not matter")


def binarize_fixed(images: np.ndarray, seed: int | Sequence[int]) -> np.ndarray:
    """One fixed binarization of uint8 images: each pixel becomes 255 with probability
    intensity / 255, else 0 (uint8, same shape). The same seed gives the same bits."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(images.shape) < images / 255.0, 255, 0).astype(np.uint8)


def to_unit_interval(images):
    """uint8 pixels -> float32 in [0, 1]; float images are taken as already in [0, 1].
    Works on numpy and jax arrays (also inside jit)."""
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32) / 255.0
    return images
