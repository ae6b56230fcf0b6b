"""The thin runner: train a config to early stopping in a run directory, then report.

Everything with side effects (files, printing, progress bars) happens here or in
`experiments/`; the functions it calls in fvae.compute / fvae.compute.bounds are pure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from fvae import data, files
from fvae.analysis import plots
from fvae.compute import placement
from fvae.compute.bounds import evaluate_bound, reconstruct
from fvae.compute.decoding import generate
from fvae.compute.placement import Placement, to_host
from fvae.compute.state import TrainState
from fvae.compute.steps import EpochOptions, first_nonfinite_step, train_epoch, train_epoch_stepwise
from fvae.errors import CheckpointError, Interrupted, NonFiniteError, UserError
from fvae.run import rundir
from fvae.run.assemble import (
    check_fits_in_memory,
    initial_state,
    load_splits,
    model_inputs,
    run_keys,
    sample_labels,
    samples_title,
)
from fvae.run.checkpoints import Checkpoints
from fvae.run.config import validate
from fvae.run.stopping import EarlyStopping, StopSignals
from fvae.run.versions import version_changes
from fvae.run.writer import create_writer


def _raise_nonfinite(epoch: int, where: str, workdir: Path) -> None:
    raise NonFiniteError(
        f"Epoch {epoch}, {where}: the loss became NaN or Inf. Likely causes: a learning rate too high, corrupt "
        f"input data, or overflow in exp(logvar). Nothing of epoch {epoch} was saved; the latest checkpoint in "
        f"{workdir} is the last good epoch.")


@dataclasses.dataclass
class RunContext:
    """What every part of one training run shares: its config, its directory, where its arrays
    live, its random streams, how it reports, and the stop signal it watches."""

    config: ml_collections.ConfigDict
    workdir: Path
    where: Placement
    keys: dict[str, jax.Array]
    log: Callable[[str], None]
    progress: bool
    stop: StopSignals


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
    check_fits_in_memory(config)  # Before the run directory exists: a model too large creates nothing.
    if config.parallel.distributed:
        placement.initialize_distributed(config.parallel.coordinator_address, config.parallel.num_processes,
                                        config.parallel.process_id)
    where = Placement.for_devices()
    if where.mesh is not None:
        placement.check_batch_size(config.train.batch_size, where.mesh)
        placement.check_batch_size(config.train.eval_batch_size, where.mesh)
    if not where.is_writer:
        log = lambda _: None  # noqa: E731 -- process 0 reports for everyone.
        progress = False
    workdir = Path(workdir)
    changes = rundir.start(workdir, config.to_dict(), resume, write=False)  # Refuse misuse before loading data.
    if resume and not rundir.never_trained(workdir) and not rundir.has_checkpoint(workdir) \
            and not rundir.has_checkpoint(workdir, "best"):
        raise CheckpointError(f"{workdir} has trained but holds no readable latest or best checkpoint (damaged ones "
                              f"are in {workdir / 'checkpoints' / 'damaged'}, its metrics in {rundir.METRICS_FILE}); "
                              "nothing was changed. Start a new run directory.")  # Never restarted from epoch 1.
    splits = load_splits(config)  # What can fail before training fails before the run directory exists.
    if jax.process_count() > 1:  # Every process checks the directory before process 0 writes to it.
        multihost_utils.sync_global_devices("fvae: run directory checked")
    lock = rundir.exclusive(workdir) if where.is_writer else contextlib.nullcontext()
    with lock, StopSignals() as stop:
        if where.is_writer:
            rundir.start(workdir, config.to_dict(), resume)
            changed = version_changes(workdir)
            if changed:
                log("Note: package versions differ from the run's versions.json (results may not be "
                    "bit-identical): " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("fvae: run directory ready")
        run = RunContext(config, workdir, where, where.put(run_keys(config.seed)), log, progress, stop)
        return _train(run, splits, resume, changes)


def _train(run: RunContext, splits: data.Splits, resume: bool, changes: dict[str, tuple]) -> dict:
    """The training loop: each epoch's steps (fvae.compute.steps.train_epoch: compiled blocks of
    the scan whose body is train_step), its validation, checkpoint and metrics line, to early
    stopping; then the best epoch's report."""
    config, workdir, where, log = run.config, run.workdir, run.where, run.log
    t = config.train
    state = where.put(initial_state(config))
    train = model_inputs(config, splits.train)
    train = where.put(train) if t.on_device else train
    val = where.put(model_inputs(config, splits.val))

    checkpoints = Checkpoints(workdir, keep=config.checkpoint.keep)
    stopper, history, start_epoch = EarlyStopping(t.patience, t.min_delta), [], 1
    if resume and (checkpoints.latest_epoch() is not None or checkpoints.best.latest_step() is not None):
        state, meta = _restore_to_resume(checkpoints, state, log)
        stopper, history = _resumed_stopper(meta["early_stopping"], t, changes, log), meta["history"]
        start_epoch = meta["epoch"] + 1
        if where.is_writer:
            rundir.write_history(workdir, history)  # Drops lines written after the checkpoint.
        log(f"Resuming {workdir} at epoch {start_epoch} (best so far: epoch {stopper.best_epoch}).")

    with _errors_logged_in(workdir if where.is_writer else None):
        steps = train.num_examples // t.batch_size
        run_epoch = train_epoch if t.on_device else train_epoch_stepwise  # Device-resident data or not.
        writer = create_writer(workdir, log, lambda epoch, s: _epoch_line(epoch, s, epoch == stopper.best_epoch),
                               where.is_writer)
        try:
            for epoch in range(start_epoch, t.max_epochs + 1):
                if stopper.should_stop:
                    break
                if t.max_train_minutes and sum(r["seconds"] for r in history) >= 60 * t.max_train_minutes:
                    log(f"Stopping after epoch {epoch - 1}: the training budget of {t.max_train_minutes} minutes "
                        "is spent.")
                    break
                start = time.perf_counter()
                bar = tqdm(total=steps, desc=f"epoch {epoch}", leave=False, disable=not run.progress, unit="step")
                with bar:
                    options = EpochOptions(t.batch_size, t.steps_per_call, where.batch_sharding, on_progress=bar.update)
                    state, train_metrics = run_epoch(state, train, run.keys["train"], run.keys["shuffle"], epoch,
                                                     options)
                    metrics = _validated(run, state, train_metrics, val, epoch)
                metrics["seconds"] = time.perf_counter() - start
                metrics["images_per_second"] = steps * t.batch_size / metrics["seconds"]
                improved = stopper.update(epoch, metrics["val_loss"])
                history.append({"epoch": epoch, **metrics})
                checkpoints.save(epoch, state, {"epoch": epoch, "early_stopping": stopper.to_dict(),
                                                "history": history}, is_best=improved)
                writer.write_scalars(epoch, metrics)
                writer.flush()
                if run.stop.received:
                    raise Interrupted(f"{run.stop.received} received: stopped cleanly after epoch {epoch}, which is "
                                      f"saved. Resume with: python -m experiments.train --workdir {workdir} --resume")
            best_state, _ = checkpoints.restore_best(state)
        finally:
            checkpoints.close()
            writer.close()

        summary = _final_report(run, best_state, splits, stopper, history)
        log(f"Best epoch {stopper.best_epoch} of {len(history)}: test loss {summary['test_loss']:.2f} "
            f"(rec {summary['test_reconstruction']:.2f}, kl {summary['test_kl']:.2f}). Outputs in {workdir}")
    return summary


