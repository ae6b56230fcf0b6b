"""Evaluation of a trained run (or a stored model) into RUN/eval: likelihoods, latent
diagnostics, representation quality, sample quality, pictures and a markdown report.

`likelihood_metrics` and `probe_metrics` return numbers and write nothing (for notebooks and
research code); `evaluate_run`, what `experiments.evaluate` and `experiments.sweep` call, loads
the run and its data once, calls them, and turns their numbers into files and pictures."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from fvae import errors, files
from fvae.analysis.probes import knn_accuracy, linear_probe_accuracy
from fvae.analysis.samplers import LatentSampler
from fvae.compute.bounds import ACTIVE_THRESHOLD, dataset_codes, evaluate_bound, iwae_log_likelihoods, latent_statistics
from fvae.models import build_model
from fvae.models.likelihoods import bits_per_dim, build_likelihood
from fvae.run import generation, rundir, stored
from fvae.run.assemble import load_splits, model_inputs, run_keys, sample_quality_classifier, stored_data
from fvae.run.pictures import draw_evaluation_pictures

EVAL_BATCH = 1000  # Images per compiled evaluation call.


def evaluate_run(path: str | Path, iwae_samples: Sequence[int] = (1000,), split: str = "test", limit: int = 0,
                 overwrite: bool = False, *, samplers: Mapping[str, LatentSampler] | None = None,
                 out: str | Path | None = None,
                 retrain_classifier: bool = False, temperatures: Sequence[float] = (),
                 log: Callable[[str], None] = print) -> dict:
    """Computes every metric and picture of a run directory or a stored model (`path`) into
    `out` (default RUN/eval; required for a stored model); returns the metrics.

    limit: evaluate the likelihoods on the first N images of the split. The sample-quality
    scores always compare SCORE_IMAGES samples of the prior and of each of `samplers` (by name,
    as generation.chosen_samplers makes them) with as
    many test images, in the shipped classifier's features (retrain_classifier: one trained
    on this machine's data instead), and a sheet shows them side by side. temperatures: a
    picture of prior samples at each (every latent layer's noise scaled by it).
    """
    if any(not (t > 0 and math.isfinite(t)) for t in temperatures):
        raise errors.ConfigError(f"--temperatures must be positive numbers, got {list(temperatures)}")
    path = Path(path)
    out = stored.output_folder(path, out, rundir.EVAL_DIR)
    samplers = samplers or {}
    generation.check_generators(list(samplers))
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise errors.RunDirError(f"{out} exists; pass --overwrite to replace it.")
    config, state = stored.load_trained(path)  # Before anything is written: a wrong path creates nothing.
    rundir.load_history(path)  # A damaged metrics.jsonl (the training curves) is named before the work.
    generation.check_generators(list(samplers), config)
    out.mkdir(parents=True, exist_ok=True)
    stored_splits = stored_data(config)  # The data, read once.
    splits = load_splits(config, stored_splits)
    evaluated = {"test": splits.test, "val": splits.val, "train": splits.train}[split]
    if limit:
        evaluated = evaluated.take(limit)
    inputs = jax.device_put(model_inputs(config, evaluated))
    keys = run_keys(config.seed)
    discrete = build_likelihood(config.likelihood).discrete  # bits/dim only where defined
    metrics = {"split": split, "images": evaluated.num_examples, "likelihood": config.likelihood.name}

    metrics.update(likelihood_metrics(state, inputs, keys["eval"], iwae_samples, discrete,
                                      build_model(config).group_sizes, log))
    codes = {name: (np.asarray(dataset_codes(state, jax.device_put(model_inputs(config, dataset)), EVAL_BATCH)),
                    dataset.labels) for name, dataset in (("train", splits.train), ("test", splits.test))}
    for name, (array, labels) in codes.items():
        files.write_npy(out / f"{name}_codes.npy", array)
        files.write_npy(out / f"{name}_labels.npy", labels)
    metrics.update(probe_metrics(*codes["train"], *codes["test"]))
    test_codes = codes["test"][0]

    start = time.perf_counter()
    fitted = generation.fitted_samplers(path, config, state, samplers, splits, log)
    classifier = sample_quality_classifier(config, retrain_classifier, log)
    metrics.update(generation.sample_quality(state, config, stored_splits.test, classifier, fitted))
    metrics["seconds_sample_quality"] = time.perf_counter() - start
    for name, scores in {"prior": metrics, **metrics.get("samplers", {})}.items():
        log(f"Samples of the {name}: Frechet distance {scores['frechet_distance']:.2f}, precision "
            f"{scores['precision']:.3f}, recall {scores['recall']:.3f} ({scores['sample_images']} against as many "
            "test images)")

    pictures = draw_evaluation_pictures(state, config, splits, test_codes, metrics["kl_per_dimension"], path, out,
                                        tuple(temperatures))
    if samplers:
        generation.comparison_sheet(out / "samplers.png", state, config, fitted)
        pictures.append("samplers.png")
    files.write_json(out / "metrics.json", metrics)
    files.write_text(out / "report.md", _report(path, metrics, pictures))
    log(f"ELBO {metrics['elbo_loss']:.2f} nats, active units {metrics['active_units']}/{metrics['latents']}, "
        f"probe {metrics['linear_probe_accuracy']:.3f}, kNN {metrics['knn5_accuracy']:.3f}. "
        f"Report: {out / 'report.md'}")
    return metrics


def likelihood_metrics(state, inputs, key: jax.Array, iwae_samples: Sequence[int], discrete: bool,
                       group_sizes: Sequence[int], log: Callable[[str], None] = print) -> dict:
    """The numbers of a model on `inputs` (images, labels), with no file written: the negative
    ELBO and its terms, bits/dim where the likelihood is discrete, the latent diagnostics (KL
    per latent, active units, per group), the reconstruction error, and the IWAE bound for each
    K of `iwae_samples` (iwae_metrics)."""
    start = time.perf_counter()
    metrics: dict[str, Any] = {f"elbo_{k}": float(v) for k, v in evaluate_bound(state, inputs, key, EVAL_BATCH).items()}
    if discrete:
        metrics["elbo_bits_per_dim"] = bits_per_dim(metrics["elbo_loss"])
    stats = latent_statistics(state, inputs, EVAL_BATCH)
    metrics["kl_per_dimension"] = [float(v) for v in stats["kl_per_dimension"]]
    metrics["latents"] = len(metrics["kl_per_dimension"])  # The code's size: every layer of a hierarchical VAE.
    metrics["active_units"] = int(stats["active_units"])
    metrics.update(group_metrics(group_sizes, stats))
    metrics["reconstruction_mse"] = float(stats["reconstruction_mse"])
    metrics["seconds_elbo_and_latents"] = time.perf_counter() - start
    metrics.update(iwae_metrics(state, inputs, key, iwae_samples, discrete, log))
    return metrics


def probe_metrics(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                  test_labels: np.ndarray) -> dict:
    """How well the codes (posterior means) tell the classes apart: a linear probe's and 5-NN's
    test accuracy, trained on the training codes."""
    start = time.perf_counter()
    return {"linear_probe_accuracy": linear_probe_accuracy(train_codes, train_labels, test_codes, test_labels),
            "knn5_accuracy": knn_accuracy(train_codes, train_labels, test_codes, test_labels),
            "seconds_probes": time.perf_counter() - start}


def group_metrics(group_sizes: Sequence[int], stats: dict) -> dict:
    """Per stochastic group (layer), bottom first: its KL (the sum of its latents' KL, nats)
    and its active units, so that a collapsed group shows. Empty for a one-layer model."""
    if len(group_sizes) < 2:
        return {}
    ends = np.cumsum([0, *group_sizes])
    kl, variance = np.asarray(stats["kl_per_dimension"], np.float64), np.asarray(stats["code_variance"])
    spans = list(zip(ends[:-1], ends[1:]))
    return {"kl_per_group": [float(kl[a:b].sum()) for a, b in spans],
            "active_units_per_group": [int((variance[a:b] > ACTIVE_THRESHOLD).sum()) for a, b in spans],
            "latents_per_group": [int(n) for n in group_sizes]}


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
        per_image = iwae_per_image(state, inputs, key, k)
        per_k[k] = per_image
        nll = float(np.mean(per_image))
        metrics[f"iwae_nll_k{k}"] = nll
        metrics[f"iwae_nll_k{k}_stderr"] = standard_error(per_image)
        if discrete:
            metrics[f"iwae_bits_per_dim_k{k}"] = bits_per_dim(nll)
        metrics[f"seconds_iwae_k{k}"] = time.perf_counter() - start
        bits = f" ({metrics[f'iwae_bits_per_dim_k{k}']:.4f} bits/dim)" if discrete else ""
        log(f"IWAE K={k}: -log p(x) <= {nll:.2f} nats{bits} in {metrics[f'seconds_iwae_k{k}']:.0f} s")
    largest = max(per_k)
    for k, per_image in per_k.items():
        if k != largest:
            gap, gap_stderr = paired_difference(per_image, per_k[largest])
            metrics[f"iwae_nll_k{k}_minus_k{largest}"] = gap
            metrics[f"iwae_nll_k{k}_minus_k{largest}_stderr"] = gap_stderr
    return metrics


def iwae_per_image(state, inputs, key: jax.Array, k: int) -> np.ndarray:
    """The IWAE bound on -log p(x) of each image (float64), with K=k importance samples drawn
    from fold_in(key, k): what iwae_metrics (and so experiments.evaluate) averages for that K."""
    return -np.asarray(iwae_log_likelihoods(state, inputs, jax.random.fold_in(key, k), num_samples=k), np.float64)


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """mean(a - b) over the same images and its standard error: the images' own spread, which
    the two means share, cancels, so this is far more precise than the difference of means."""
    gap = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.mean(gap)), standard_error(gap)


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of `values` (n >= 2)."""
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def _report(workdir: Path, metrics: dict, pictures: list[str]) -> str:
    rows = [(k, v) for k, v in metrics.items() if k not in ("kl_per_dimension", "samplers", *GROUP_KEYS)]
    table = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows)
    kl = ", ".join(f"{v:.2f}" for v in metrics["kl_per_dimension"])
    figures = "\n\n".join(f"### {name.removesuffix('.png').replace('_', ' ')}\n\n![{name}]({name})"
                          for name in pictures)
    return (f"# Evaluation of {workdir.name}\n\nAll likelihoods in nats per image on the {metrics['split']} split "
            f"({metrics['images']} images); IWAE rows are upper bounds on -log p(x).\n\n| metric | value |\n"
            f"| --- | --- |\n{table}\n\n{_groups_table(metrics)}KL per latent dimension: {kl}\n\n"
            f"{_samples_table(metrics)}"
            f"## Pictures\n\n{figures}\n")


GROUP_KEYS = ("kl_per_group", "active_units_per_group", "latents_per_group")


def _groups_table(metrics: dict) -> str:
    """One row per stochastic group, bottom first: KL and active units (posterior collapse shows as 0)."""
    if "kl_per_group" not in metrics:
        return ""
    rows = "\n".join(f"| {i} | {kl:.2f} | {active}/{size} |" for i, (kl, active, size) in enumerate(
        zip(*(metrics[key] for key in GROUP_KEYS)), start=1))
    return ("## Stochastic groups\n\nBottom (next to x) first; KL in nats per image.\n\n| group | KL | active units |"
            f"\n| --- | --- | --- |\n{rows}\n\n")


def _samples_table(metrics: dict) -> str:
    """The prior's and each sampler's sample-quality scores, one row each."""
    rows = {"prior": metrics, **metrics.get("samplers", {})}
    lines = "\n".join(f"| {name} | {m['frechet_distance']:.2f} | {m['precision']:.3f} | {m['recall']:.3f} |"
                      for name, m in rows.items())
    return (f"## Samples\n\n{metrics['sample_images']} samples of each against as many test images, in the "
            f"features of the {metrics['classifier']} classifier.\n\n| samples from | Frechet distance | precision "
            f"| recall |\n| --- | --- | --- | --- |\n{lines}\n\n")
