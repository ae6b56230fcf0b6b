"""Orbax checkpoints of a run: the latest epochs and the best epoch, each written atomically.

Layout: <workdir>/checkpoints/latest/<epoch>/ and <workdir>/checkpoints/best/<epoch>/.
Each checkpoint holds the TrainState (step, params, Adam state) and a JSON `meta` item
(epoch, early-stopping counters, ...). Orbax writes into a temporary folder and renames
it when complete, so a crash mid-write never leaves a checkpoint that reads as valid.
After the commit fvae adds the SHA-256 of every file (<epoch>/fvae_sha256.json); a
checkpoint damaged later on disk is found by it before Orbax reads anything, named, moved
to <workdir>/checkpoints/damaged/ (never deleted), and the next older one is read instead
(`restore_latest`), or for the best one, latest/'s copy of its epoch (`restore_best`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from fvae.compute.state import TrainState
from fvae.errors import CheckpointError, DamagedCheckpointError, is_disk_full, library_output_kept
from fvae.files import verify_digest, write_digest

# Bumped whenever what a checkpoint holds changes incompatibly.
FORMAT_VERSION = 1


def _manager(directory: Path, max_to_keep: int, read_only: bool = False) -> ocp.CheckpointManager:
    # cleanup_tmp_directories: the writer removes unfinished writes of a killed process, never read.
    # A reader (read_only) creates, cleans and deletes nothing: a trainer may be writing beside it.
    options = ocp.CheckpointManagerOptions(max_to_keep=None if read_only else max_to_keep, create=not read_only,
                                           read_only=read_only, save_interval_steps=0 if read_only else 1,
                                           enable_async_checkpointing=False, cleanup_tmp_directories=not read_only,
                                           save_root_metadata=not read_only)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR if read_only else verbosity)  # Orbax warns that it is read-only.
    try:
        return ocp.CheckpointManager(directory.absolute(), options=options, item_names=("state", "meta"))
    finally:
        logging.set_verbosity(verbosity)


# How often a reader looks again when the checkpoint it chose vanished or was still being
# written (a trainer replaced it), and how long it waits between looks.
READ_ATTEMPTS, READ_WAIT_SECONDS = 20, 0.5


class Checkpoints:
    """Latest (keeps `keep` of them) and best (keeps one) checkpoints of a run directory.
    read_only: for a process that only reads the run (evaluate, sample, ...) while its trainer
    may still be writing: it changes nothing under checkpoints/ (see `read`)."""

    def __init__(self, workdir: str | Path, keep: int = 2, read_only: bool = False):
        root = Path(workdir) / "checkpoints"
        self.damaged_dir = root / "damaged"
        self.read_only = read_only
        self.latest = _manager(root / "latest", keep, read_only)
        self.best = _manager(root / "best", 1, read_only)

    def read(self, target: TrainState, which: str = "best") -> tuple[TrainState, dict[str, Any]]:
        """For readers: the newest complete `which` ("best" or "latest") checkpoint, written by
        nobody but its trainer. One that a running trainer deletes, or has committed without its
        digest yet, is passed over and looked for again; nothing is moved, cleaned or rewritten."""
        manager = self.best if which == "best" else self.latest
        problems: list[str] = []
        for _ in range(READ_ATTEMPTS):
            manager.reload()
            for epoch in sorted(manager.all_steps(), reverse=True):
                try:
                    with library_output_kept(DamagedCheckpointError):
                        return _restore(manager, target, which, epoch)
                except DamagedCheckpointError as err:
                    problems.append(str(err))
            time.sleep(READ_WAIT_SECONDS)
        raise CheckpointError(f"No complete {which} checkpoint could be read in {manager.directory} "
                              f"({problems[-1] if problems else 'none is there'}); nothing was changed. If its run "
                              "is not training, resume it (experiments.train --resume), which sets damaged ones aside.")

    def save(self, epoch: int, state: TrainState, meta: dict[str, Any], is_best: bool) -> None:
        """Saves `state` as the latest checkpoint of `epoch` (and as the best one if is_best).

        The best copy is written first: if the process dies between the two writes the
        latest checkpoint is still the previous epoch, and resuming redoes this epoch. A
        redone epoch is bit-identical on the same machine, so a best copy of it that is
        already committed is kept as it is.
        """
        managers = ([self.best] if is_best and epoch not in self.best.all_steps() else []) + [self.latest]
        for manager in managers:
            _save(manager, epoch, state, meta)

    def latest_epoch(self) -> int | None:
        return self.latest.latest_step()

    def restore_latest(self, target: TrainState, log: Callable[[str], None] = print
                       ) -> tuple[TrainState, dict[str, Any]]:
        """The newest readable latest checkpoint. A damaged one is named in `log`, moved to
        checkpoints/damaged/ (kept for inspection, never deleted) and the next older one is tried."""
        while True:
            try:
                with library_output_kept(DamagedCheckpointError):
                    return _restore(self.latest, target, "latest")
            except DamagedCheckpointError as err:
                aside = self._set_aside(self.latest, "latest")
                older = self.latest.latest_step()
                log(f"{err} It was moved to {aside}; "
                    + (f"resuming from the previous checkpoint (epoch {older})." if older is not None
                       else "no older checkpoint is left."))
                if older is None:
                    raise CheckpointError(f"No readable latest checkpoint is left in {self.latest.directory} "
                                          f"(damaged ones are in {self.damaged_dir}). Start a new run "
                                          "directory.") from err

    def restore_best(self, target: TrainState, log: Callable[[str], None] = print
                     ) -> tuple[TrainState, dict[str, Any]]:
        """The best checkpoint. A damaged one is named, moved to checkpoints/damaged/ and, while
        latest/ still holds its epoch, written again from that copy."""
        try:
            with library_output_kept(DamagedCheckpointError):
                return _restore(self.best, target, "best")
        except DamagedCheckpointError as err:
            epoch = self.best.latest_step()
            aside = self._set_aside(self.best, "best")
            if epoch not in self.latest.all_steps():
                raise CheckpointError(f"{err} It was moved to {aside}. latest/ no longer holds epoch {epoch}: the "
                                      "best weights are lost. Use the intact latest ones (fvae.run.assemble."
                                      "load_run_state(workdir, 'latest')) or train a new run.") from err
            log(f"{err} It was moved to {aside}; the best checkpoint is written again from latest/{epoch}.")
            with library_output_kept(DamagedCheckpointError):
                state, meta = _restore(self.latest, target, "latest", epoch)
            _save(self.best, epoch, state, meta)
            return state, meta

    def _set_aside(self, manager: ocp.CheckpointManager, which: str) -> Path:
        """Moves `manager`'s newest checkpoint to checkpoints/damaged/ (never deleted) and returns where."""
        epoch = manager.latest_step()
        self.damaged_dir.mkdir(exist_ok=True)
        name = f"{which}-{epoch}-{time.strftime('%Y%m%d-%H%M%S')}"
        aside, n = self.damaged_dir / name, 1
        while aside.exists():  # The same checkpoint set aside twice within one second.
            n += 1
            aside = self.damaged_dir / f"{name}-{n}"
        (Path(manager.directory) / str(epoch)).rename(aside)
        manager.reload()
        return aside

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def _save(manager: ocp.CheckpointManager, epoch: int, state: TrainState, meta: dict[str, Any]) -> None:
    """Writes one checkpoint (Orbax commits it atomically), then records its files' SHA-256."""
    meta = {**meta, "format_version": FORMAT_VERSION}
    with library_output_kept(CheckpointError):  # A full disk's pages of TensorStore tracebacks: to the log.
        try:
            manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        except Exception as err:  # Orbax and TensorStore wrap the OSError in their own types.
            if not is_disk_full(err):
                raise
            raise CheckpointError(f"no space left on the disk while writing the checkpoint of epoch {epoch} in "
                                  f"{manager.directory}: the checkpoints written before it are intact; free some "
                                  "space, then resume with --resume (it redoes this epoch).") from err
    if jax.process_index() == 0:
        write_digest(Path(manager.directory) / str(epoch))


