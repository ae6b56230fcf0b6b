import importlib

import ml_collections
import pytest

from fvae.run.config import defaults, validate
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
    config.model.compute_dtype, config.checkpoint.keep, config.train.lr_schedule = "float16", 0, "linear"
    message = problems_of(config)
    for key in ("train.batch_size", "train.learning_rate", "data.val_size", "model.compute_dtype", "checkpoint.keep",
                "train.lr_schedule"):
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
    config.likelihood.name, config.model.architecture = "poisson", "resnet"
    config.prior.name, config.objective.iwae_samples = "flow", 0
    message = problems_of(config)
    for expected in ("likelihood.name must be one of", "model.architecture must be one of",
                     "prior.name must be one of", "objective.iwae_samples must be >= 1"):
        assert expected in message
    config = defaults()
    config.prior.name, config.model.conditional, config.objective.free_bits = "vamp", True, 0.5
    message = problems_of(config)
    assert "prior.name 'vamp' cannot be combined with model.conditional" in message
    assert "free_bits needs a closed-form per-latent KL" in message
    config = defaults()
    config.model.architecture, config.model.conditional, config.objective.free_bits = "hierarchical", True, 0.5
    message = problems_of(config)
    assert "model.architecture 'hierarchical' cannot be model.conditional" in message
    assert "free_bits needs a closed-form per-latent KL" in message
    config = defaults()
    config.objective.iwae_samples, config.objective.beta = 5, 2.0
    assert "IWAE bound, which has no KL weight" in problems_of(config)


def test_each_chosen_class_checks_its_own_fields_and_only_those():
    """A registered class's own keys are checked when it is chosen (all of them listed in one
    message), and ignored otherwise: upsample is the conv architecture's, mixtures the
    discretized logistic's, components the VampPrior's."""
    config = defaults()
    config.model.upsample, config.model.conv_channels, config.model.top_latents = "nearest", (8, 8, 8), 0
    config.likelihood.mixtures, config.likelihood.variance, config.prior.components = 0, "diagonal", 0
    validate(config)  # mlp, bernoulli, standard_normal read none of these.
    config.model.architecture, config.likelihood.name, config.prior.name = "conv", "discretized_logistic", "vamp"
    message = problems_of(config)
    for expected in ("model.upsample must be one of ('pixel_shuffle', 'transpose')",
                     "model.conv_channels must be 1 or 2",
                     "likelihood.mixtures must be >= 1", "prior.components must be >= 1"):
        assert expected in message
    config.model.architecture, config.likelihood.name = "hierarchical", "gaussian"
    message = problems_of(config)
    assert "model.top_latents must be >= 1" in message and "likelihood.variance must be one of" in message
    assert "upsample" not in message and "mixtures" not in message


def test_the_schema_holds_each_registered_classs_own_fields_with_its_defaults():
    """Every registered class, chosen with defaults(SECTION=NAME), is selected and has all its own
    keys at its own defaults, and the result passes validation."""
    from fvae.run.config import COMPONENTS

    for section, (table, selector) in COMPONENTS.items():
        for cls in table.values():
            config = defaults(**{section: cls.name})
            assert config[section][selector] == cls.name
            for key, default in cls.config_fields().items():
                assert config[section][key] == default, (section, cls.name, key)
    config = defaults()
    assert config.model.top_latents == 40 and config.likelihood.mixtures == 1 and config.prior.components == 500
    with pytest.raises(ValueError, match="model.architecture must be one of"):
        defaults(model="no_such_architecture")


def test_two_architectures_give_a_shared_key_their_own_defaults(monkeypatch):
    """A shared key takes the chosen class's default (a conv-decoder hybrid's upsample
    "transpose", conv's "pixel_shuffle"), in a new config and in a saved one that predates the
    key; a shared key of two types is refused."""
    import dataclasses

    from fvae.models.architectures import ARCHITECTURES, Conv
    from fvae.models.registry import Component, registry, section_fields
    from fvae.run.config import validate, with_defaults

    @dataclasses.dataclass(frozen=True)
    class Hybrid(Conv):
        upsample: str = "transpose"
        name = "hybrid"

    monkeypatch.setitem(ARCHITECTURES, "hybrid", Hybrid)
    hybrid = defaults(model="hybrid")
    assert hybrid.model.architecture == "hybrid" and hybrid.model.upsample == "transpose"
    assert defaults(model="conv").model.upsample == defaults().model.upsample == "pixel_shuffle"
    validate(hybrid)
    saved = hybrid.to_dict()
    del saved["model"]["upsample"]  # Saved before the key existed: it ran with its architecture's default.
    assert with_defaults(saved).model.upsample == "transpose"

    @dataclasses.dataclass(frozen=True)
    class A(Component):
        width: int = 1
        name = "a"

    @dataclasses.dataclass(frozen=True)
    class B(Component):
        width: float = 2.0
        name = "b"

    with pytest.raises(ValueError, match="declared as int and float"):
        section_fields(registry(A, B))
    with pytest.raises(ValueError, match="two classes registered as 'a'"):
        registry(A, A)


def test_saved_configs_from_before_a_key_existed_load_with_its_default():
    from fvae.run.config import with_defaults

    saved = defaults().to_dict()
    del saved["likelihood"], saved["model"]["architecture"]
    saved["model"]["encoder_hidden"] = [300, 300]  # JSON turns tuples into lists.
    config = with_defaults(saved)
    validate(config)
    assert config.likelihood.name == "bernoulli" and config.model.architecture == "mlp"
    assert config.model.encoder_hidden == (300, 300)


