"""Orbax checkpoints of a run: the latest epochs and the best epoch, each written atomically.

Layout: <workdir>/checkpoints/latest/<epoch>/ and <workdir>/checkpoints/best/<epoch>/.
Each checkpoint holds the TrainState (step, params, Adam state) and a JSON `meta` item
(epoch, early-stopping counters, ...). Orbax writes into a temporary folder and renames
it when complete, so a crash mid-write never leaves a checkpoint that reads as valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from fvae.train import TrainState


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not fit the model; the message says what to do."""


# Bumped whenever what a checkpoint holds changes incompatibly.
FORMAT_VERSION = 1


def _manager(directory: Path, max_to_keep: int) -> ocp.CheckpointManager:
    # cleanup_tmp_directories: unfinished writes of a killed process are removed, never read.
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False, cleanup_tmp_directories=True)
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=("state", "meta"))


class Checkpoints:
    """Latest (keeps `keep` of them) and best (keeps one) checkpoints of a run directory."""

    def __init__(self, workdir: str | Path, keep: int = 2):
        root = Path(workdir) / "checkpoints"
        self.latest = _manager(root / "latest", keep)
        self.best = _manager(root / "best", 1)

    def save(self, epoch: int, state: TrainState, meta: dict[str, Any], is_best: bool) -> None:
        """Saves `state` as the latest checkpoint of `epoch` (and as the best one if is_best).

        The best copy is written first: if the process dies between the two writes the
        latest checkpoint is still the previous epoch, and resuming redoes this epoch.
        """
        meta = {**meta, "format_version": FORMAT_VERSION}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        if is_best:
            self.best.save(epoch, args=args, force=True)
        self.latest.save(epoch, args=args, force=True)

    def latest_epoch(self) -> int | None:
        return self.latest.latest_step()

    def restore_latest(self, target: TrainState) -> tuple[TrainState, dict[str, Any]]:
        return _restore(self.latest, target, "latest")

    def restore_best(self, target: TrainState) -> tuple[TrainState, dict[str, Any]]:
        return _restore(self.best, target, "best")

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def _restore(manager: ocp.CheckpointManager, target: TrainState, which: str
             ) -> tuple[TrainState, dict[str, Any]]:
    """Restores the newest checkpoint of `manager` into the structure of `target`."""
    epoch = manager.latest_step()
    if epoch is None:
        raise CheckpointError(f"No {which} checkpoint in {manager.directory}.")
    directory = Path(manager.directory) / str(epoch)
    try:
        meta = manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as err:  # Orbax raises various types for unreadable metadata.
        raise CheckpointError(f"Cannot read checkpoint {directory} ({type(err).__name__}: {err}). "
                              "It was not written by this version of fvae, or is damaged.") from err
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {directory} has format version {meta.get('format_version')!r}; this fvae reads "
            f"version {FORMAT_VERSION}. Use the fvae version recorded in the run's versions.json, "
            "or start a new run.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
        restored = manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"The {which} checkpoint {directory} does not match this model "
            f"configuration ({type(err).__name__}: {err}). Resume with the config the run was "
            "started with (its config.json), or start a new run directory.") from err
    meta = dict(restored.meta)
    meta.pop("format_version")
    return restored.state, meta
