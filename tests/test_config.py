import ml_collections
import pytest
import importlib

from fvae.config import defaults, validate
from tests.conftest import REPO

SHIPPED = sorted(p.stem for p in (REPO / "experiments" / "configs").glob("*.py") if p.stem != "__init__")


def test_shipped_configs_are_valid_and_say_how_to_run_them():
    assert len(SHIPPED) >= 14
    for name in SHIPPED:
        module = importlib.import_module(f"experiments.configs.{name}")
        validate(module.get_config())
        assert f"--config experiments/configs/{name}.py" in module.__doc__, name


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


def test_model_family_values_and_combinations_are_checked():
    config = defaults()
    config.likelihood.name, config.model.architecture, config.model.upsample = "poisson", "resnet", "nearest"
    config.prior.name, config.objective.iwae_samples = "flow", 0
    message = problems_of(config)
    for expected in ("likelihood.name must be one of", "model.architecture must be one of",
                     "model.upsample must be one of", "prior.name must be one of", "objective.iwae_samples must be >= 1"):
        assert expected in message
    config = defaults()
    config.prior.name, config.model.conditional, config.objective.free_bits = "vamp", True, 0.5
    message = problems_of(config)
    assert "cannot be combined with model.conditional" in message
    assert "free_bits needs the per-latent KL" in message
    config = defaults()
    config.objective.iwae_samples, config.objective.beta = 5, 2.0
    assert "IWAE bound, which has no KL weight" in problems_of(config)


def test_saved_configs_from_before_a_key_existed_load_with_its_default():
    from fvae.config import with_defaults

    saved = defaults().to_dict()
    del saved["likelihood"], saved["model"]["architecture"]
    saved["model"]["encoder_hidden"] = [300, 300]  # JSON turns tuples into lists.
    config = with_defaults(saved)
    validate(config)
    assert config.likelihood.name == "bernoulli" and config.model.architecture == "mlp"
    assert config.model.encoder_hidden == (300, 300)
