"""Sweeps: train and evaluate several configs in turn and tabulate them (experiments.sweep
is the command line and finds configs by name). Writes run directories and evaluation
folders, like fvae.run.trainer."""

from __future__ import annotations

from pathlib import Path

import ml_collections

from fvae import files
from fvae.run import rundir
from fvae.run.report import evaluate_run
from fvae.run.trainer import train_and_evaluate

COLUMNS = ("config", "likelihood", "test -log p(x), nats", "bits/dim", "neg. ELBO", "active units",
           "probe acc.", "sample Frechet distance", "epochs (best/trained)", "train min to best", "train min")


def run_one(name: str, config: ml_collections.ConfigDict, workdir: Path, iwae_samples: int, eval_images: int,
            log=print) -> dict:
    """Trains (or reuses / resumes) one config into workdir/name and evaluates it; returns its table row
    (name: the config's file name, or a variant's label)."""
    run_dir = workdir / name
    finished = (run_dir / rundir.TEST_METRICS_FILE).is_file()
    if not finished:
        log(f"== {name}: training into {run_dir}")
        train_and_evaluate(config, run_dir, resume=(run_dir / rundir.CONFIG_FILE).is_file(), log=log, progress=False)
    summary = files.read_json(run_dir / rundir.TEST_METRICS_FILE)
    log(f"== {name}: evaluating (IWAE K={iwae_samples})")
    metrics = evaluate_run(run_dir, [iwae_samples], limit=eval_images, overwrite=True, log=log)
    bits = metrics.get(f"iwae_bits_per_dim_k{iwae_samples}")
    return {
        "config": name, "likelihood": config.likelihood.name,
        "test -log p(x), nats": metrics[f"iwae_nll_k{iwae_samples}"],
        "bits/dim": bits, "neg. ELBO": metrics["elbo_loss"],
        "active units": f"{metrics['active_units']}/{metrics['latents']}",
        "probe acc.": metrics["linear_probe_accuracy"],
        "sample Frechet distance": metrics["frechet_distance"],
        "epochs (best/trained)": f"{summary['best_epoch']}/{summary['epochs_trained']}",
        "train min to best": (summary["train_seconds_to_best_epoch"] / 60
                              if "train_seconds_to_best_epoch" in summary else None),  # Older runs lack it.
        "train min": summary["train_seconds"] / 60,
    }


def markdown_table(rows: list[dict], iwae_samples: int, eval_images: int) -> str:
    def cell(value):
        if value is None:
            return "n/a"
        return f"{value:.2f}" if isinstance(value, float) and abs(value) >= 10 else (
            f"{value:.3f}" if isinstance(value, float) else str(value))

    images = f"the first {eval_images}" if eval_images else "all 10,000"
    lines = [f"IWAE bound with K={iwae_samples} and negative ELBO on {images} test images, in nats per image "
             "(bits/dim only where the likelihood is a normalized mass over discrete pixels). Bernoulli on grey "
             "pixels is not a normalized density; its numbers compare only with other Bernoulli rows.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"
