"""Experiment setup from a config: the run's random streams, its data splits (with the
evaluation binarization), its initial state, the labels a model is given, and a trained
run's state for analysis. Shared by the runner, the report, the sweep and notebooks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import ml_collections
import numpy as np

from fvae import data, runs
from fvae.checkpoint import Checkpoints
from fvae.config import learning_rate, objective
from fvae.likelihoods import build_likelihood
from fvae.models import build_model
from fvae.priors import build_prior
from fvae.train import TrainState, create_train_state


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's independent random streams, all derived from the seed."""
    root = jax.random.key(seed)
    return {name: jax.random.fold_in(root, i) for i, name in enumerate(("init", "train", "shuffle", "eval", "sample"))}


def load_splits(config: ml_collections.ConfigDict) -> data.Splits:
    """The train/val/test arrays a config asks for (prepared through tfds once).

    Validation and test images are what the likelihood evaluates on
    (`evaluation_images`): for the binarized Bernoulli one fixed binarization by
    likelihood.eval_binarization_seed (the standard setting for comparing -log p(x) with
    published numbers); training images stay grey and are binarized afresh in every step.
    """
    splits = data.load(config.data.data_dir or None, config.data.manual_dir or None, val_size=config.data.val_size,
                       seed=config.seed, flatten=True, train_subset=config.data.train_subset)
    likelihood = build_likelihood(config.likelihood)
    return dataclasses.replace(
        splits, val=splits.val._replace(images=likelihood.evaluation_images(splits.val.images, 1)),
        test=splits.test._replace(images=likelihood.evaluation_images(splits.test.images, 2)))


def stored_split(config: ml_collections.ConfigDict, split: str) -> data.Dataset:
    """A whole split as stored ("train": all 60,000 images, no validation hold-out), grey
    uint8 images (N, 784) with labels: what the sample-quality classifier trains and scores on."""
    stored = data.load_split(data.prepare(config.data.data_dir or None, config.data.manual_dir or None), split)
    return data.Dataset(stored.images.reshape(stored.num_examples, -1), stored.labels)


def sample_quality_classifier(config: ml_collections.ConfigDict, folder: str | Path | None = None, log=print):
    """The parameters of fvae's Fashion-MNIST classifier (fvae.classifier) for this config's
    data: read from `folder` (default: DATA_DIR/fvae_classifier), trained on all training
    images and saved there first if missing."""
    from fvae.classifier import cached_classifier
    from fvae.data_files import resolve_data_dir

    folder = folder or resolve_data_dir(config.data.data_dir or None) / "fvae_classifier"
    return cached_classifier(folder, lambda: stored_split(config, "train"), log=log)


def initial_state(config: ml_collections.ConfigDict) -> TrainState:
    """The run's freshly initialized TrainState (also the template that checkpoints restore into)."""
    return create_train_state(build_model(config), run_keys(config.seed)["init"],
                              np.zeros((1, 784), np.uint8), learning_rate(config), objective(config))


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
    return f"Samples from {build_prior(config.prior).description}" + (", labels cycling through the 10 classes" if config.model.conditional else "")


def load_run_state(workdir: str | Path, which: str = "best") -> tuple[ml_collections.ConfigDict, TrainState]:
    """A finished or stopped run's config and its best (or latest) TrainState, for analysis."""
    config = runs.load_config(workdir)
    template = initial_state(config)
    checkpoints = Checkpoints(workdir, keep=config.checkpoint.keep)
    try:
        state, _ = checkpoints.restore_best(template) if which == "best" else checkpoints.restore_latest(template)
    finally:
        checkpoints.close()
    return config, state