@contextlib.contextmanager
def _errors_logged_in(workdir: Path | None):
    """From here on an error arises while the run trains: the scripts log the libraries' pages
    about it (tracebacks, captured output) in its logs/ (experiments/cli.py). Refusals before this
    point change nothing in the run."""
    try:
        yield
    except (UserError, OSError) as err:
        if workdir is not None:
            err.log_dir = workdir  # type: ignore[union-attr]
        raise


def _epoch_line(epoch: int, m: Mapping[str, float], best: bool) -> str:
    """The console line of one epoch."""
    return (f"epoch {epoch:3d}  train {m['train_loss']:.2f}  val {m['val_loss']:.2f} "
            f"(rec {m['val_reconstruction']:.2f}, kl {m['val_kl']:.2f})  {m['seconds']:.1f}s  "
            f"{m['images_per_second']:.0f} img/s{'  *best' if best else ''}")


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


def _restore_to_resume(checkpoints: Checkpoints, state, log: Callable[[str], None]):
    """The newest readable latest checkpoint, else (none is left: a kill during the first
    latest write, or all damaged) the best one, saying so; the epochs after it are trained
    again, bit for bit."""
    try:
        if checkpoints.latest_epoch() is not None:
            return checkpoints.restore_latest(state, log)
    except CheckpointError as err:
        if checkpoints.best.latest_step() is None:
            raise
        log(str(err).split(" Start a new run")[0])
    log(f"No readable latest checkpoint in {checkpoints.latest.directory}: resuming from the best one (epoch "
        f"{checkpoints.best.latest_step()}); the epochs after it are trained again.")
    return checkpoints.restore_best(state, log)


