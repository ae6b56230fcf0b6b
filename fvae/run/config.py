"""The config schema: every key with its default, and validation before any work starts.

Experiment configs (experiments/configs/*.py) start from `defaults()` and change values;
`validate` rejects unknown keys, wrong types, values out of range and incompatible
combinations, listing every problem in one message. Importing this module imports no jax
(config files stay light): the keys of the `likelihood`, `prior` and `model` sections that
belong to one registered class (fvae.models.likelihoods, fvae.models.priors, fvae.models.architectures) come
from that class's own fields, and each class checks its own values.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import ml_collections

from fvae.data.sources import NUM_TRAIN
from fvae.errors import ConfigError
from fvae.models.architectures import ARCHITECTURES
from fvae.models.likelihoods import LIKELIHOODS
from fvae.models.priors import PRIORS
from fvae.models.registry import lookup, section_fields

COMPUTE_DTYPES = ("float32", "bfloat16")
LR_SCHEDULES = ("constant", "cosine", "warmup_cosine")
OPTIMIZERS = ("adam", "adamw", "sgd")
# Each named section: its registry (the class is chosen by the key beside it).
COMPONENTS = {"likelihood": (LIKELIHOODS, "name"), "prior": (PRIORS, "name"), "model": (ARCHITECTURES, "architecture")}


def defaults(**chosen: str) -> ml_collections.ConfigDict:
    """Every config key with its default value: the schema that validate() checks against.

    `chosen` picks registered components by section, e.g. defaults(model="conv",
    prior="vamp"): each is selected and its own defaults win for keys that several classes of
    its registry share (fvae.models.registry.section_fields)."""
    unknown = sorted(set(chosen) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"defaults() chooses components of {tuple(COMPONENTS)}, not {unknown}")
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.data_dir = ""      # tfds data dir; "" -> $FVAE_DATA_DIR or ~/tensorflow_datasets
    config.data.manual_dir = ""    # folder with the 4 .gz files; "" -> $FVAE_MANUAL_DIR, Debian package, download
    config.data.val_size = 5000    # held out from the 60,000 training images, by seed
    config.data.train_subset = 0   # > 0: train on only that many images (quick runs)

    config.model = ml_collections.ConfigDict()
    config.model.architecture = "mlp"       # see fvae.models.architectures.ARCHITECTURES: "mlp", "conv", "hierarchical"
    config.model.encoder_hidden = (512, 256)  # dense layers (after the convs for "conv")
    config.model.decoder_hidden = (256, 512)  # dense layers (before the upsampling convs for "conv")
    config.model.latents = 32              # "hierarchical": the bottom layer z1
    config.model.conditional = False        # True: encoder and decoder see the class label (conditional VAE)
    config.model.gated = False              # True: gated dense hidden units (VampPrior paper) instead of ReLU
    config.model.compute_dtype = "float32"  # or "bfloat16" (parameters and Adam state stay float32)

    config.likelihood = ml_collections.ConfigDict()
    config.likelihood.name = "bernoulli"    # see fvae.models.likelihoods.LIKELIHOODS

    config.prior = ml_collections.ConfigDict()
    config.prior.name = "standard_normal"   # see fvae.models.priors.PRIORS: "standard_normal", "vamp" (VampPrior)

    # Each registered class's own keys, with its defaults (e.g. model.top_latents of
    # "hierarchical", likelihood.mixtures of "discretized_logistic", prior.components of "vamp").
    for section, (table, selector) in COMPONENTS.items():
        if section in chosen:
            lookup(table, chosen[section], f"{section}.{selector}")
            config[section][selector] = chosen[section]
        for key, default in section_fields(table, chosen.get(section)).items():
            config[section][key] = default

    config.objective = ml_collections.ConfigDict()
    config.objective.beta = 1.0             # KL weight (beta-VAE)
    config.objective.warmup_epochs = 0      # KL weight rises linearly from 0 to beta over this many epochs
    config.objective.free_bits = 0.0        # nats: per-latent KL floor (standard_normal prior only)
    config.objective.iwae_samples = 1       # K > 1: train on the IWAE bound with K samples

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 128
    config.train.optimizer = "adam"   # or "adamw" (decoupled weight decay), "sgd" (with momentum)
    config.train.learning_rate = 1e-3
    config.train.adam_b1 = 0.9        # adam, adamw
    config.train.adam_b2 = 0.999
    config.train.adam_eps = 1e-8
    config.train.weight_decay = 0.0   # adamw
    config.train.momentum = 0.9       # sgd (0: plain SGD)
    config.train.clip_grad_norm = 0.0  # > 0: clip the gradient to this global norm before the optimizer
    config.train.lr_schedule = "constant"  # or "cosine": from learning_rate down to 0 at train.max_epochs;
                                           # "warmup_cosine": up from 0 over lr_warmup_epochs, then cosine
    config.train.lr_warmup_epochs = 0.0    # "warmup_cosine": epochs of the linear rise
    config.train.max_epochs = 200
    config.train.max_train_minutes = 0.0  # > 0: stop (like early stopping) once training took this long;
                                          # depends on machine speed: reproduce a run with max_epochs instead
    config.train.patience = 10       # epochs without validation improvement before stopping
    config.train.min_delta = 0.0     # nats an epoch must improve by to count
    config.train.on_device = True    # dataset on device, epochs as compiled scans; False: per-step host loop
    config.train.steps_per_call = 0  # steps per compiled call; 0 = the whole epoch
    config.train.eval_batch_size = 1000
    config.train.skip_grad_norm = 0.0  # > 0: skip a step whose gradient norm is not below this (VDVAE); 0: never

    config.parallel = ml_collections.ConfigDict()
    config.parallel.distributed = False       # True: call jax.distributed.initialize (multi-host)
    config.parallel.coordinator_address = ""  # "" -> environment / cluster auto-detection
    config.parallel.num_processes = 0
    config.parallel.process_id = -1

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.keep = 2       # latest checkpoints kept (the best one is always kept)

    config.output = ml_collections.ConfigDict()
    config.output.num_samples = 64
    config.output.num_reconstructions = 32
    return config


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def check_key(key: str) -> None:
    """Raises ValueError naming an unknown config key and the nearest valid keys."""
    known = sorted(flatten(defaults().to_dict()))
    if key in known:
        return
    nearest = difflib.get_close_matches(key, known, n=3, cutoff=0.5) or [
        k for k in known if k.split(".")[0] == key.split(".")[0]][:6]
    raise ConfigError(f"unknown config key {key!r}; nearest valid keys: {', '.join(nearest) or 'none'} "
                     "(every key and its default: fvae/run/config.py, defaults())")


# Keys that no longer exist, dropped from saved configs: {key: why}.
RETIRED_KEYS = {"train.unroll": "convolutions no longer need unrolled steps on the CPU (fvae.models.conv_layers)"}


def with_defaults(values: dict) -> ml_collections.ConfigDict:
    """A saved config (e.g. a run's config.json) on top of defaults(): runs saved before a key
    existed load with that key's default (which is what they ran with), and keys since retired
    (RETIRED_KEYS) are dropped. JSON lists become tuples."""
    chosen = {section: values[section][selector] for section, (table, selector) in COMPONENTS.items()
              if isinstance(values.get(section), dict) and values[section].get(selector) in table}
    config = defaults(**chosen)
    values = {section: ({k: v for k, v in entries.items() if f"{section}.{k}" not in RETIRED_KEYS}
                        if isinstance(entries, dict) else entries) for section, entries in values.items()}

    def merge(target: ml_collections.ConfigDict, source: dict) -> None:
        for key, value in source.items():
            if isinstance(value, dict) and isinstance(target.get(key), ml_collections.ConfigDict):
                merge(target[key], value)
            else:
                target[key] = tuple(value) if isinstance(value, list) else value

    merge(config, values)
    return config


MAX_PICTURE_IMAGES = 10_000
MAX_SEED = 2**63 - 1  # jax.random.key takes an int64; numpy's generators refuse negative seeds.


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError (a ValueError) listing every problem of `config`, or returns quietly."""
    schema, given = flatten(defaults().to_dict()), flatten(config.to_dict())
    problems = [f"unknown key {k!r} (known keys are those of fvae.run.config.defaults())"
                for k in sorted(set(given) - set(schema))]
    problems += [f"missing key {k!r}" for k in sorted(set(schema) - set(given))]
    for key in sorted(set(given) & set(schema)):
        expected, value = type(schema[key]), given[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value) if abs(value) < 1e308 else math.inf  # float() of a huger int raises.
        if expected in (tuple, list) and isinstance(value, (tuple, list)):
            continue
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"{key} must be {expected.__name__}, got {type(value).__name__} {value!r}")
        elif expected is float and not math.isfinite(value):  # nan passes every comparison below.
            problems.append(f"{key} must be a finite number, got {value!r}")
        elif key.rsplit(".", 1)[-1].endswith("seed") and not 0 <= value <= MAX_SEED:
            problems.append(f"{key} must be in 0..{MAX_SEED} (a seed of jax keys and numpy generators), got {value!r}")
    if problems:
        raise ConfigError("Invalid config:\n  " + "\n  ".join(problems))

    t, d, m = config.train, config.data, config.model
    for name in ("batch_size", "max_epochs", "patience", "eval_batch_size"):
        if t[name] < 1:
            problems.append(f"train.{name} must be >= 1, got {t[name]!r}")
    if not t.learning_rate > 0:
        problems.append(f"train.learning_rate must be > 0, got {t.learning_rate!r}")
    if t.lr_schedule not in LR_SCHEDULES:
        problems.append(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {t.lr_schedule!r}")
    if t.max_train_minutes < 0:
        problems.append(f"train.max_train_minutes must be >= 0 (0: no limit), got {t.max_train_minutes!r}")
    if t.lr_warmup_epochs < 0 or (t.lr_schedule == "warmup_cosine" and not 0 < t.lr_warmup_epochs < t.max_epochs):
        problems.append(f"train.lr_warmup_epochs must be in (0, train.max_epochs) with lr_schedule "
                        f"'warmup_cosine' (and >= 0 always), got {t.lr_warmup_epochs!r}")
    if t.optimizer not in OPTIMIZERS:
        problems.append(f"train.optimizer must be one of {OPTIMIZERS}, got {t.optimizer!r}")
    for name in ("adam_b1", "adam_b2", "momentum"):
        if not 0 <= t[name] < 1:
            problems.append(f"train.{name} must be in [0, 1), got {t[name]!r}")
    if not t.adam_eps > 0:
        problems.append(f"train.adam_eps must be > 0, got {t.adam_eps!r}")
    if t.weight_decay < 0 or t.clip_grad_norm < 0:
        problems.append(f"train.weight_decay and train.clip_grad_norm must be >= 0 (0: none), got "
                        f"{t.weight_decay!r}, {t.clip_grad_norm!r}")
    if t.skip_grad_norm < 0:
        problems.append(f"train.skip_grad_norm must be >= 0 (0: never skip), got {t.skip_grad_norm!r}")
    if t.min_delta < 0:
        problems.append(f"train.min_delta must be >= 0, got {t.min_delta!r}")
    if t.steps_per_call < 0:
        problems.append(f"train.steps_per_call must be >= 0 (0: whole epoch), got {t.steps_per_call!r}")
    if m.latents < 1:
        problems.append(f"model.latents must be >= 1, got {m.latents!r}")
    if any(not isinstance(w, int) or w < 1 for w in (*m.encoder_hidden, *m.decoder_hidden)):
        problems.append(f"model.encoder_hidden / decoder_hidden must be positive integers, got "
                        f"{tuple(m.encoder_hidden)} / {tuple(m.decoder_hidden)}")
    if m.compute_dtype not in COMPUTE_DTYPES:
        problems.append(f"model.compute_dtype must be one of {COMPUTE_DTYPES}, got {m.compute_dtype!r}")
    if not 0 < d.val_size < NUM_TRAIN:
        problems.append(f"data.val_size must be in 1..{NUM_TRAIN - 1}, got {d.val_size!r}")
    if d.train_subset < 0:
        problems.append(f"data.train_subset must be >= 0 (0: all), got {d.train_subset!r}")
    train_images = d.train_subset or NUM_TRAIN - d.val_size
    if 0 < d.val_size < NUM_TRAIN and train_images > NUM_TRAIN - d.val_size:
        problems.append(f"data.train_subset {d.train_subset} exceeds the {NUM_TRAIN - d.val_size} training "
                        "images left after the validation split")
    if t.batch_size > train_images:
        problems.append(f"train.batch_size {t.batch_size} exceeds the {train_images} training images")
    chosen: dict[str, Any] = {}  # section -> the registered class it names
    for section, (table, key) in COMPONENTS.items():
        name = config[section][key]
        if name not in table:
            problems.append(f"{section}.{key} must be one of {tuple(table)}, got {name!r}")
        else:
            chosen[section] = table[name]
            problems += table[name].check(config[section])
    pr, ob = config.prior, config.objective
    arch, prior = chosen.get("model"), chosen.get("prior")
    if m.conditional and arch and not arch.conditional:
        problems.append(f"model.architecture {m.architecture!r} cannot be model.conditional")
    if m.conditional and prior and not prior.conditional:
        problems.append(f"prior.name {pr.name!r} cannot be combined with model.conditional (e.g. the VampPrior's "
                        "pseudo-inputs have no label)")
    if ob.beta < 0 or ob.free_bits < 0 or ob.warmup_epochs < 0:
        problems.append(f"objective.beta, free_bits and warmup_epochs must be >= 0, got {ob.beta!r}, "
                        f"{ob.free_bits!r}, {ob.warmup_epochs!r}")
    if ob.iwae_samples < 1:
        problems.append(f"objective.iwae_samples must be >= 1, got {ob.iwae_samples!r}")
    if ob.iwae_samples > 1 and (ob.beta != 1 or ob.free_bits or ob.warmup_epochs):
        problems.append("objective.iwae_samples > 1 trains on the IWAE bound, which has no KL weight: leave "
                        "beta = 1, free_bits = 0 and warmup_epochs = 0")
    if ob.free_bits and arch and prior and not (arch.analytic_kl and prior.analytic_kl):
        problems.append(f"objective.free_bits needs a closed-form per-latent KL of one latent layer, which "
                        f"model.architecture {m.architecture!r} with prior.name {pr.name!r} does not have")
    if config.checkpoint.keep < 1:
        problems.append(f"checkpoint.keep must be >= 1, got {config.checkpoint.keep!r}")
    for name in ("num_samples", "num_reconstructions"):
        if not 1 <= config.output[name] <= MAX_PICTURE_IMAGES:
            problems.append(f"output.{name} must be in 1..{MAX_PICTURE_IMAGES:,} (images in one picture), got "
                            f"{config.output[name]!r}")
    if config.output.num_reconstructions % 8:
        problems.append("output.num_reconstructions must be a multiple of 8 (the picture has 8 columns)")
    p = config.parallel
    if p.coordinator_address and not p.distributed:
        problems.append("parallel.coordinator_address is set but parallel.distributed is False")
    if p.distributed and p.coordinator_address and not (p.num_processes >= 1 and 0 <= p.process_id < p.num_processes):
        problems.append("parallel.num_processes >= 1 and 0 <= parallel.process_id < num_processes are required "
                        "with parallel.coordinator_address")
    if problems:
        raise ConfigError("Invalid config:\n  " + "\n  ".join(problems))
