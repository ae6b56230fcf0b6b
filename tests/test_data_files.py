import numpy as np
import pytest

from fvae import data, data_files
from fvae.errors import DataError
from tests.conftest import require
from tests.helpers import debian_style_copy


@pytest.mark.slow
def test_prepared_dataset_is_reused(prepared_data_dir):
    info = prepared_data_dir / "fashion_mnist" / data_files.DATASET_VERSION / "dataset_info.json"
    before = info.stat().st_mtime_ns
    assert data_files.prepare(prepared_data_dir, manual_dir="/nonexistent-is-not-needed-when-prepared") == \
        prepared_data_dir
    assert info.stat().st_mtime_ns == before


def test_original_files_are_recognized(original_files):
    assert data_files.verify_folder(original_files) == "original"


@pytest.mark.slow
def test_recompressed_files_build_the_same_tfds_dataset(original_files, prepared_data_dir, tmp_path):
    folder = debian_style_copy(original_files, tmp_path / "debian")
    assert data_files.verify_folder(folder) == "recompressed"
    data_dir = data_files.prepare(tmp_path / "tfds", folder)
    assert data_files.is_prepared(data_dir)
    for split in ("train", "test"):
        got, want = data.load_split(data_dir, split), data.load_split(prepared_data_dir, split)
        np.testing.assert_array_equal(got.images, want.images)
        np.testing.assert_array_equal(got.labels, want.labels)


def test_debian_package_files_verify():
    require(data_files.DEBIAN_DIR.is_dir(),
            f"Debian package dataset-fashion-mnist not installed ({data_files.DEBIAN_DIR})")
    assert data_files.verify_folder(data_files.DEBIAN_DIR) == "recompressed"


def test_missing_manual_dir_is_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data_files.prepare(tmp_path / "tfds", tmp_path / "nowhere")
