"""Fashion-MNIST through tensorflow-datasets, prepared once and read as arrays.

Three ways to get the data, all ending in the same tfds `fashion_mnist` dataset:

* online: tfds' own download (the default when no local folder is known);
* a folder with the four original `.gz` files, given to tfds as `manual_dir`;
* Debian's `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist`),
  whose `.gz` files were recompressed: tfds' archive checksums reject them, so we
  verify the SHA-256 of the decompressed IDX bytes instead and build the same tfds
  dataset from those bytes.

tfds prepares into an `incomplete.*` folder and renames it only when it is done, so
an interrupted preparation is never read as a valid dataset.

TensorFlow is imported lazily: importing `fvae.data` stays cheap.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fvae.errors import ConfigError, UserError

DATASET_NAME = "fashion_mnist"
DATASET_VERSION = "3.0.1"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MANUAL_DIR_ENV = "FVAE_MANUAL_DIR"
DATA_DIR_ENV = "FVAE_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/tensorflow_datasets").expanduser()

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (28, 28, 1)
NUM_TRAIN, NUM_TEST = 60_000, 10_000


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One of the four original files: archive SHA-256 (what tfds checks) and IDX SHA-256."""

    name: str
    gz_sha256: str
    idx_sha256: str
    idx_size: int


SOURCE_FILES = {
    "train_data": SourceFile(
        "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016),
    "train_labels": SourceFile(
        "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008),
    "test_data": SourceFile(
        "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016),
    "test_labels": SourceFile(
        "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
}

HOW_TO_FIX = (
    "Ways to provide Fashion-MNIST:\n"
    "  1. online: let tensorflow-datasets download it (needs internet);\n"
    "  2. a folder with the four original .gz files (train-images-idx3-ubyte.gz, ...):\n"
    f"     --config.data.manual_dir=DIR or {MANUAL_DIR_ENV}=DIR;\n"
    "  3. on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist\n"
    f"     (files in {DEBIAN_DIR}; used automatically).\n"
    "Delete a corrupt file and fetch it again; prepared data lives in data_dir/fashion_mnist."
)


class DataError(UserError):
    """The data could not be found, verified or prepared; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """uint8 images (N, 784) or (N, 28, 28, 1) and int32 labels (N,) per split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Explicit value, else $FVAE_DATA_DIR, else ~/tensorflow_datasets (tfds' default)."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def resolve_manual_dir(manual_dir: str | os.PathLike | None = None) -> Path | None:
    """Explicit value, else $FVAE_MANUAL_DIR, else the Debian package folder if present."""
    chosen = manual_dir or os.environ.get(MANUAL_DIR_ENV)
    if chosen:
        path = Path(chosen).expanduser().resolve()
        if not path.is_dir():
            raise DataError(f"Manual data folder {path} does not exist.\n{HOW_TO_FIX}")
        return path
    if DEBIAN_DIR.is_dir():
        return DEBIAN_DIR
    return None


def is_prepared(data_dir: Path) -> bool:
    """True when tfds finished preparing fashion_mnist in data_dir (it writes dataset_info.json last)."""
    return (data_dir / DATASET_NAME / DATASET_VERSION / "dataset_info.json").is_file()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_idx_header(data: bytes, path: Path) -> None:
    """Checks the IDX magic number and shape header, so wrong shapes fail by name."""
    expected = {
        "train-images-idx3-ubyte": (2051, (NUM_TRAIN, 28, 28)),
        "train-labels-idx1-ubyte": (2049, (NUM_TRAIN,)),
        "t10k-images-idx3-ubyte": (2051, (NUM_TEST, 28, 28)),
        "t10k-labels-idx1-ubyte": (2049, (NUM_TEST,)),
    }[path.name.removesuffix(".gz")]
    magic, shape = expected
    ndim = len(shape)
    header = np.frombuffer(data[: 4 * (ndim + 1)], dtype=">u4") if len(data) >= 4 * (ndim + 1) else None
    if header is None or int(header[0]) != magic or tuple(int(d) for d in header[1:]) != shape:
        got = "no header" if header is None else f"magic {int(header[0])}, shape {tuple(int(d) for d in header[1:])}"
        raise DataError(f"{path}: not a Fashion-MNIST IDX file of shape {shape} ({got}).\n{HOW_TO_FIX}")


def verify_folder(folder: Path) -> str:
    """Checks the four files in `folder`; returns "original" or "recompressed".

    "original": every archive matches tfds' registered checksum, so tfds can read the
    folder as its manual_dir. "recompressed": some archives differ (e.g. Debian's) but
    every decompressed IDX payload is byte-identical to the original.
    Raises DataError naming the first missing, truncated or corrupt file.
    """
    kind = "original"
    for source in SOURCE_FILES.values():
        path = folder / source.name
        if not path.is_file():
            raise DataError(f"Missing data file {path}.\n{HOW_TO_FIX}")
        raw = path.read_bytes()
        if _sha256(raw) == source.gz_sha256:
            continue
        kind = "recompressed"
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path} is truncated or not a valid gzip file ({err}).\n{HOW_TO_FIX}") from err
        _check_idx_header(data, path)
        if len(data) != source.idx_size or _sha256(data) != source.idx_sha256:
            raise DataError(
                f"{path}: checksum mismatch: its decompressed content is not the original "
                f"Fashion-MNIST file (expected SHA-256 {source.idx_sha256}).\n{HOW_TO_FIX}")
    return kind


def _prepare_from_idx(folder: Path, data_dir: Path) -> None:
    """Builds tfds' fashion_mnist from verified recompressed archives.

    Decompresses into a scratch folder and runs tfds' own FashionMNIST example
    generator over the IDX files, so the prepared dataset is the one tfds would build.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist

    with tempfile.TemporaryDirectory(prefix="fvae-idx-") as scratch:
        idx_paths = {}
        for key, source in SOURCE_FILES.items():
            target = Path(scratch) / source.name.removesuffix(".gz")
            with gzip.open(folder / source.name, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            idx_paths[key] = str(target)

        with tfds.core.registered.skip_registration():

            class VerifiedIdxFashionMNIST(mnist.FashionMNIST):
                name = DATASET_NAME

                def _split_generators(self, dl_manager):
                    del dl_manager  # Files are local and already verified.
                    return [
                        tfds.core.SplitGenerator(
                            name=tfds.Split.TRAIN,
                            gen_kwargs=dict(num_examples=NUM_TRAIN, data_path=idx_paths["train_data"],
                                            label_path=idx_paths["train_labels"])),
                        tfds.core.SplitGenerator(
                            name=tfds.Split.TEST,
                            gen_kwargs=dict(num_examples=NUM_TEST, data_path=idx_paths["test_data"],
                                            label_path=idx_paths["test_labels"])),
                    ]

        VerifiedIdxFashionMNIST(data_dir=str(data_dir)).download_and_prepare()


def prepare(data_dir: str | os.PathLike | None = None,
            manual_dir: str | os.PathLike | None = None) -> Path:
    """Makes sure tfds' fashion_mnist is prepared in data_dir; returns data_dir.

    Prepared once, reused afterwards. With a local folder (manual_dir, $FVAE_MANUAL_DIR
    or the Debian package) nothing is downloaded; otherwise tfds downloads.
    """
    data_dir = resolve_data_dir(data_dir)
    if is_prepared(data_dir):
        return data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"Cannot create data directory {data_dir}: {err}. "
                        f"Choose another with --config.data.data_dir or {DATA_DIR_ENV}.") from err
    folder = resolve_manual_dir(manual_dir)

    import tensorflow_datasets as tfds

    recompressed = folder is not None and verify_folder(folder) == "recompressed"
    try:
        if recompressed:
            _prepare_from_idx(folder, data_dir)
        else:
            tfds.builder(DATASET_NAME, data_dir=str(data_dir)).download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(folder) if folder else None))
    except Exception as err:  # tfds raises many types (network, checksum, disk full, permissions).
        where = f"from {folder}" if folder else "by download (no local folder given)"
        raise DataError(f"Could not prepare Fashion-MNIST {where} into {data_dir}: "
                        f"{type(err).__name__}: {err}\n{HOW_TO_FIX}") from err
    return data_dir


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a prepared split as uint8 images (N, 28, 28, 1) and int32 labels (N,)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(DATASET_NAME, data_dir=str(data_dir))
    arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    images, labels = arrays["image"], arrays["label"].astype(np.int32)
    expected = NUM_TRAIN if split == "train" else NUM_TEST
    if images.shape != (expected, *IMAGE_SHAPE) or images.dtype != np.uint8:
        raise DataError(f"Prepared split {split!r} in {data_dir} has images {images.shape} {images.dtype}, "
                        f"expected ({expected}, 28, 28, 1) uint8. Delete {data_dir / DATASET_NAME} "
                        "and run again to re-prepare it.")
    return images, labels


def split_validation(images: np.ndarray, labels: np.ndarray, val_size: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministically (by seed) holds out `val_size` training images for validation."""
    if not 0 < val_size < len(images):
        raise ValueError(f"val_size must be in (0, {len(images)}), got {val_size}")
    order = np.random.default_rng(seed).permutation(len(images))
    val, train = np.sort(order[:val_size]), np.sort(order[val_size:])
    return images[train], labels[train], images[val], labels[val]


def load(data_dir: str | os.PathLike | None = None, manual_dir: str | os.PathLike | None = None,
         *, val_size: int = 5000, seed: int = 0, flatten: bool = True,
         train_subset: int = 0) -> Splits:
    """Prepares (once) and loads train/val/test as uint8 arrays.

    flatten: images as (N, 784) for MLP models, else (N, 28, 28, 1).
    train_subset: if > 0, keep only that many training images (after the validation
    split; for quick runs and tests). Validation and test sets are never subsampled
    by it, except that val_size itself is configurable.
    """
    data_dir = prepare(data_dir, manual_dir)
    train_images, train_labels = load_split(data_dir, "train")
    test_images, test_labels = load_split(data_dir, "test")
    train_images, train_labels, val_images, val_labels = split_validation(
        train_images, train_labels, val_size, seed)
    if train_subset:
        train_images, train_labels = train_images[:train_subset], train_labels[:train_subset]
    if flatten:
        train_images, val_images, test_images = (
            a.reshape(len(a), -1) for a in (train_images, val_images, test_images))
    return Splits(train_images, train_labels, val_images, val_labels, test_images, test_labels)


def _normalized(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def parse_label(text: str | int) -> int:
    """A class given as an index (0-9) or a name ("Dress", "ankle boot", "T-shirt") -> its index.

    Raises ValueError naming every accepted class when the text matches none.
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
    """uint8 pixels -> float32 in [0, 1] (works on numpy and jax arrays)."""
    return images.astype("float32") / 255.0