def test_saved_configs_with_a_retired_key_still_load():
    from fvae.run.config import RETIRED_KEYS, with_defaults

    saved = defaults().to_dict()
    for key in RETIRED_KEYS:
        section, name = key.split(".")
        saved[section][name] = True
    config = with_defaults(saved)
    validate(config)
    assert all(key.split(".")[1] not in config[key.split(".")[0]] for key in RETIRED_KEYS)


def test_kl_warmup_epochs_become_steps_of_the_configured_epoch():
    from fvae.run.assemble import objective, steps_per_epoch

    config = defaults()
    config.data.train_subset, config.train.batch_size, config.objective.warmup_epochs = 1000, 100, 3
    assert steps_per_epoch(config) == 10
    o = objective(config)
    assert o.warmup_steps == 30
    weights = [float(o.kl_weight(step)) for step in (0, 15, 30, 45)]
    assert weights == [0.0, 0.5, 1.0, 1.0]
    config.data.train_subset = 0  # All 55,000 training images: 429 steps of 128 per epoch.
    config.train.batch_size = 128
    assert objective(config).warmup_steps == 3 * (55_000 // 128)


def test_cosine_learning_rate_falls_from_the_configured_rate_to_zero_at_max_epochs():
    import math

    from fvae.run.assemble import learning_rate

    config = defaults()
    config.data.train_subset, config.train.batch_size, config.train.max_epochs = 1000, 100, 4  # 40 steps
    assert learning_rate(config) == config.train.learning_rate  # "constant": a plain float
    config.train.lr_schedule = "cosine"
    schedule = learning_rate(config)
    for step in (0, 10, 20, 30, 40, 50):
        expected = 0.5 * 1e-3 * (1 + math.cos(math.pi * min(step, 40) / 40))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)


def test_unknown_keys_name_the_nearest_valid_ones():
    from fvae.run.config import check_key

    check_key("train.batch_size")
    with pytest.raises(ValueError, match=r"unknown config key 'train.batchsize'; nearest valid keys: train.batch_size"):
        check_key("train.batchsize")
    with pytest.raises(ValueError, match=r"'train.foo'; nearest valid keys: train\.\w+"):
        check_key("train.foo")


def test_configs_load_by_name_or_path_with_flattened_overrides(tmp_path):
    from experiments.configs import load, path

    config = load("default", {"model.encoder_hidden": (512, 256), "train.max_epochs": 3})
    assert tuple(config.model.encoder_hidden) == (512, 256) and config.train.max_epochs == 3
    assert load(str(REPO / "experiments" / "configs" / "mlp500.py")).model.latents == load("mlp500").model.latents
    own = tmp_path / "mine.py"
    own.write_text("from experiments.configs import mlp500\n\ndef get_config():\n"
                   "    config = mlp500.get_config()\n    config.model.latents = 7\n    return config\n")
    assert load(str(own)).model.latents == 7 and path(str(own)) == own
    with pytest.raises(ValueError, match="nearest valid keys: train.max_epochs"):
        load("default", {"train.max_epoch": 3})
    with pytest.raises(ValueError, match="no config 'nope': give a name in experiments/configs"):
        load("nope")


def test_every_script_names_configs_the_same_way_and_checks_keys_first():
    from experiments import cli

    default = str(REPO / "experiments" / "configs" / "default.py")
    # A name becomes its path, and --config moves before its overrides (absl needs that order).
    assert cli._config_args(["prog", "--config.train.max_epochs=3", "--workdir", "w", "--config", "default"]) == [
        "prog", f"--config={default}", "--config.train.max_epochs=3", "--workdir", "w"]
    with pytest.raises(ValueError, match="nearest valid keys: train.batch_size"):
        cli._config_args(["prog", "--config.train.batchsize=3"])
    with pytest.raises(ValueError, match="no config 'nope'"):
        cli._config_args(["prog", "--config=nope"])


# Numbers where a negative value means something: -1 asks jax to detect the process id, and the
# process count is read only with a coordinator address (checked together there).
MEANINGFUL_NEGATIVES = {"parallel.process_id", "parallel.num_processes"}


def test_every_number_in_the_schema_is_range_checked_where_it_is_read():
    """Contract over the whole schema, registry entries included (a new key is covered without new
    test code): -1, and for floats nan and inf, is rejected and named by validate(), in the
    defaults or with the registry entry that reads the key chosen. validate() runs before the
    run directory exists (tests/test_reliability.py's BAD_CONFIGS show it from the CLI)."""
    import math

    from fvae.run.config import COMPONENTS, flatten

    def configs_reading(key: str):
        yield defaults()
        section = key.split(".")[0]
        if section in COMPONENTS:
            table, name_key = COMPONENTS[section]
            for name in table:
                config = defaults()
                config[section][name_key] = name
                try:
                    validate(config)
                except ValueError:
                    continue  # This entry needs other settings as well; another entry reads the key.
                yield config

    def rejected(key: str, bad) -> bool:
        for config in configs_reading(key):
            *path, last = key.split(".")
            section = config
            for part in path:
                section = section[part]
            section[last] = bad
            try:
                validate(config)
            except ValueError as err:
                if key in str(err) or last in str(err):
                    return True
        return False

    numbers = {k: v for k, v in flatten(defaults().to_dict()).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert len(numbers) > 20  # The schema was read.
    unchecked = [(key, bad) for key, value in sorted(numbers.items()) if key not in MEANINGFUL_NEGATIVES
                 for bad in ([-1.0, math.nan, math.inf] if isinstance(value, float) else [-1])
                 if not rejected(key, bad)]
    assert unchecked == []
