import numpy as np
import pytest

from fvae import data
from tests.conftest import require
from tests.helpers import debian_style_copy


def test_real_data_through_tfds(prepared_data_dir):
    train_images, train_labels = data.load_split(prepared_data_dir, "train")
    test_images, test_labels = data.load_split(prepared_data_dir, "test")
    assert train_images.shape == (60_000, 28, 28, 1) and test_images.shape == (10_000, 28, 28, 1)
    assert round(float(train_images.mean()) / 255, 4) == 0.2860
    assert round(float(test_images.mean()) / 255, 4) == 0.2868
    assert np.bincount(train_labels).tolist() == [6000] * 10


def test_load_splits_and_flattens(prepared_data_dir):
    splits = data.load(prepared_data_dir, val_size=5000, seed=0)
    assert splits.train_images.shape == (55_000, 784) and splits.val_images.shape == (5000, 784)
    assert splits.test_images.shape == (10_000, 784) and splits.train_images.dtype == np.uint8
    assert len(splits.train_labels) == 55_000 and len(splits.test_labels) == 10_000
    small = data.load(prepared_data_dir, val_size=1000, seed=0, flatten=False, train_subset=300)
    assert small.train_images.shape == (300, 28, 28, 1) and small.val_images.shape == (1000, 28, 28, 1)


def test_validation_split_is_deterministic_and_disjoint():
    images = np.arange(1000)
    labels = np.arange(1000) % 10
    a = data.split_validation(images, labels, 100, seed=3)
    b = data.split_validation(images, labels, 100, seed=3)
    c = data.split_validation(images, labels, 100, seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    train, val = a[0], a[2]
    assert len(val) == 100 and len(train) == 900 and not set(train) & set(val)
    assert not np.array_equal(a[2], c[2])
    with pytest.raises(ValueError, match="val_size"):
        data.split_validation(images, labels, 1000, seed=0)


def test_prepared_dataset_is_reused(prepared_data_dir):
    info = prepared_data_dir / "fashion_mnist" / data.DATASET_VERSION / "dataset_info.json"
    before = info.stat().st_mtime_ns
    assert data.prepare(prepared_data_dir, manual_dir="/nonexistent-is-not-needed-when-prepared") == prepared_data_dir
    assert info.stat().st_mtime_ns == before


def test_original_files_are_recognized(original_files):
    assert data.verify_folder(original_files) == "original"


def test_recompressed_files_build_the_same_tfds_dataset(original_files, prepared_data_dir, tmp_path):
    folder = debian_style_copy(original_files, tmp_path / "debian")
    assert data.verify_folder(folder) == "recompressed"
    data_dir = data.prepare(tmp_path / "tfds", folder)
    assert data.is_prepared(data_dir)
    for split in ("train", "test"):
        got_images, got_labels = data.load_split(data_dir, split)
        want_images, want_labels = data.load_split(prepared_data_dir, split)
        np.testing.assert_array_equal(got_images, want_images)
        np.testing.assert_array_equal(got_labels, want_labels)


def test_debian_package_files_verify():
    require(data.DEBIAN_DIR.is_dir(), f"Debian package dataset-fashion-mnist not installed ({data.DEBIAN_DIR})")
    assert data.verify_folder(data.DEBIAN_DIR) == "recompressed"


def test_missing_manual_dir_is_reported(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.prepare(tmp_path / "tfds", tmp_path / "nowhere")

