"""The original Fashion-MNIST files: finding them, verifying them, and preparing tfds'
`fashion_mnist` from them once (fvae.data reads the prepared dataset).

Three ways to get the data, all ending in the same tfds `fashion_mnist` dataset:

* online: tfds' own download (the default when no local folder is known);
* a folder with the four original `.gz` files, given to tfds as `manual_dir`;
* Debian's `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist`),
  whose `.gz` files were recompressed: tfds' archive checksums reject them, so we
  verify the SHA-256 of the decompressed IDX bytes instead and build the same tfds
  dataset from those bytes.

tfds prepares into an `incomplete.*` folder and renames it only when it is done, so
an interrupted preparation is never read as a valid dataset.

TensorFlow is imported lazily: importing `fvae.data.sources` stays cheap.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gzip
import hashlib
import importlib
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np

from fvae.errors import DataError, DependencyError

DATASET_NAME = "fashion_mnist"
DATASET_VERSION = "3.0.1"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MANUAL_DIR_ENV = "FVAE_MANUAL_DIR"
DATA_DIR_ENV = "FVAE_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/tensorflow_datasets").expanduser()

NUM_TRAIN, NUM_TEST = 60_000, 10_000  # Images in the original files (checked in their IDX headers).


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


PREPARE_LOCK = ".fvae-prepare.lock"  # In data_dir; held (flock) while a process prepares.


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


def import_tfds():
    """tensorflow_datasets, or a DependencyError saying which package is missing or broken."""
    try:
        import tensorflow_datasets as tfds  # Here, not at the top: TensorFlow takes seconds to import.
        importlib.import_module("tensorflow_datasets.image_classification.mnist")  # Imports TensorFlow.
    except ImportError as err:
        raise DependencyError.from_import_error(err, "Reading Fashion-MNIST through tensorflow-datasets") from err
    return tfds


def _prepare_from_idx(folder: Path, data_dir: Path) -> None:
    """Builds tfds' fashion_mnist from verified recompressed archives.

    Decompresses into a scratch folder and runs tfds' own FashionMNIST example
    generator over the IDX files, so the prepared dataset is the one tfds would build.
    """
    tfds = import_tfds()
    from tensorflow_datasets.image_classification import mnist  # After import_tfds's friendly check.

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
    # The source is checked before anything is created: a wrong folder leaves no trace.
    folder = resolve_manual_dir(manual_dir)
    tfds = import_tfds()
    recompressed = folder is not None and verify_folder(folder) == "recompressed"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"Cannot create data directory {data_dir}: {err}. "
                        f"Choose another with --config.data.data_dir or {DATA_DIR_ENV}.") from err
    # One preparation at a time: a second process waits here, then finds the data prepared (it
    # used to fail halfway with a data error while the first was still writing).
    with open(data_dir / PREPARE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_prepared(data_dir):
            return data_dir
        try:
            if recompressed and folder is not None:
                _prepare_from_idx(folder, data_dir)
            else:
                tfds.builder(DATASET_NAME, data_dir=str(data_dir)).download_and_prepare(
                    download_config=tfds.download.DownloadConfig(manual_dir=str(folder) if folder else None))
        except Exception as err:  # tfds raises many types (network, checksum, disk full, permissions).
            # A package tfds imports only while preparing: not the data's fault.
            if missing := DependencyError.import_error_behind(err):
                raise DependencyError.from_import_error(missing, "Preparing Fashion-MNIST") from err
            where = f"from {folder}" if folder else "by download (no local folder given)"
            raise DataError(f"Could not prepare Fashion-MNIST {where} into {data_dir}: "
                            f"{type(err).__name__}: {err}\n{HOW_TO_FIX}") from err
    return data_dir