def _validated(run: RunContext, state: TrainState, train_metrics: dict, val: data.Dataset, epoch: int) -> dict:
    """The epoch's record: its training metrics and the validation bound, after the epoch ran.

    A NaN/Inf training loss raises NonFiniteError naming the epoch and step (train_epoch stopped
    right after the block or step it happened in); validation does not run. The validation loss
    (what early stopping and the best checkpoint follow) is the true negative ELBO, or the IWAE
    bound with the training K: never the weighted training loss.
    """
    config, keys, where, workdir = run.config, run.keys, run.where, run.workdir
    nonfinite_step = first_nonfinite_step(train_metrics)
    if nonfinite_step >= 0:
        _raise_nonfinite(epoch, f"step {nonfinite_step}", workdir)
    del train_metrics["nonfinite_step"]
    val_metrics = evaluate_bound(state, val, keys["eval"], config.train.eval_batch_size, where.batch_sharding,
                                 config.objective.iwae_samples)
    record = {f"train_{k}": v for k, v in to_host(train_metrics).items()}
    record.update({f"val_{k}": v for k, v in to_host(val_metrics).items()})
    bad = sorted(k for k, v in record.items() if not math.isfinite(v))
    if bad:
        _raise_nonfinite(epoch, f"validation ({', '.join(bad)})", workdir)
    if callable(state.learning_rate):  # A decaying learning rate: the rate of the epoch's last step.
        record["learning_rate"] = state.current_learning_rate()
    return record


def _final_report(run: RunContext, state: TrainState, splits: data.Splits, stopper: EarlyStopping,
                  history: list[dict]) -> dict:
    """Test metrics of the best epoch (the only use of the test set) and the pictures.

    The losses are the bound the best epoch was chosen on: the negative ELBO, or the IWAE
    bound with the training K for IWAE runs.
    """
    config, keys, where, workdir = run.config, run.keys, run.where, run.workdir
    t, k = config.train, config.objective.iwae_samples
    summary = {"best_epoch": stopper.best_epoch, "epochs_trained": len(history),
               "train_seconds": sum(r["seconds"] for r in history),
               # Training time until the reported (best) epoch ended: the time to reach its numbers.
               "train_seconds_to_best_epoch": sum(r["seconds"] for r in history if r["epoch"] <= stopper.best_epoch)}
    for name, split in (("test", splits.test), ("val", splits.val)):
        metrics = evaluate_bound(state, where.put(model_inputs(config, split)), keys["eval"], t.eval_batch_size,
                                 where.batch_sharding, k)
        summary.update({f"{name}_{key}": value for key, value in to_host(metrics).items()})

    shown = splits.test.take(config.output.num_reconstructions)
    # Every process computes (the arrays span all of them); process 0 writes.
    reconstructions = reconstruct(state, *where.put(model_inputs(config, shown))).addressable_data(0)
    samples = generate(state, keys["sample"], config.output.num_samples,
                       where.put(sample_labels(config, config.output.num_samples))).addressable_data(0)
    if where.is_writer:  # test_metrics.json last: it marks the run finished, so its pictures are there.
        plots.save_reconstructions(Path(workdir) / "reconstructions.png", data.to_unit_interval(shown.images),
                                   np.asarray(reconstructions), labels=[data.CLASS_NAMES[i] for i in shown.labels])
        plots.save_image_grid(Path(workdir) / "samples.png", np.asarray(samples), samples_title(config))
        files.write_json(Path(workdir) / rundir.TEST_METRICS_FILE, summary)
    if run.stop.received:  # Signals are recorded, not obeyed, while the report is written: say so now.
        raise Interrupted(f"{run.stop.received} received during the final report of {workdir}; the report was "
                          "completed first (test_metrics.json and the pictures are written).")
    return summary
