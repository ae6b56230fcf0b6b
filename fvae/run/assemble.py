"""Experiment setup from a config: the run's random streams, its data splits (with the
evaluation binarization), its initial state, the labels a model is given, and a trained
run's state for analysis. Shared by the runner, the report, the sweep and notebooks."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import ml_collections
import numpy as np
import optax

from fvae import data
from fvae.analysis.classifier import cached_classifier, shipped_classifier, shipped_digest
from fvae.compute.state import TrainState, create_train_state
from fvae.data import NUM_TRAIN, sources
from fvae.errors import ConfigError
from fvae.models import build_model
from fvae.models.likelihoods import build_likelihood
from fvae.models.losses import Objective
from fvae.models.priors import build_prior
from fvae.run import rundir
from fvae.run.checkpoints import CheckpointError, Checkpoints


def steps_per_epoch(config: ml_collections.ConfigDict) -> int:
    """Train steps in one epoch: the training images (after the validation split) // batch size."""
    train_images = config.data.train_subset or NUM_TRAIN - config.data.val_size
    return train_images // config.train.batch_size


def objective(config: ml_collections.ConfigDict):
    """The training objective (fvae.models.losses.Objective) a config describes (warm-up converted
    from epochs to steps)."""
    o = config.objective
    return Objective(beta=float(o.beta), warmup_steps=int(o.warmup_epochs * steps_per_epoch(config)),
                     free_bits=float(o.free_bits), iwae_samples=int(o.iwae_samples))


def learning_rate(config: ml_collections.ConfigDict):
    """Adam's learning rate a config describes: a float (constant), or an optax schedule of
    the step: cosine decay from train.learning_rate to 0 over train.max_epochs epochs, after a
    linear rise from 0 over train.lr_warmup_epochs for "warmup_cosine"."""
    t = config.train
    if t.lr_schedule == "constant":
        return float(t.learning_rate)
    warmup = int(t.lr_warmup_epochs * steps_per_epoch(config)) if t.lr_schedule == "warmup_cosine" else 0
    return _cosine_schedule(float(t.learning_rate), t.max_epochs * steps_per_epoch(config), warmup)


@functools.lru_cache(maxsize=64)
def _cosine_schedule(initial: float, steps: int, warmup: int = 0) -> optax.Schedule:
    """One schedule object per (rate, steps, warm-up): the jitted steps' cache key holds it (see compute.state)."""
    if warmup:
        return optax.warmup_cosine_decay_schedule(0.0, initial, warmup, steps, end_value=0.0)
    return optax.cosine_decay_schedule(initial, steps)


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """The optax optimizer a config describes: train.optimizer (adam, adamw, sgd) with its
    hyperparameters at learning_rate(config), after clipping to train.clip_grad_norm if set."""
    t = config.train
    return _optimizer(t.optimizer, learning_rate(config), float(t.adam_b1), float(t.adam_b2), float(t.adam_eps),
                      float(t.weight_decay), float(t.momentum), float(t.clip_grad_norm))


@functools.lru_cache(maxsize=64)
def _optimizer(name: str, rate, b1: float, b2: float, eps: float, weight_decay: float, momentum: float,
               clip: float) -> optax.GradientTransformation:
    """One optimizer object per setting: the jitted steps' cache key holds it (see compute.state)."""
    if name == "adam":
        tx = optax.adam(rate, b1, b2, eps)
    elif name == "adamw":
        tx = optax.adamw(rate, b1, b2, eps, weight_decay=weight_decay)
    else:
        tx = optax.sgd(rate, momentum=momentum or None)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's independent random streams, all derived from the seed."""
    root = jax.random.key(seed)
    return {name: jax.random.fold_in(root, i) for i, name in enumerate(("init", "train", "shuffle", "eval", "sample"))}


def stored_data(config: ml_collections.ConfigDict) -> data.StoredSplits:
    """The stored train (all 60,000 images, no validation hold-out) and test splits, grey uint8
    images (N, 784) with labels: what the sample-quality classifier trains and scores on, and
    what load_splits splits. Read once per evaluation and passed on."""
    return data.load_stored(config.data.data_dir or None, config.data.manual_dir or None)


