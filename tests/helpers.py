"""Small models, synthetic data and data-file surgery shared by the tests."""

import atexit
import contextlib
import gzip
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from fvae import compute, data
from fvae.data import sources
from fvae.models import VAE, Decoder, Encoder


def small_model() -> VAE:
    return VAE(Encoder((64,), 8), Decoder((64,), (784,)))


def fake_images(n: int, seed: int = 0) -> np.ndarray:
    """uint8 'images' with structure (a few prototypes plus noise), so a VAE can learn them."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, (4, 784))
    noise = rng.integers(-20, 21, (n, 784))
    return np.clip(prototypes[rng.integers(0, 4, n)] + noise, 0, 255).astype(np.uint8)


def new_state(seed: int = 0, lr: float = 1e-3) -> compute.TrainState:
    return compute.create_train_state(small_model(), jax.random.key(seed), fake_images(1), lr)


def bound_slack(state: compute.TrainState, images, labels, num_samples: int, sigmas: float = 4.0) -> float:
    """How far a mean K-sample IWAE estimate of -log p(x) may exceed the mean ELBO estimate on the
    same images by Monte Carlo noise alone: `sigmas` standard errors of the per-image difference
    (estimated here with fresh draws; in expectation the difference is <= 0)."""
    from fvae.compute.bounds import iwae_log_likelihoods

    chunk = min(num_samples, 10)
    iwae = iwae_log_likelihoods(state, data.Dataset(images, labels), jax.random.key(101), num_samples, 100, chunk)
    elbo = iwae_log_likelihoods(state, data.Dataset(images, labels), jax.random.key(102), 1, 100, 1)
    difference = np.asarray(elbo - iwae, np.float64)  # -log p(x) by IWAE minus by the ELBO, per image
    return sigmas * float(np.std(difference, ddof=1)) / np.sqrt(len(difference))


def assert_same_training(a, b, learning_rate: float, steps: int) -> None:
    """Asserts that two runs of the same training differ by summation order only.

    Adam divides each update by the gradient's own scale, so where a gradient is near zero a
    different summation order can change that one weight's update by up to Adam's largest step,
    (1 - b1) / sqrt(1 - b2) ~ 3.2 learning rates: a tight bound on every weight would fail by
    chance. A real difference (a gradient not averaged over all images, another batch order)
    moves most weights instead.
    """
    diffs = np.concatenate([np.abs(np.asarray(x) - np.asarray(y)).ravel()
                            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)])
    assert np.isfinite(diffs).all(), "a weight is not finite"
    largest = 3.2 * learning_rate * steps
    assert diffs.max() <= largest, f"a weight moved by {diffs.max():.3g}, more than Adam can in {steps} steps"
    assert np.mean(diffs > 1e-5) < 1e-4, f"{np.mean(diffs > 1e-5):.2%} of the weights differ by more than 1e-5"


def params_equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))


def debian_style_copy(src: Path, dst: Path) -> Path:
    """Copies the four files as Debian ships them: same deflate data, gzip header without
    the original file name and with another mtime (so the archive checksums differ)."""
    dst.mkdir(parents=True, exist_ok=True)
    for source in sources.SOURCE_FILES.values():
        raw = (src / source.name).read_bytes()
        assert raw[3] & 0x08  # FNAME flag set in the originals.
        body_start = raw.index(b"\0", 10) + 1
        header = raw[:3] + bytes([raw[3] & ~0x08]) + struct.pack("<I", 1591315200) + raw[8:10]
        (dst / source.name).write_bytes(header + raw[body_start:])
    return dst


def rewrite_idx(folder: Path, name: str, edit) -> None:
    """Decompresses one file, applies edit(bytearray), recompresses it in place."""
    path = folder / name
    payload = bytearray(gzip.decompress(path.read_bytes()))
    edit(payload)
    path.write_bytes(gzip.compress(bytes(payload), compresslevel=1, mtime=0))


# Fashion-MNIST stand-in for tests that exercise the pipeline, not the data: tfds.testing.mock_data
# serves these splits through the real tfds builder and our loader.
MOCK_SIZES = {"train": 2000, "test": 1000}
MOCK_DATA_DIR = Path("mock-fashion-mnist")  # What configs name as data_dir under the mock (never created).


def class_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images (n, 28, 28, 1) with int64 labels: the label's fixed prototype (the same for
    every split) plus noise, so a VAE can learn them and a probe can tell the classes apart.
    Clipping leaves black and white pixels, as in the real data."""
    prototypes = np.random.default_rng(1234).integers(0, 256, (10, 28, 28, 1))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    noise = rng.integers(-60, 61, (n, 28, 28, 1))
    return np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8), labels.astype(np.int64)


@contextlib.contextmanager
def mock_fashion_mnist(sizes: dict[str, int] = MOCK_SIZES):
    """Within: tfds' fashion_mnist serves `class_images` (train and test drawn with different seeds)
    through tfds.testing.mock_data, and fvae prepares nothing (mock_data ignores data_dir)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        del self, decoders, read_config, shuffle_files
        name = str(split)
        images, labels = class_images(sizes[name], seed=zlib.crc32(name.encode()))
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset), \
            mock.patch.object(sources, "prepare", lambda data_dir=None, manual_dir=None: Path(data_dir or ".")), \
            mock.patch.object(sources, "resolve_data_dir", lambda data_dir=None: _mock_data_root()):
        yield


_MOCK_ROOT = []


def _mock_data_root() -> Path:
    """Where files kept "in the data directory" go under the mock (the sample-quality classifier
    trained on the mock data): one temporary folder per process, removed when it exits."""
    if not _MOCK_ROOT:
        _MOCK_ROOT.append(Path(tempfile.mkdtemp(prefix="fvae-mock-data-")))
        atexit.register(shutil.rmtree, _MOCK_ROOT[0], True)
    return _MOCK_ROOT[0]
