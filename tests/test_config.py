import ml_collections
import pytest

from experiments.configs import default, mlp500
from fvae.config import defaults, validate


def test_shipped_configs_are_valid():
    for module in (default, mlp500):
        validate(module.get_config())


def problems_of(config) -> str:
    with pytest.raises(ValueError) as err:
        validate(config)
    return str(err.value)


def test_every_bad_value_is_listed_in_one_message():
    config = defaults()
    config.train.batch_size, config.train.learning_rate, config.data.val_size = 0, -1.0, 60_000
    config.model.compute_dtype, config.checkpoint.keep = "float16", 0
    message = problems_of(config)
    for key in ("train.batch_size", "train.learning_rate", "data.val_size", "model.compute_dtype", "checkpoint.keep"):
        assert key in message


def test_unknown_keys_and_wrong_types_are_rejected():
    config = defaults().to_dict()
    config["train"]["learning_rat"] = 0.1
    config["train"]["batch_size"] = "128"
    config["model"]["latents"] = 2.5
    message = problems_of(ml_collections.ConfigDict(config))
    assert "unknown key 'train.learning_rat'" in message
    assert "train.batch_size must be int, got str '128'" in message
    assert "model.latents must be int, got float 2.5" in message


def test_incompatible_combinations_are_rejected():
    config = defaults()
    config.data.train_subset, config.train.batch_size = 100, 128
    config.parallel.coordinator_address = "127.0.0.1:1234"
    message = problems_of(config)
    assert "train.batch_size 128 exceeds the 100 training images" in message
    assert "parallel.distributed is False" in message
    config = defaults()
    config.data.train_subset = 59_000
    assert "exceeds the 55000 training images" in problems_of(config)
