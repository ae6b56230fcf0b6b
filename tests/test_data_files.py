import numpy as np
import pytest

from fvae import data
from fvae.data import sources
from fvae.errors import DataError
from tests.conftest import require
from tests.helpers import debian_style_copy


@pytest.mark.slow
def test_prepared_dataset_is_reused(prepared_data_dir):
    info = prepared_data_dir / "fashion_mnist" / sources.DATASET_VERSION / "dataset_info.json"
    before = info.stat().st_mtime_ns
    assert sources.prepare(prepared_data_dir, manual_dir="/nonexistent-is-not-needed-when-prepared") == \
        prepared_data_dir
    assert info.stat().st_mtime_ns == before


def test_original_files_are_recognized(original_files):
    assert sources.verify_folder(original_files) == "original"


@pytest.mark.slow
def test_recompressed_files_build_the_same_tfds_dataset(original_files, prepared_data_dir, tmp_path):
    folder = debian_style_copy(original_files, tmp_path / "debian")
    assert sources.verify_folder(folder) == "recompressed"
    data_dir = sources.prepare(tmp_path / "tfds", folder)
    assert sources.is_prepared(data_dir)
    for split in ("train", "test"):
        got, want = data.load_split(data_dir, split), data.load_split(prepared_data_dir, split)
        np.testing.assert_array_equal(got.images, want.images)
        np.testing.assert_array_equal(got.labels, want.labels)


def test_debian_package_files_verify():
    require(sources.DEBIAN_DIR.is_dir(),
            f"Debian package dataset-fashion-mnist not installed ({sources.DEBIAN_DIR})")
    assert sources.verify_folder(sources.DEBIAN_DIR) == "recompressed"


def test_missing_manual_dir_is_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        sources.prepare(tmp_path / "tfds", tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["importlib_resources", None])
def test_a_missing_package_is_reported_as_such_and_only_data_failures_as_data_problems(tmp_path, missing):
    """tfds imports some packages only while preparing (seen: importlib_resources) and wraps the
    ImportError: that is a dependency problem, named with the package. A failure with no
    ImportError behind it (here a network error) is a data problem, with the ways to get the data."""
    from unittest import mock

    import tensorflow_datasets as tfds

    from fvae.errors import DependencyError

    def failing_prepare(*args, **kwargs):
        if missing:
            try:
                raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)
            except ModuleNotFoundError as err:
                raise RuntimeError("Failed to construct dataset") from err
        raise OSError("network is unreachable")

    with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare", failing_prepare), \
            mock.patch.object(sources, "resolve_manual_dir", lambda manual_dir: None):
        expected = DependencyError if missing else DataError
        with pytest.raises(expected) as err:
            sources.prepare(tmp_path / "tfds")
    message = str(err.value)
    if missing:
        assert "importlib_resources, which is not installed" in message and "pip install importlib_resources" in message
        assert "Ways to provide" not in message and not isinstance(err.value, DataError)
    else:
        assert "network is unreachable" in message and "Ways to provide Fashion-MNIST" in message


def test_tensorflow_datasets_that_cannot_be_imported_is_a_dependency_problem(monkeypatch):
    import sys

    from fvae.errors import DependencyError

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails as if not installed
    with pytest.raises(DependencyError, match="tensorflow_datasets, which is not installed"):
        sources.import_tfds()
    with pytest.raises(DependencyError, match="not a problem with the data"):
        data.load_split(sources.DEFAULT_DATA_DIR, "test")
