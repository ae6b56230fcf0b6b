"""Evaluate a trained run: likelihoods, latent diagnostics, representation quality, pictures.

    python -m experiments.evaluate --workdir runs/default [--iwae_samples=1000,5000] [--split=test]

Writes RUN/eval/metrics.json, RUN/eval/report.md (metrics table with every picture
embedded), the pictures, and the latent codes (posterior means) with labels as .npy.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from fvae import data, plots, runs  # noqa: E402
from fvae.checkpoint import CheckpointError  # noqa: E402
from fvae.evaluate import (decode, encode_dataset, evaluate_elbo, generate, iwae_nll,  # noqa: E402
                           latent_statistics, reconstruct)
from fvae.representations import knn_accuracy, linear_probe_accuracy  # noqa: E402
from fvae.runner import load_run_state, load_splits, run_keys  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory to evaluate.", required=True)
flags.DEFINE_list("iwae_samples", ["1000"], "Importance samples K for the IWAE bound (one estimate per K).")
flags.DEFINE_enum("split", "test", ["test", "val", "train"], "Split for the likelihood metrics.")
flags.DEFINE_integer("limit", 0, "Evaluate only the first N images of the split (0: all).")
flags.DEFINE_bool("overwrite", False, "Replace an existing RUN/eval folder.")
FLAGS = flags.FLAGS

EVAL_DIR = "eval"


def evaluate_run(workdir: str | Path, iwae_samples=(1000,), split: str = "test", limit: int = 0,
                 overwrite: bool = False, log=print) -> dict:
    """Computes every metric and picture of a run into RUN/eval; returns the metrics."""
    workdir = Path(workdir)
    out = workdir / EVAL_DIR
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise runs.RunDirError(f"{out} exists; pass --overwrite to replace it.")
    out.mkdir(parents=True, exist_ok=True)
    config, state = load_run_state(workdir)
    splits = load_splits(config)
    images, labels = {"test": (splits.test_images, splits.test_labels), "val": (splits.val_images, splits.val_labels),
                      "train": (splits.train_images, splits.train_labels)}[split]
    if limit:
        images, labels = images[:limit], labels[:limit]
    device_images = jax.device_put(images)
    keys = run_keys(config.seed)
    metrics = {"split": split, "images": len(images), "latents": config.model.latents}

    start = time.perf_counter()
    elbo = evaluate_elbo(state, device_images, keys["eval"])
    metrics.update({f"elbo_{k}": float(v) for k, v in elbo.items()})
    stats = latent_statistics(state, device_images)
    metrics["kl_per_dimension"] = [float(v) for v in stats["kl_per_dimension"]]
    metrics["active_units"] = int(stats["active_units"])
    metrics["reconstruction_mse"] = float(stats["reconstruction_mse"])
    metrics["seconds_elbo_and_latents"] = time.perf_counter() - start
    for k in iwae_samples:
        start = time.perf_counter()
        nll = float(iwae_nll(state, device_images, jax.random.fold_in(keys["eval"], k), num_samples=k,
                             batch_size=100, sample_chunk=math.gcd(k, 100)))
        metrics[f"iwae_nll_k{k}"] = nll
        metrics[f"iwae_bits_per_dim_k{k}"] = nll / (784 * math.log(2))
        metrics[f"seconds_iwae_k{k}"] = time.perf_counter() - start
        log(f"IWAE K={k}: -log p(x) <= {nll:.2f} nats ({metrics[f'iwae_bits_per_dim_k{k}']:.4f} bits/dim) "
            f"in {metrics[f'seconds_iwae_k{k}']:.0f} s")

    start = time.perf_counter()
    train_codes = np.asarray(encode_dataset(state, jax.device_put(splits.train_images))[0])
    test_codes = np.asarray(encode_dataset(state, jax.device_put(splits.test_images))[0])
    for name, array in (("train_codes", train_codes), ("train_labels", splits.train_labels),
                        ("test_codes", test_codes), ("test_labels", splits.test_labels)):
        np.save(out / f"{name}.npy", array)
    metrics["linear_probe_accuracy"] = linear_probe_accuracy(train_codes, splits.train_labels, test_codes,
                                                             splits.test_labels)
    metrics["knn5_accuracy"] = knn_accuracy(train_codes, splits.train_labels, test_codes, splits.test_labels)
    metrics["seconds_probes"] = time.perf_counter() - start

    pictures = _pictures(state, config, splits, test_codes, keys, workdir, out, metrics["kl_per_dimension"])
    runs.write_json(out / "metrics.json", metrics)
    (out / "report.md").write_text(_report(workdir, metrics, pictures))
    log(f"ELBO {metrics['elbo_loss']:.2f} nats, active units {metrics['active_units']}/{config.model.latents}, "
        f"probe {metrics['linear_probe_accuracy']:.3f}, kNN {metrics['knn5_accuracy']:.3f}. Report: {out / 'report.md'}")
    return metrics


def _pictures(state, config, splits, test_codes, keys, workdir: Path, out: Path, kl: list[float]) -> list[str]:
    """Writes every picture into `out`; returns their file names in report order."""
    names = data.CLASS_NAMES
    test_images, test_labels = splits.test_images, splits.test_labels
    written = []

    def saved(name):
        written.append(name)
        return out / name

    plots.save_image_grid(saved("samples.png"), np.asarray(generate(state, keys["sample"], 64)),
                          "Samples from the prior N(0, I)")
    plots.save_reconstructions(saved("reconstructions.png"), test_images[:32] / 255.0,
                               np.asarray(reconstruct(state, test_images[:32])),
                               labels=[names[i] for i in test_labels[:32]])

    # Interpolation between pairs of test images of different classes.
    starts = [int(np.flatnonzero(test_labels == c)[0]) for c in range(0, 10, 2)]
    ends = [int(np.flatnonzero(test_labels == c + 1)[0]) for c in range(0, 10, 2)]
    weights = np.linspace(0, 1, 10)[:, None]
    rows = []
    for a, b in zip(starts, ends):
        line = (1 - weights) * test_codes[a] + weights * test_codes[b]
        decoded = np.asarray(decode(state, line))
        rows.append(np.concatenate([test_images[a:a + 1] / 255.0, decoded, test_images[b:b + 1] / 255.0]))
    plots.save_interpolations(saved("interpolations.png"), np.stack(rows), [names[test_labels[i]] for i in starts],
                              [names[test_labels[i]] for i in ends])

    # Traversals of the dimensions with the most KL, around the first test image's code.
    dims = list(np.argsort(kl)[::-1][:min(8, len(kl))])
    values = np.linspace(-3, 3, 9)
    grid = []
    for d in dims:
        z = np.repeat(test_codes[:1], len(values), axis=0)
        z[:, d] = values
        grid.append(np.asarray(decode(state, z)))
    plots.save_traversals(saved("traversals.png"), np.stack(grid), values, dims, [kl[d] for d in dims])

    if config.model.latents == 2:
        from scipy.stats import norm

        quantiles = norm.ppf(np.linspace(0.05, 0.95, 15))
        z1, z2 = np.meshgrid(quantiles, quantiles[::-1])
        z = np.stack([z1.ravel(), z2.ravel()], axis=1)
        plots.save_manifold(saved("manifold.png"), np.asarray(decode(state, z)).reshape(15, 15, -1), quantiles)
        plots.save_latent_scatter(saved("latent_scatter.png"), test_codes, test_labels, names,
                                  "Test posterior means (2-D latent space)")
    else:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE

        plots.save_latent_scatter(saved("latent_pca.png"), PCA(2).fit_transform(test_codes), test_labels, names,
                                  "Test posterior means, first two principal components")
        subset = slice(0, 2000)
        embedded = TSNE(2, init="pca", random_state=0).fit_transform(test_codes[subset])
        plots.save_latent_scatter(saved("latent_tsne.png"), embedded, test_labels[subset], names,
                                  "Test posterior means, t-SNE (first 2,000 test images)")

    history = runs.load_history(workdir)
    if history:
        best = runs.read_json(workdir / runs.TEST_METRICS_FILE)["best_epoch"] \
            if (workdir / runs.TEST_METRICS_FILE).is_file() else None
        plots.save_training_curves(saved("training_curves.png"), history, best)
    return written


def _report(workdir: Path, metrics: dict, pictures: list[str]) -> str:
    rows = [(k, v) for k, v in metrics.items() if k != "kl_per_dimension"]
    table = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows)
    kl = ", ".join(f"{v:.2f}" for v in metrics["kl_per_dimension"])
    figures = "\n\n".join(f"### {name.removesuffix('.png').replace('_', ' ')}\n\n![{name}]({name})" for name in pictures)
    return (f"# Evaluation of {workdir.name}\n\nAll likelihoods in nats per image on the {metrics['split']} split "
            f"({metrics['images']} images); IWAE rows are upper bounds on -log p(x).\n\n| metric | value |\n"
            f"| --- | --- |\n{table}\n\nKL per latent dimension: {kl}\n\n## Pictures\n\n{figures}\n")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        evaluate_run(FLAGS.workdir, [int(k) for k in FLAGS.iwae_samples], FLAGS.split, FLAGS.limit, FLAGS.overwrite)
    except (data.DataError, runs.RunDirError, CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    app.run(main)
