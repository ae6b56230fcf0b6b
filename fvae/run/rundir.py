"""Run directories: resolved config, per-epoch metrics (JSON lines) and final metrics.

A run directory is never overwritten: starting a new run in a non-empty directory is
refused unless the run is resumed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

import ml_collections

from fvae.errors import DamagedFileError, RunDirError
from fvae.files import append_line, read_json, write_bytes, write_json
from fvae.run.config import flatten, with_defaults
from fvae.run.versions import VERSIONS_FILE, versions

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
TEST_METRICS_FILE = "test_metrics.json"
LOCK_FILE = ".lock"
EVAL_DIR = "eval"  # What experiments.evaluate writes.
# Config keys that may change when a run is resumed: the limits, to train it for longer.
RESUMABLE_CHANGES = ("train.max_epochs", "train.patience", "train.max_train_minutes")


def start(workdir: str | Path, config: dict, resume: bool, write: bool = True) -> dict[str, tuple]:
    """Creates a new run directory with its config, or checks one that is resumed.

    New run: `workdir` must not exist, be empty, or hold a run that never saved an epoch
    (a start that failed before training; it is started afresh). Resume: it must hold a
    run whose config equals `config` except for RESUMABLE_CHANGES. Returns the resumable
    keys that changed, {key: (run's value, given value)}. write=False only checks (for
    processes other than 0 in a multi-host run).
    """
    workdir = Path(workdir)
    _refuse_a_file(workdir)
    config_path = workdir / CONFIG_FILE
    if resume:
        if not config_path.exists():
            raise RunDirError(f"Cannot resume: {workdir} holds no run ({CONFIG_FILE} is missing). "
                              "Start it without --resume.")
        # Keys added since the run started count at their defaults.
        stored = flatten(_to_json(with_defaults(read_json(config_path)).to_dict()))
        given = flatten(_to_json(with_defaults(_to_json(config)).to_dict()))
        differences = sorted(k for k in set(stored) | set(given)
                             if stored.get(k) != given.get(k) and k not in RESUMABLE_CHANGES)
        if stored.get("train.lr_schedule") != "constant" and stored.get("train.max_epochs") != given.get(
                "train.max_epochs"):
            raise RunDirError(
                f"Cannot resume {workdir} with train.max_epochs {given.get('train.max_epochs')!r} instead of "
                f"{stored.get('train.max_epochs')!r}: its learning rate follows a {stored.get('train.lr_schedule')!r} "
                "schedule laid out over train.max_epochs, which would jump. Resume with the run's max_epochs, or "
                "start a new run directory.")
        if differences:
            lines = "\n".join(f"  {k}: run has {stored.get(k)!r}, given {given.get(k)!r}" for k in differences)
            raise RunDirError(f"Cannot resume {workdir} with a different config:\n{lines}\n"
                              "Resume without --config to use the run's own config, or start a new run directory.")
        if write:
            write_json(config_path, _to_json(config))
        return {k: (stored.get(k), given.get(k)) for k in RESUMABLE_CHANGES if stored.get(k) != given.get(k)}
    if workdir.exists() and not never_trained(workdir) and any(  # versions.json alone: a start killed before
            p.name not in (LOCK_FILE, VERSIONS_FILE) and not p.name.endswith(".tmp")  # config.json: start afresh
            for p in workdir.iterdir()):
        raise RunDirError(f"{workdir} already holds files; refusing to overwrite a run. "
                          "Use --resume to continue it, or choose a new --workdir.")
    if write:
        make_workdir(workdir)
        write_json(workdir / VERSIONS_FILE, versions())
        write_json(config_path, _to_json(config))  # Written last: its presence marks a run.
    return {}


def never_trained(workdir: str | Path) -> bool:
    """A run directory whose start failed before any epoch was saved: nothing in it to lose.
    A checkpoint set aside as damaged (checkpoints/damaged/) counts as saved."""
    workdir = Path(workdir)
    checkpoints = workdir / "checkpoints"
    saved = checkpoints.is_dir() and any(p.name.isdigit() or sub.name == "damaged" for sub in checkpoints.iterdir()
                                         if sub.is_dir() for p in sub.iterdir())
    try:
        history = load_history(workdir)
    except DamagedFileError:  # A damaged metrics file was written by training: --resume rewrites it.
        return False
    return ((workdir / CONFIG_FILE).is_file() and not saved and not history
            and not (workdir / TEST_METRICS_FILE).exists())


RUN_STATES = ("never started", "failed before any epoch", "training", "stopped", "finished", "damaged")


def run_state(workdir: str | Path) -> str:
    """Which of RUN_STATES `workdir` is in (docs/reliability.md says what each command does in each).

    "training": another process holds the run's lock. "finished": its test_metrics.json reports
    every recorded epoch. "damaged": config.json or test_metrics.json cannot be read, or the run
    has trained but no latest or best checkpoint is left (all set aside as damaged); with only a
    best one left it is "stopped" (--resume continues from it).
    Structural only: a checkpoint whose bytes are damaged is found when it is read.
    """
    workdir = Path(workdir)
    if not (workdir / CONFIG_FILE).exists():
        return "never started"
    if _locked(workdir):
        return "training"
    try:
        read_json(workdir / CONFIG_FILE)
    except DamagedFileError:
        return "damaged"
    if never_trained(workdir):
        return "failed before any epoch"
    if not has_checkpoint(workdir) and not has_checkpoint(workdir, "best"):
        return "damaged"
    if not (workdir / TEST_METRICS_FILE).exists():
        return "stopped"
    try:  # A finished run resumed for more epochs and stopped again keeps its earlier report.
        reported = read_json(workdir / TEST_METRICS_FILE).get("epochs_trained")
    except DamagedFileError:
        return "damaged"
    return "finished" if reported == len(load_history(workdir)) else "stopped"


def has_checkpoint(workdir: str | Path, which: str = "latest") -> bool:
    """Whether checkpoints/<which>/ holds a committed checkpoint (its bytes are checked when read)."""
    folder = Path(workdir) / "checkpoints" / which
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def _locked(workdir: Path) -> bool:
    """Whether another process holds the run's lock (taken and released at once if free)."""
    try:
        with open(workdir / LOCK_FILE) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:  # No lock file: never locked.
        return False
    return False


def _refuse_a_file(workdir: Path) -> None:
    if workdir.exists() and not workdir.is_dir():
        raise RunDirError(f"--workdir {workdir} is a file, not a directory: choose a directory path.")


def make_workdir(workdir: Path) -> None:
    """Creates the run directory and its parents; what stands in the way (a file of that name,
    no permission, a full disk) is one RunDirError rather than a traceback."""
    _refuse_a_file(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create the run directory {workdir} ({error.strerror}): "
                          "choose another --workdir.") from None


@contextlib.contextmanager
def exclusive(workdir: str | Path):
    """Holds an exclusive lock on a run directory, so two processes cannot write one run.

    The lock (flock on <workdir>/.lock) is released when the process ends, even by SIGKILL,
    so a killed run never leaves a stale lock behind.
    """
    workdir = Path(workdir)
    make_workdir(workdir)
    with open(workdir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunDirError(f"{workdir} is in use by another fvae process (pid {holder}); "
                              "wait for it to finish or stop it, or choose another --workdir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield workdir
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The resolved config a run was started with (keys added since then take their defaults)."""
    _refuse_a_file(Path(workdir))
    path = Path(workdir) / CONFIG_FILE
    if not path.exists():  # Present but unreadable (a folder, no permission): read_json names it.
        raise RunDirError(f"{workdir} holds no run ({CONFIG_FILE} is missing).")
    return with_defaults(read_json(path))


def _to_json(config: dict) -> dict:
    """Normalizes tuples to lists so a config compares equal to its JSON round trip."""
    return json.loads(json.dumps(config))


def write_history(workdir: str | Path, history: list[dict]) -> None:
    """Rewrites metrics.jsonl atomically from the per-epoch records (used when resuming)."""
    write_bytes(Path(workdir) / METRICS_FILE, "".join(json.dumps(record) + "\n" for record in history).encode())


def append_metrics(workdir: str | Path, record: dict) -> None:
    """Appends one epoch's metrics as a JSON line, flushed to disk as it happens."""
    append_line(Path(workdir) / METRICS_FILE, json.dumps(record))


def load_history(workdir: str | Path, as_frame: bool = False):
    """The per-epoch metrics records of a run (a pandas DataFrame if as_frame)."""
    path = Path(workdir) / METRICS_FILE
    records = []
    if path.is_file():
        # A line without its newline is an append cut short (a killed run): it is left out.
        complete = path.read_text().split("\n")[:-1]
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DamagedFileError(f"{path} line {number} is not valid JSON ({err.msg}): the file was edited or "
                                       "damaged. Fix or delete that line (--resume rewrites the file from the latest "
                                       "checkpoint), then run again.") from None
    if as_frame:
        import pandas as pd  # Only for notebooks: keeps pandas out of a training run's imports.

        return pd.DataFrame(records)
    return records


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (holding config.json) under `root`, sorted by path."""
    return sorted(p.parent for p in Path(root).rglob(CONFIG_FILE) if "eval" not in p.parent.parts[-1:])


def load_runs(root: str | Path):
    """A pandas DataFrame with one row per run under `root`: name, path, flattened config
    (columns `config.*`), final metrics (test_metrics.json) and evaluation metrics
    (`eval.*`, from eval/metrics.json, samplers' as `eval.samplers.<name>.*`) where present."""
    import pandas as pd  # Only for notebooks: keeps pandas out of a training run's imports.

    rows = []
    for run in find_runs(root):
        row = {"name": str(run.relative_to(root)) if run != Path(root) else run.name, "path": str(run)}
        row.update({f"config.{k}": v for k, v in flatten(read_json(run / CONFIG_FILE)).items()})
        if (run / TEST_METRICS_FILE).is_file():
            row.update(read_json(run / TEST_METRICS_FILE))
        if (run / "eval" / "metrics.json").is_file():
            row.update({f"eval.{k}": v for k, v in flatten(read_json(run / "eval" / "metrics.json")).items()
                        if not isinstance(v, list)})
        rows.append({k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})
    return pd.DataFrame(rows)
