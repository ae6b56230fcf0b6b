"""The thin runner: train a config to early stopping in a run directory, then report.

Everything with side effects (files, printing, progress bars) happens here or in
`experiments/`; the functions it calls in fvae.train / fvae.evaluate are pure.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from fvae import data, parallel, plots, runs
from fvae.checkpoint import Checkpoints
from fvae.config import validate
from fvae.errors import Interrupted, UserError
from fvae.evaluate import evaluate_elbo, generate, reconstruct
from fvae.experiment import conditioning_labels, initial_state, load_splits, run_keys, sample_labels, samples_title
from fvae.parallel import Placement, to_host
from fvae.train import EarlyStopping, TrainState, first_nonfinite_step, train_epoch, train_epoch_stepwise


class NonFiniteError(UserError, FloatingPointError):
    """A loss became NaN or Inf; the last good checkpoint stays the latest."""


def _raise_nonfinite(epoch: int, where: str, workdir: Path) -> None:
    raise NonFiniteError(
        f"Epoch {epoch}, {where}: the loss became NaN or Inf. Likely causes: a learning rate too high, corrupt "
        f"input data, or overflow in exp(logvar). Nothing of epoch {epoch} was saved; the latest checkpoint in "
        f"{workdir} is the last good epoch.")


class _StopSignals:
    """Records SIGTERM/SIGINT instead of dying mid-write; training stops after the epoch is saved."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._record)
        return self

    def _record(self, signum, frame):
        del frame
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, resume: bool = False,
                       log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Trains to early stopping (or max_epochs, or train.max_train_minutes), restores the
    best epoch, reports on test.

    Writes into `workdir`: config.json, metrics.jsonl, checkpoints/, test_metrics.json,
    reconstructions.png, samples.png. Returns the final summary (also test_metrics.json).
    With more than one device (or process) it trains data-parallel; the results match
    one device with the same global batch.
    """
    validate(config)
    if config.parallel.distributed:
        parallel.initialize_distributed(config.parallel.coordinator_address, config.parallel.num_processes,
                                        config.parallel.process_id)
    where = Placement.for_devices()
    if where.mesh is not None:
        parallel.check_batch_size(config.train.batch_size, where.mesh)
        parallel.check_batch_size(config.train.eval_batch_size, where.mesh)
    if not where.is_writer:
        log = lambda _: None  # noqa: E731 -- process 0 reports for everyone.
        progress = False
    workdir = Path(workdir)
    changes = runs.start(workdir, config.to_dict(), resume, write=False)  # Refuse misuse before loading data.
    splits = load_splits(config)  # What can fail before training fails before the run directory exists.
    if jax.process_count() > 1:  # Every process checks the directory before process 0 writes to it.
        multihost_utils.sync_global_devices("fvae: run directory checked")
    lock = runs.exclusive(workdir) if where.is_writer else contextlib.nullcontext()
    with lock, _StopSignals() as stop:
        if where.is_writer:
            runs.start(workdir, config.to_dict(), resume)
            changed = runs.version_changes(workdir)
            if changed:
                log("Note: package versions differ from the run's versions.json (results may not be "
                    "bit-identical): " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("fvae: run directory ready")
        return _train(config, splits, workdir, resume, changes, log, progress, where, stop)


def _train(config: ml_collections.ConfigDict, splits: data.Splits, workdir: Path, resume: bool,
           changes: dict[str, tuple], log, progress: bool, where: Placement, stop: _StopSignals) -> dict:
    t = config.train
    keys = where.put(run_keys(config.seed))
    state = where.put(initial_state(config))
    train_images = where.put(splits.train_images) if t.on_device else splits.train_images
    val_images, test_images = where.put(splits.val_images), where.put(splits.test_images)
    train_labels = conditioning_labels(config, splits.train_labels)
    train_labels = where.put(train_labels) if t.on_device else train_labels
    val_labels = where.put(conditioning_labels(config, splits.val_labels))

    checkpoints = Checkpoints(workdir, keep=config.checkpoint.keep)
    stopper, history, start_epoch = EarlyStopping(t.patience, t.min_delta), [], 1
    if resume and checkpoints.latest_epoch() is not None:
        state, meta = checkpoints.restore_latest(state, log)
        stopper, history = _resumed_stopper(meta["early_stopping"], t, changes, log), meta["history"]
        start_epoch = meta["epoch"] + 1
        if where.is_writer:
            runs.write_history(workdir, history)  # Drops lines written after the checkpoint.
        log(f"Resuming {workdir} at epoch {start_epoch} (best so far: epoch {stopper.best_epoch}).")

    steps_per_epoch = len(train_images) // t.batch_size
    board = _tensorboard(workdir) if where.is_writer else None
    try:
        for epoch in range(start_epoch, t.max_epochs + 1):
            if stopper.should_stop:
                break
            if t.max_train_minutes and sum(r["seconds"] for r in history) >= 60 * t.max_train_minutes:
                log(f"Stopping after epoch {epoch - 1}: the training budget of {t.max_train_minutes} minutes is spent.")
                break
            state, record = _run_epoch(state, (train_images, train_labels), (val_images, val_labels), keys, epoch,
                                       config, where, progress, workdir)
            improved = stopper.update(epoch, record["val_loss"])
            record.update(epoch=epoch, images_per_second=steps_per_epoch * t.batch_size / record["seconds"])
            history.append(record)
            checkpoints.save(epoch, state, {"epoch": epoch, "early_stopping": stopper.to_dict(),
                                            "history": history}, is_best=improved)
            if where.is_writer:
                runs.append_metrics(workdir, record)
                for name, value in record.items():
                    if name != "epoch":
                        board.scalar(name, value, epoch)
                board.flush()
            log(f"epoch {epoch:3d}  train {record['train_loss']:.2f}  val {record['val_loss']:.2f} "
                f"(rec {record['val_reconstruction']:.2f}, kl {record['val_kl']:.2f})  "
                f"{record['seconds']:.1f}s  {record['images_per_second']:.0f} img/s"
                f"{'  *best' if improved else ''}")
            if stop.received:
                raise Interrupted(f"{stop.received} received: stopped cleanly after epoch {epoch}, which is "
                                  f"saved. Resume with: python -m experiments.train --workdir {workdir} --resume")
        best_state, _ = checkpoints.restore_best(state)
    finally:
        checkpoints.close()
        if board is not None:
            board.close()

    summary = _final_report(best_state, splits, val_images, test_images, keys, config, workdir, stopper,
                            history, where)
    log(f"Best epoch {stopper.best_epoch} of {len(history)}: test loss {summary['test_loss']:.2f} "
        f"(rec {summary['test_reconstruction']:.2f}, kl {summary['test_kl']:.2f}). Outputs in {workdir}")
    return summary


def _resumed_stopper(saved: dict, t: ml_collections.ConfigDict, changes: dict[str, tuple], log) -> EarlyStopping:
    """The early-stopping state of a resumed run, under the config's (possibly raised) patience.

    A run that early stopping had ended, resumed with a larger max_epochs or
    max_train_minutes, is asked to train longer: its patience count starts afresh (the
    best epoch so far is kept). A larger patience alone continues the count as it stands.
    """
    stopper = EarlyStopping.from_dict({**saved, "patience": t.patience})
    raised = [k for k in ("train.max_epochs", "train.max_train_minutes") if k in changes]
    if raised and stopper.should_stop:
        log(f"The run had stopped early ({stopper.bad_epochs} epochs without improvement); "
            f"{' and '.join(raised)} changed, so training continues with a fresh patience of {t.patience} epochs "
            f"(best so far: epoch {stopper.best_epoch}).")
        stopper.bad_epochs = 0
    return stopper


def _tensorboard(workdir: Path):
    """TensorBoard event files in <workdir>/tensorboard (`tensorboard --logdir runs` shows all runs)."""
    from flax.metrics import tensorboard

    return tensorboard.SummaryWriter(str(workdir / "tensorboard"))


def _run_epoch(state: TrainState, train, val, keys, epoch: int, config: ml_collections.ConfigDict,
               where: Placement, progress: bool, workdir: Path) -> tuple[TrainState, dict]:
    """Trains one epoch and evaluates on validation; returns the state and the epoch record.
    train, val: (images, labels or None).

    A NaN/Inf loss raises NonFiniteError right after the block (or step) it happened in,
    naming epoch and step; validation does not run. The validation loss (what early
    stopping and the best checkpoint follow) is the true negative ELBO, or the IWAE bound
    with the training K: never the weighted training loss.
    """
    from tqdm.auto import tqdm

    t = config.train
    (train_images, train_labels), (val_images, val_labels) = train, val
    start = time.perf_counter()
    steps = len(train_images) // t.batch_size
    with tqdm(total=steps, desc=f"epoch {epoch}", leave=False, disable=not progress, unit="step") as bar:
        if t.on_device:
            state, train_metrics = train_epoch(state, train_images, keys["train"], keys["shuffle"], epoch,
                                               t.batch_size, t.steps_per_call, bar.update, where.batch_sharding,
                                               train_labels, t.unroll)
        else:
            state, train_metrics = train_epoch_stepwise(state, train_images, keys["train"], keys["shuffle"],
                                                        epoch, t.batch_size, bar.update, where.batch_sharding,
                                                        train_labels)
        nonfinite_step = first_nonfinite_step(train_metrics)
        if nonfinite_step >= 0:
            _raise_nonfinite(epoch, f"step {nonfinite_step}", workdir)
        del train_metrics["nonfinite_step"]
        val_metrics = evaluate_elbo(state, val_images, keys["eval"], t.eval_batch_size, where.batch_sharding,
                                    val_labels, config.objective.iwae_samples, t.unroll)
        record = {f"train_{k}": v for k, v in to_host(train_metrics).items()}
        record.update({f"val_{k}": v for k, v in to_host(val_metrics).items()})
    bad = sorted(k for k, v in record.items() if not math.isfinite(v))
    if bad:
        _raise_nonfinite(epoch, f"validation ({', '.join(bad)})", workdir)
    record["seconds"] = time.perf_counter() - start
    return state, record


def _final_report(state: TrainState, splits: data.Splits, val_images, test_images, keys,
                  config: ml_collections.ConfigDict, workdir: Path, stopper: EarlyStopping,
                  history: list[dict], where: Placement) -> dict:
    """Test metrics of the best epoch (the only use of the test set) and the pictures.

    The losses are the bound the best epoch was chosen on: the negative ELBO, or the IWAE
    bound with the training K for IWAE runs.
    """
    test_labels = where.put(conditioning_labels(config, splits.test_labels))
    val_labels = where.put(conditioning_labels(config, splits.val_labels))
    t, k = config.train, config.objective.iwae_samples
    test = evaluate_elbo(state, test_images, keys["eval"], t.eval_batch_size, where.batch_sharding, test_labels,
                         k, t.unroll)
    val = evaluate_elbo(state, val_images, keys["eval"], t.eval_batch_size, where.batch_sharding, val_labels,
                        k, t.unroll)
    summary = {"best_epoch": stopper.best_epoch, "epochs_trained": len(history),
               "train_seconds": sum(r["seconds"] for r in history)}
    summary.update({f"test_{k}": v for k, v in to_host(test).items()})
    summary.update({f"val_{k}": v for k, v in to_host(val).items()})

    n = config.output.num_reconstructions
    originals = splits.test_images[:n]
    # Every process computes (the arrays span all of them); process 0 writes.
    reconstructions = reconstruct(state, where.put(originals),
                                  where.put(conditioning_labels(config, splits.test_labels[:n]))).addressable_data(0)
    samples = generate(state, keys["sample"], config.output.num_samples,
                       where.put(sample_labels(config, config.output.num_samples))).addressable_data(0)
    if where.is_writer:
        runs.write_json(Path(workdir) / runs.TEST_METRICS_FILE, summary)
        plots.save_reconstructions(Path(workdir) / "reconstructions.png", originals.astype(np.float32) / 255.0,
                                   np.asarray(reconstructions),
                                   labels=[data.CLASS_NAMES[i] for i in splits.test_labels[:n]])
        plots.save_image_grid(Path(workdir) / "samples.png", np.asarray(samples), samples_title(config))
    return summary