def load_splits(config: ml_collections.ConfigDict, stored: data.StoredSplits | None = None) -> data.Splits:
    """The train/val/test arrays a config asks for, from `stored` (stored_data: read here if
    not given).

    Validation and test images are what the likelihood evaluates on
    (`evaluation_images`): for the binarized Bernoulli one fixed binarization by
    likelihood.eval_binarization_seed (the standard setting for comparing -log p(x) with
    published numbers); training images stay grey and are binarized afresh in every step.
    """
    splits = data.split(stored or stored_data(config), val_size=config.data.val_size, seed=config.seed,
                        train_subset=config.data.train_subset)
    likelihood = build_likelihood(config.likelihood)
    return dataclasses.replace(
        splits, val=splits.val._replace(images=likelihood.evaluation_images(splits.val.images, 1)),
        test=splits.test._replace(images=likelihood.evaluation_images(splits.test.images, 2)))


def sample_quality_classifier(config: ml_collections.ConfigDict, retrain: bool = False, log=print):
    """The parameters of fvae's Fashion-MNIST classifier (fvae.analysis.classifier) and a line
    saying which it is: the shipped weights, or with `retrain` one trained on this config's
    training images (kept in DATA_DIR/fvae_classifier and trained there once if missing)."""
    if not retrain:
        return shipped_classifier(), f"shipped (sha256 {shipped_digest()})"
    folder = sources.resolve_data_dir(config.data.data_dir or None) / "fvae_classifier"
    return cached_classifier(folder, lambda: stored_data(config).train, log=log), f"retrained in {folder}"


def check_fits_in_memory(config: ml_collections.ConfigDict) -> None:
    """Refuses (ConfigError) a model whose parameters, gradients and Adam's two moments would
    not fit in the memory this machine has free, before anything is written. The sizes come
    from jax.eval_shape: nothing is allocated."""
    model = build_model(config)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), np.zeros((1, 784), np.float32), jax.random.key(0),
                                               np.zeros((1,), np.int32)))
    params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))
    needed, free = 4 * 4 * params, _free_memory_bytes()
    if free and needed > free:
        raise ConfigError(f"the model has {params:,} parameters: with their gradients and Adam's moments "
                          f"{needed / 2**30:,.1f} GiB, more than the {free / 2**30:.1f} GiB free here; make it "
                          "smaller (model.latents, the hidden sizes, the groups)")


def _free_memory_bytes() -> int:
    """MemAvailable of /proc/meminfo in bytes (0 where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def initial_state(config: ml_collections.ConfigDict) -> TrainState:
    """The run's freshly initialized TrainState (also the template that checkpoints restore into)."""
    return create_train_state(build_model(config), run_keys(config.seed)["init"],
                              np.zeros((1, 784), np.uint8), learning_rate(config), objective(config),
                              config.train.skip_grad_norm, optimizer(config))


def conditioning_labels(config: ml_collections.ConfigDict, labels: np.ndarray) -> np.ndarray | None:
    """The labels to pass along with images: only conditional models read them."""
    return labels if config.model.conditional else None


def model_inputs(config: ml_collections.ConfigDict, dataset: data.Dataset) -> data.Dataset:
    """What the model reads of a split: its images, with the labels only for conditional models."""
    return data.Dataset(dataset.images, conditioning_labels(config, dataset.labels))


def sample_labels(config: ml_collections.ConfigDict, num: int) -> np.ndarray | None:
    """Labels for a picture of prior samples: every class in turn (conditional models), else None."""
    return np.arange(num, dtype=np.int32) % data.NUM_CLASSES if config.model.conditional else None


def samples_title(config: ml_collections.ConfigDict) -> str:
    """The title of a picture of prior samples: which prior, and the labels if conditional."""
    labels = ", labels cycling through the 10 classes" if config.model.conditional else ""
    return f"Samples from {build_prior(config.prior).description}{labels}"


def load_run_state(workdir: str | Path, which: str = "best") -> tuple[ml_collections.ConfigDict, TrainState]:
    """A run's config and its best (or latest) TrainState, for analysis: changes nothing in the
    run, which may be finished, stopped or still training (Checkpoints.read)."""
    config = rundir.load_config(workdir)
    if not rundir.has_checkpoint(workdir, which):  # Checked before Orbax creates the folder.
        raise CheckpointError(f"No {which} checkpoint in {Path(workdir) / 'checkpoints' / which}: the run has not "
                              "saved an epoch yet; train it (--resume) first.")
    template = initial_state(config)
    checkpoints = Checkpoints(workdir, keep=config.checkpoint.keep, read_only=True)  # A trainer may be writing.
    try:
        state, _ = checkpoints.read(template, which)
    finally:
        checkpoints.close()
    return config, state
