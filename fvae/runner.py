"""The thin runner: train a config to early stopping in a run directory, then report.

Everything with side effects (files, printing, progress bars) happens here or in
`experiments/`; the functions it calls in fvae.train / fvae.evaluate are pure.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np

from fvae import data, plots, runs
from fvae.checkpoint import Checkpoints
from fvae.evaluate import evaluate, generate, reconstruct
from fvae.models import build_model
from fvae.train import EarlyStopping, TrainState, create_train_state, train_epoch, train_epoch_stepwise


class NonFiniteError(FloatingPointError):
    """A loss became NaN or Inf; the last good checkpoint stays the latest."""


def check_config(config: ml_collections.ConfigDict) -> None:
    """Rejects values that cannot work, before any work starts; lists every problem."""
    problems = []
    t = config.train
    for name in ("batch_size", "max_epochs", "patience", "eval_batch_size"):
        if not isinstance(t[name], int) or t[name] < 1:
            problems.append(f"train.{name} must be a positive integer, got {t[name]!r}")
    if not t.learning_rate > 0:
        problems.append(f"train.learning_rate must be > 0, got {t.learning_rate!r}")
    if t.min_delta < 0:
        problems.append(f"train.min_delta must be >= 0, got {t.min_delta!r}")
    if t.steps_per_call < 0:
        problems.append(f"train.steps_per_call must be >= 0 (0: whole epoch), got {t.steps_per_call!r}")
    if config.model.latents < 1:
        problems.append(f"model.latents must be >= 1, got {config.model.latents!r}")
    if any(w < 1 for w in (*config.model.encoder_hidden, *config.model.decoder_hidden)):
        problems.append("model.encoder_hidden / decoder_hidden widths must be >= 1")
    if not 0 < config.data.val_size < data.NUM_TRAIN:
        problems.append(f"data.val_size must be in 1..{data.NUM_TRAIN - 1}, got {config.data.val_size!r}")
    if config.checkpoint.keep < 1:
        problems.append(f"checkpoint.keep must be >= 1, got {config.checkpoint.keep!r}")
    if problems:
        raise ValueError("Invalid config:\n  " + "\n  ".join(problems))


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The run's independent random streams, all derived from the seed."""
    root = jax.random.key(seed)
    return {name: jax.random.fold_in(root, i) for i, name in enumerate(("init", "train", "shuffle", "eval", "sample"))}


