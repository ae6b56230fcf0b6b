"""Evaluation of a trained run into RUN/eval: likelihoods, latent diagnostics, representation
quality, pictures and a markdown report (the side-effect half of `experiments.evaluate`
and `experiments.sweep`; the metrics themselves are the pure functions of fvae.compute.bounds)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from fvae import data, errors, files
from fvae.analysis import plots
from fvae.analysis.probes import knn_accuracy, linear_probe_accuracy
from fvae.analysis.sample_scores import class_accuracy, frechet_distance_of_images
from fvae.compute.bounds import (
    dataset_codes,
    evaluate_bound,
    generate,
    generate_many,
    iwae_log_likelihoods,
    latent_statistics,
)
from fvae.errors import ConfigError
from fvae.models.likelihoods import bits_per_dim, build_likelihood
from fvae.run import rundir
from fvae.run.assemble import (
    load_run_state,
    load_splits,
    model_inputs,
    run_keys,
    sample_labels,
    sample_quality_classifier,
    stored_split,
)
from fvae.run.pictures import draw_evaluation_pictures


def evaluate_run(workdir: str | Path, iwae_samples: Sequence[int] = (1000,), split: str = "test", limit: int = 0,
                 overwrite: bool = False, log: Callable[[str], None] = print) -> dict:
    """Computes every metric and picture of a run into RUN/eval; returns the metrics.

    The sample-quality classifier is kept in the data directory (trained there once if missing).
    """
    workdir = Path(workdir)
    out = workdir / rundir.EVAL_DIR
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise errors.RunDirError(f"{out} exists; pass --overwrite to replace it.")
    config, state = load_run_state(workdir)  # Before anything is written: a wrong --workdir creates nothing.
    out.mkdir(exist_ok=True)
    splits = load_splits(config)
    evaluated = {"test": splits.test, "val": splits.val, "train": splits.train}[split]
    if limit:
        evaluated = evaluated.take(limit)
    inputs = jax.device_put(model_inputs(config, evaluated))
    keys = run_keys(config.seed)
    discrete = build_likelihood(config.likelihood).discrete  # bits/dim only where defined
    metrics = {"split": split, "images": evaluated.num_examples, "likelihood": config.likelihood.name}

    start = time.perf_counter()
    batch_size = 1000
    elbo = evaluate_bound(state, inputs, keys["eval"], batch_size)
    metrics.update({f"elbo_{k}": float(v) for k, v in elbo.items()})
    if discrete:
        metrics["elbo_bits_per_dim"] = bits_per_dim(metrics["elbo_loss"])
    stats = latent_statistics(state, inputs, batch_size)
    metrics["kl_per_dimension"] = [float(v) for v in stats["kl_per_dimension"]]
    metrics["latents"] = len(metrics["kl_per_dimension"])  # The code's size: both layers of a hierarchical VAE.
    metrics["active_units"] = int(stats["active_units"])
    metrics["reconstruction_mse"] = float(stats["reconstruction_mse"])
    metrics["seconds_elbo_and_latents"] = time.perf_counter() - start
    metrics.update(iwae_metrics(state, inputs, keys["eval"], iwae_samples, discrete, log))

    start = time.perf_counter()
    train_codes, test_codes = (
        np.asarray(dataset_codes(state, jax.device_put(model_inputs(config, split)), batch_size))
        for split in (splits.train, splits.test))
    train_labels, test_labels = splits.train.labels, splits.test.labels
    for name, array in (("train_codes", train_codes), ("train_labels", train_labels),
                        ("test_codes", test_codes), ("test_labels", test_labels)):
        np.save(out / f"{name}.npy", array)
    metrics["linear_probe_accuracy"] = linear_probe_accuracy(train_codes, train_labels, test_codes, test_labels)
    metrics["knn5_accuracy"] = knn_accuracy(train_codes, train_labels, test_codes, test_labels)
    metrics["seconds_probes"] = time.perf_counter() - start

    start = time.perf_counter()
    metrics.update(sample_quality_metrics(state, config, keys["sample"], limit or splits.test.num_examples,
                                  log))
    metrics["seconds_sample_quality"] = time.perf_counter() - start
    log(f"Sample quality: Frechet distance {metrics['frechet_distance']:.2f} to {metrics['frechet_distance_images']} "
        "test images in fvae classifier features" + (f", class-conditional accuracy "
                                                      f"{metrics['class_conditional_accuracy']:.3f}"
                                                      if "class_conditional_accuracy" in metrics else ""))

    pictures = draw_evaluation_pictures(state, config, splits, test_codes, metrics["kl_per_dimension"], workdir)
    files.write_json(out / "metrics.json", metrics)
    (out / "report.md").write_text(_report(workdir, metrics, pictures))
    log(f"ELBO {metrics['elbo_loss']:.2f} nats, active units {metrics['active_units']}/{metrics['latents']}, "
        f"probe {metrics['linear_probe_accuracy']:.3f}, kNN {metrics['knn5_accuracy']:.3f}. "
        f"Report: {out / 'report.md'}")
    return metrics


def iwae_metrics(state, inputs, key, iwae_samples, discrete: bool, log=print) -> dict:
    """The IWAE bound on -log p(x) for each K in `iwae_samples`, as flat metrics.

    Per K (its own key, fold_in(key, K), so one K gives the same number whichever others are
    asked for): `iwae_nll_k{K}` (the mean over the images), its standard error over the images
    (their spread plus the Monte Carlo noise), bits/dim where the likelihood is discrete, and
    seconds. With several K, also how much each K's bound exceeds the largest K's on the same
    images, `iwae_nll_k{K}_minus_k{Kmax}` with its standard error: a paired difference, far
    more precise than the difference of the two means, which share the images' spread.
    """
    per_k = {}
    metrics = {}
    for k in iwae_samples:
        start = time.perf_counter()
        per_image = -np.asarray(iwae_log_likelihoods(state, inputs, jax.random.fold_in(key, k), num_samples=k),
                                np.float64)
        per_k[k] = per_image
        nll = float(np.mean(per_image))
        metrics[f"iwae_nll_k{k}"] = nll
        metrics[f"iwae_nll_k{k}_stderr"] = _stderr(per_image)
        if discrete:
            metrics[f"iwae_bits_per_dim_k{k}"] = bits_per_dim(nll)
        metrics[f"seconds_iwae_k{k}"] = time.perf_counter() - start
        bits = f" ({metrics[f'iwae_bits_per_dim_k{k}']:.4f} bits/dim)" if discrete else ""
        log(f"IWAE K={k}: -log p(x) <= {nll:.2f} nats{bits} in {metrics[f'seconds_iwae_k{k}']:.0f} s")
    largest = max(per_k)
    for k, per_image in per_k.items():
        if k != largest:
            gap = per_image - per_k[largest]
            metrics[f"iwae_nll_k{k}_minus_k{largest}"] = float(np.mean(gap))
            metrics[f"iwae_nll_k{k}_minus_k{largest}_stderr"] = _stderr(gap)
    return metrics


def _stderr(values: np.ndarray) -> float:
    """Standard error of the mean of `values` (n >= 2)."""
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def sample_quality_metrics(state, config, key, num: int, log=print) -> dict:
    """Frechet distance between `num` prior samples (pixel means) and the first `num` grey
    test images in the features of fvae's classifier, the classifier's accuracy on those test
    images, and for conditional models its accuracy on `num` class-conditional samples
    (labels cycling through the classes). See fvae.analysis.sample_scores."""
    classifier = sample_quality_classifier(config, log=log)
    test = stored_split(config, "test").take(num)
    labels = sample_labels(config, num)
    samples = generate_many(state, key, num, labels)
    metrics = {"frechet_distance": frechet_distance_of_images(classifier, samples, test.images),
               "frechet_distance_images": num,
               "classifier_test_accuracy": class_accuracy(classifier, test.images, test.labels)}
    if labels is not None:
        metrics["class_conditional_accuracy"] = class_accuracy(classifier, samples, labels)
    return metrics


def _report(workdir: Path, metrics: dict, pictures: list[str]) -> str:
    rows = [(k, v) for k, v in metrics.items() if k != "kl_per_dimension"]
    table = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows)
    kl = ", ".join(f"{v:.2f}" for v in metrics["kl_per_dimension"])
    figures = "\n\n".join(f"### {name.removesuffix('.png').replace('_', ' ')}\n\n![{name}]({name})"
                          for name in pictures)
    return (f"# Evaluation of {workdir.name}\n\nAll likelihoods in nats per image on the {metrics['split']} split "
            f"({metrics['images']} images); IWAE rows are upper bounds on -log p(x).\n\n| metric | value |\n"
            f"| --- | --- |\n{table}\n\nKL per latent dimension: {kl}\n\n## Pictures\n\n{figures}\n")


def sample_run(workdir: str | Path, label: str | int | None = None, num: int = 64, seed: int = 0) -> Path:
    """Writes a grid of `num` prior samples (of class `label`) into RUN/samples; returns its path."""
    if num < 1:
        raise ConfigError(f"-n must be >= 1, got {num}")
    workdir = Path(workdir)
    config = rundir.load_config(workdir)
    conditional = config.model.conditional
    if label is not None and not conditional:
        raise ConfigError(f"{workdir} is not a conditional VAE (model.conditional is False): omit --label, or "
                         "train one with experiments/configs/conditional.py")
    index = data.parse_label(label) if label is not None else None
    _, state = load_run_state(workdir)
    labels = np.full(num, index, np.int32) if index is not None else sample_labels(config, num)
    images = np.asarray(generate(state, jax.random.key(seed), num, labels))
    name = "all_classes" if index is None and conditional else ("prior" if index is None else
                                                                 data.CLASS_NAMES[index].replace("/", "-"))
    out = workdir / "samples" / f"{name}_n{num}_seed{seed}.png"
    out.parent.mkdir(exist_ok=True)
    title = f"{num} samples of class {data.CLASS_NAMES[index]}" if index is not None else f"{num} prior samples"
    plots.save_image_grid(out, images, title)
    return out
