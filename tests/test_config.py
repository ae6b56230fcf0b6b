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
    for expected in ("model.upsample must be one of ('pixel_shuffle', 'transpose')", "model.conv_channels must be 1 or 2",
                     "likelihood.mixtures must be >= 1", "prior.components must be >= 1"):
        assert expected in message
    config.model.architecture, config.likelihood.name = "hierarchical", "gaussian"
    message = problems_of(config)
    assert "model.top_latents must be >= 1" in message and "likelihood.variance must be one of" in message
    assert "upsample" not in message and "mixtures" not in message


def test_the_schema_holds_each_registered_classs_own_fields_with_its_defaults():
    from fvae.config import COMPONENTS

    config = defaults()
    for section, (table, _) in COMPONENTS.items():
        for cls in table.values():
            for key, default in cls.config_fields().items():
                assert config[section][key] == default, (section, cls.name, key)
    assert config.model.top_latents == 40 and config.likelihood.mixtures == 1 and config.prior.components == 500


def test_two_classes_may_share_a_key_only_with_one_default():
    import dataclasses

    from fvae.registry import Component, registry, section_fields

    @dataclasses.dataclass(frozen=True)
    class A(Component):
        width: int = 1
        name = "a"

    @dataclasses.dataclass(frozen=True)
    class B(Component):
        width: int = 2
        name = "b"

    with pytest.raises(ValueError, match="defaults 1 and 2"):
        section_fields(registry(A, B))
    with pytest.raises(ValueError, match="two classes registered as 'a'"):
        registry(A, A)


def test_saved_configs_from_before_a_key_existed_load_with_its_default():
    from fvae.config import with_defaults

    saved = defaults().to_dict()
    del saved["likelihood"], saved["model"]["architecture"]
    saved["model"]["encoder_hidden"] = [300, 300]  # JSON turns tuples into lists.
    config = with_defaults(saved)
    validate(config)
    assert config.likelihood.name == "bernoulli" and config.model.architecture == "mlp"
    assert config.model.encoder_hidden == (300, 300)


def test_saved_configs_with_a_retired_key_still_load():
    from fvae.config import RETIRED_KEYS, with_defaults

    saved = defaults().to_dict()
    for key in RETIRED_KEYS:
        section, name = key.split(".")
        saved[section][name] = True
    config = with_defaults(saved)
    validate(config)
    assert all(key.split(".")[1] not in config[key.split(".")[0]] for key in RETIRED_KEYS)


def test_kl_warmup_epochs_become_steps_of_the_configured_epoch():
    from fvae.config import objective, steps_per_epoch

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

    from fvae.config import learning_rate

    config = defaults()
    config.data.train_subset, config.train.batch_size, config.train.max_epochs = 1000, 100, 4  # 40 steps
    assert learning_rate(config) == config.train.learning_rate  # "constant": a plain float
    config.train.lr_schedule = "cosine"
    schedule = learning_rate(config)
    for step in (0, 10, 20, 30, 40, 50):
        expected = 0.5 * 1e-3 * (1 + math.cos(math.pi * min(step, 40) / 40))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)


def test_unknown_keys_name_the_nearest_valid_ones():
    from fvae.config import check_key

    check_key("train.batch_size")
    with pytest.raises(ValueError, match=r"unknown config key 'train.batchsize'; nearest valid keys: train.batch_size"):
        check_key("train.batchsize")
    with pytest.raises(ValueError, match=r"'train.foo'; nearest valid keys: train\.\w+"):
        check_key("train.foo")


def test_overrides_split_on_commas_outside_brackets():
    from fvae.config import split_overrides

    assert split_overrides(["model.encoder_hidden=(512,256),train.max_epochs=3", "likelihood.name='a,b'"]) == [
        "model.encoder_hidden=(512,256)", "train.max_epochs=3", "likelihood.name='a,b'"]
    assert split_overrides(["x=[1,(2,3)],y={'a':1,'b':2}", ""]) == ["x=[1,(2,3)]", "y={'a':1,'b':2}"]


def test_sweep_overrides_accept_tuples_and_reject_unknown_keys():
    from experiments.configs import load as load_config

    config = load_config("default", ["model.encoder_hidden=(512,256),model.decoder_hidden=(64,)",
                                      "train.max_epochs=3"])
    assert tuple(config.model.encoder_hidden) == (512, 256) and tuple(config.model.decoder_hidden) == (64,)
    assert config.train.max_epochs == 3
    with pytest.raises(ValueError, match="nearest valid keys: train.max_epochs"):
        load_config("default", ["train.max_epoch=3"])


def test_config_files_import_no_jax_and_fvae_has_no_import_cycle():
    import subprocess
    import sys

    code = ("import sys\n"
            "import experiments.configs.default, experiments.configs.conv, fvae.config, fvae.runs, fvae.errors\n"
            "assert not [m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'flax', 'optax'))], "
            "sorted(m for m in sys.modules if m.startswith('jax'))[:5]\n"
            "import fvae\n"
            "assert 'jax' not in sys.modules\n"
            "assert fvae.train_step is not None and 'jax' in sys.modules  # Loaded on first use.\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    # No module of fvae imports one that imports it back (at module level or inside a function),
    # and none imports or reads experiments/.
    import ast

    imports = {}
    for path in (REPO / "fvae").rglob("*.py"):
        tree = ast.parse(path.read_text())
        nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        modules = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}
        modules |= {f"fvae.{a.name}" for n in nodes if isinstance(n, ast.ImportFrom) and n.module == "fvae"
                    for a in n.names}
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        imports[name] = {m for m in modules if m.startswith("fvae.")} - {name}
        reads_experiments = any(isinstance(n, ast.Constant) and n.value == "experiments" for n in ast.walk(tree))
        assert not {m for m in modules if m.split(".")[0] == "experiments"} and not reads_experiments, name

    def reaches(start, goal, seen=()):
        return any(m == goal or (m not in seen and reaches(m, goal, (*seen, m))) for m in imports.get(start, ()))

    cycles = sorted(m for m in imports if reaches(m, m))
    assert not cycles, cycles