def _restore(manager: ocp.CheckpointManager, target: TrainState, which: str, epoch: int | None = None
             ) -> tuple[TrainState, dict[str, Any]]:
    """Restores checkpoint `epoch` of `manager` (default: its newest) into the structure of `target`."""
    epoch = manager.latest_step() if epoch is None else epoch
    if epoch is None:
        raise CheckpointError(f"No {which} checkpoint in {manager.directory}.")
    directory = Path(manager.directory) / str(epoch)
    verify_digest(directory, DamagedCheckpointError)
    try:
        meta = manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as err:  # Orbax raises various types for unreadable metadata.
        raise DamagedCheckpointError(f"Cannot read checkpoint {directory} ({type(err).__name__}: {str(err)[:200]}): "
                                     "it is damaged, or was not written by fvae.") from err
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {directory} has format version {meta.get('format_version')!r}; this fvae reads "
            f"version {FORMAT_VERSION}. Use the fvae version recorded in the run's versions.json, "
            "or start a new run.")
    mismatch = _mismatch(directory / "state", target)
    if mismatch:
        raise CheckpointError(
            f"The {which} checkpoint {directory} does not match this model configuration ({mismatch}). "
            "Resume with the config the run was started with (its config.json), or start a new run directory.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
        restored = manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as err:  # The structure fits (checked above), so the files are damaged.
        raise DamagedCheckpointError(f"The {which} checkpoint {directory} is damaged: its arrays cannot be "
                                     f"read ({type(err).__name__}: {str(err)[:200]}).") from err
    meta = dict(restored.meta)
    meta.pop("format_version")
    return restored.state, meta


def _model_shapes(state: TrainState) -> dict[str, tuple]:
    """{"params.encoder.hidden_0.kernel": shape, ...}: the arrays a checkpoint of `state` holds,
    named as Orbax names them."""
    arrays = {"step": state.step, "params": state.params, "opt_state": state.opt_state}

    def name(path) -> str:
        return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)

    return {name(path): tuple(np.shape(leaf)) for path, leaf in jax.tree_util.tree_flatten_with_path(arrays)[0]}


def _mismatch(state_dir: Path, target: TrainState) -> str:
    """'' if the stored arrays have the names and shapes of `target`'s, else what differs
    (unreadable metadata counts as damage, not as a mismatch)."""
    try:
        stored = {leaf.name: tuple(leaf.shape)
                  for leaf in jax.tree.leaves(ocp.PyTreeCheckpointHandler().metadata(epath.Path(state_dir)))}
        if not stored:
            raise ValueError("no arrays listed")
    except Exception as err:  # Orbax raises various types for unreadable metadata.
        raise DamagedCheckpointError(f"The checkpoint {state_dir.parent} is damaged: its array metadata cannot "
                                     f"be read ({type(err).__name__}: {str(err)[:200]}).") from err
    expected = _model_shapes(target)
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    shapes = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    parts = (([f"missing arrays {missing[:3]}"] if missing else [])
             + ([f"unexpected arrays {extra[:3]}"] if extra else []))
    parts += [f"{k}: checkpoint {stored[k]}, model {expected[k]}" for k in shapes[:3]]
    return "; ".join(parts)
