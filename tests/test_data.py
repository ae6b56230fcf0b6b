import numpy as np
import pytest

from fvae import data
from fvae.errors import ConfigError
from tests.helpers import MOCK_SIZES


@pytest.mark.slow
def test_real_data_through_tfds(prepared_data_dir):
    train, test = data.load_split(prepared_data_dir, "train"), data.load_split(prepared_data_dir, "test")
    assert train.images.shape == (60_000, 28, 28, 1) and test.images.shape == (10_000, 28, 28, 1)
    assert round(float(train.images.mean()) / 255, 4) == 0.2860
    assert round(float(test.images.mean()) / 255, 4) == 0.2868
    assert np.bincount(train.labels).tolist() == [6000] * 10


@pytest.mark.slow
def test_load_splits_and_flattens(prepared_data_dir):
    splits = data.load(prepared_data_dir, val_size=5000, seed=0)
    assert splits.train.images.shape == (55_000, 784) and splits.val.images.shape == (5000, 784)
    assert splits.test.images.shape == (10_000, 784) and splits.train.images.dtype == np.uint8
    assert len(splits.train.labels) == 55_000 and len(splits.test.labels) == 10_000
    small = data.load(prepared_data_dir, val_size=5000, seed=0, flatten=False, train_subset=300)
    assert small.train.images.shape == (300, 28, 28, 1) and small.val.images.shape == (5000, 28, 28, 1)
    # The images keep their labels through the split, the subset and the flattening.
    np.testing.assert_array_equal(small.train.images.reshape(300, -1), splits.train.images[:300])
    np.testing.assert_array_equal(small.train.labels, splits.train.labels[:300])


def test_loader_reads_split_sizes_from_the_builder(mock_data_dir):
    splits = data.load(mock_data_dir, val_size=100, seed=0)
    n_train, n_test = MOCK_SIZES["train"], MOCK_SIZES["test"]
    assert splits.train.images.shape == (n_train - 100, 784) and splits.val.images.shape == (100, 784)
    assert splits.test.images.shape == (n_test, 784) and splits.test.labels.shape == (n_test,)
    assert splits.train.images.dtype == np.uint8 and splits.train.labels.dtype == np.int32


def test_validation_split_is_deterministic_and_disjoint():
    full = data.Dataset(np.arange(1000), np.arange(1000) % 10)
    a = data.split_validation(full, 100, seed=3)
    b = data.split_validation(full, 100, seed=3)
    c = data.split_validation(full, 100, seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.images, y.images)
    train, val = a
    assert val.num_examples == 100 and train.num_examples == 900 and not set(train.images) & set(val.images)
    np.testing.assert_array_equal(val.labels, val.images % 10)  # Labels travel with their images.
    assert not np.array_equal(a[1].images, c[1].images)
    with pytest.raises(ConfigError, match="val_size must be in 1..999 \\(there are 1000 training images\\)"):
        data.split_validation(full, 1000, seed=0)


def test_dataset_is_a_pytree_with_optional_labels():
    import jax

    labelled = data.Dataset(np.zeros((4, 784), np.uint8), np.arange(4, dtype=np.int32))
    assert len(jax.tree.leaves(labelled)) == 2 and len(jax.tree.leaves(data.Dataset(labelled.images))) == 1
    placed = jax.device_put(labelled)
    assert isinstance(placed, data.Dataset) and placed.take(2).labels.tolist() == [0, 1]
    assert data.as_dataset(labelled.images).labels is None and data.as_dataset(labelled) is labelled