def _finite_or_raise(epoch: int, metrics: dict[str, float], workdir: Path) -> None:
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        raise NonFiniteError(
            f"Epoch {epoch}: non-finite metrics {bad}. Likely causes: a learning rate too high, "
            f"a corrupt input batch, or overflow in exp(logvar). Nothing of epoch {epoch} was saved; "
            f"the latest checkpoint in {workdir} is the last good epoch.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, resume: bool = False,
                       log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Trains to early stopping (or max_epochs), restores the best epoch, reports on test.

    Writes into `workdir`: config.json, metrics.jsonl, checkpoints/, test_metrics.json,
    reconstructions.png, samples.png. Returns the final summary (also test_metrics.json).
    """
    check_config(config)
    workdir = runs.start(workdir, config.to_dict(), resume)
    t = config.train
    splits = data.load(config.data.data_dir or None, config.data.manual_dir or None,
                       val_size=config.data.val_size, seed=config.seed, flatten=True,
                       train_subset=config.data.train_subset)
    keys = run_keys(config.seed)
    model = build_model(config.model)
    state = create_train_state(model, keys["init"], splits.train_images[:1], t.learning_rate)
    train_images = jax.device_put(splits.train_images) if t.on_device else splits.train_images
    val_images, test_images = jax.device_put(splits.val_images), jax.device_put(splits.test_images)

    checkpoints = Checkpoints(workdir, keep=config.checkpoint.keep)
    stopper, history, start_epoch = EarlyStopping(t.patience, t.min_delta), [], 1
    if resume and checkpoints.latest_epoch() is not None:
        state, meta = checkpoints.restore_latest(state)
        stopper, history = EarlyStopping.from_dict(meta["early_stopping"]), meta["history"]
        start_epoch = meta["epoch"] + 1
        runs.write_history(workdir, history)  # Drops lines written after the checkpoint.
        log(f"Resuming {workdir} at epoch {start_epoch} (best so far: epoch {stopper.best_epoch}).")

    steps_per_epoch = len(train_images) // t.batch_size
    try:
        for epoch in range(start_epoch, t.max_epochs + 1):
            if stopper.should_stop:
                break
            state, record = _run_epoch(state, train_images, val_images, keys, epoch, config, progress)
            _finite_or_raise(epoch, record, workdir)
            improved = stopper.update(epoch, record["val_loss"])
            record.update(epoch=epoch, images_per_second=steps_per_epoch * t.batch_size / record["seconds"])
            history.append(record)
            checkpoints.save(epoch, state, {"epoch": epoch, "early_stopping": stopper.to_dict(),
                                            "history": history}, is_best=improved)
            runs.append_metrics(workdir, record)
            log(f"epoch {epoch:3d}  train {record['train_loss']:.2f}  val {record['val_loss']:.2f} "
                f"(rec {record['val_reconstruction']:.2f}, kl {record['val_kl']:.2f})  "
                f"{record['seconds']:.1f}s  {record['images_per_second']:.0f} img/s"
                f"{'  *best' if improved else ''}")
        best_state, _ = checkpoints.restore_best(state)
    finally:
        checkpoints.close()

    summary = _final_report(best_state, splits, val_images, test_images, keys, config, workdir, stopper, history)
    log(f"Best epoch {stopper.best_epoch} of {len(history)}: test loss {summary['test_loss']:.2f} "
        f"(rec {summary['test_reconstruction']:.2f}, kl {summary['test_kl']:.2f}). Outputs in {workdir}")
    return summary


def _run_epoch(state: TrainState, train_images, val_images, keys, epoch: int,
               config: ml_collections.ConfigDict, progress: bool) -> tuple[TrainState, dict]:
    """Trains one epoch and evaluates on validation; returns the state and the epoch record."""
    from tqdm.auto import tqdm

    t = config.train
    start = time.perf_counter()
    steps = len(train_images) // t.batch_size
    with tqdm(total=steps, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="step") as bar:
        if t.on_device:
            state, train_metrics = train_epoch(state, train_images, keys["train"], keys["shuffle"], epoch,
                                               t.batch_size, t.steps_per_call, bar.update)
        else:
            state, train_metrics = train_epoch_stepwise(state, train_images, keys["train"], keys["shuffle"],
                                                        epoch, t.batch_size, bar.update)
        val_metrics = evaluate(state, val_images, keys["eval"], t.eval_batch_size)
        record = {f"train_{k}": float(v) for k, v in train_metrics.items()}
        record.update({f"val_{k}": float(v) for k, v in val_metrics.items()})
    record["seconds"] = time.perf_counter() - start
    return state, record


def _final_report(state: TrainState, splits: data.Splits, val_images, test_images, keys,
                  config: ml_collections.ConfigDict, workdir: Path, stopper: EarlyStopping,
                  history: list[dict]) -> dict:
    """Test metrics of the best epoch (the only use of the test set) and the pictures."""
    test = evaluate(state, test_images, keys["eval"], config.train.eval_batch_size)
    val = evaluate(state, val_images, keys["eval"], config.train.eval_batch_size)
    summary = {"best_epoch": stopper.best_epoch, "epochs_trained": len(history),
               "train_seconds": sum(r["seconds"] for r in history)}
    summary.update({f"test_{k}": float(v) for k, v in test.items()})
    summary.update({f"val_{k}": float(v) for k, v in val.items()})
    runs.write_json(Path(workdir) / runs.TEST_METRICS_FILE, summary)

    n = config.output.num_reconstructions
    originals = splits.test_images[:n]
    plots.save_reconstructions(Path(workdir) / "reconstructions.png", originals.astype(np.float32) / 255.0,
                               np.asarray(reconstruct(state, originals)),
                               labels=[data.CLASS_NAMES[i] for i in splits.test_labels[:n]])
    samples = np.asarray(generate(state, keys["sample"], config.output.num_samples))
    plots.save_image_grid(Path(workdir) / "samples.png", samples, "Samples from the prior N(0, I)")
    return summary
