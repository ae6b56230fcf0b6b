"""experiments.train in a subprocess that blocks at a chosen event, so a test can SIGKILL it there.

    FVAE_BLOCK_AT=checkpoint-write:2 python -m tests.mock_cli tests.kill_worker --config ... --workdir ...

At the N-th occurrence of the event in this process it prints "BLOCKED <event> <N>" on
stdout and waits forever; the test then sends SIGKILL. Every kill therefore lands at a
chosen point of the run, triggered by the run itself, not by a timer that load can miss.
Events:
  epoch-start       an epoch is about to train;
  checkpoint-write  Orbax has written a checkpoint into its temporary folder and is about
                    to commit it by renaming (a kill here is a kill during a checkpoint write);
  metrics-append    half of an epoch's metrics.jsonl line is written (after its checkpoint);
  file              any file or folder the run writes is about to appear: an atomic write's
                    temporary file is complete and about to be renamed (versions.json, config.json,
                    a checkpoint's digest, test_metrics.json, pictures...), a checkpoint is about to
                    be committed, half of a metrics line is written, or the TensorBoard event file
                    has just been created. With FVAE_LIST_FILES=1 every one prints "FILE <n> <what>".

With FVAE_FULL_DISK_AT=checkpoint-write:N the N-th commit (a checkpoint commits its two items,
then itself: 3 per checkpoint) fails as a full disk does under TensorStore: pages of library
tracebacks on the stderr file descriptor, then an error of its own type that wraps "No space
left on device".

With FVAE_HOLD_COMMITS=N and FVAE_HOLD_DIR=DIR instead, the first N checkpoint commits wait:
at the i-th it prints "HOLDING i" and goes on once DIR/release-i exists, so a test can run a
reader of the run while a checkpoint write is in progress, for as long as the reader takes.
"""

import collections
import json
import os
import threading
import time
import types
from pathlib import Path

from orbax.checkpoint._src.path import atomicity

from experiments import cli, train
from fvae import files
from fvae.run import rundir, trainer

EVENT, _, COUNT = os.environ.get("FVAE_BLOCK_AT", "none:0").partition(":")
HOLD_COMMITS, HOLD_DIR = int(os.environ.get("FVAE_HOLD_COMMITS", "0")), Path(os.environ.get("FVAE_HOLD_DIR", "."))
LIST_FILES = os.environ.get("FVAE_LIST_FILES") == "1"
FULL_DISK_AT = os.environ.get("FVAE_FULL_DISK_AT", "")
LIBRARY_NOISE = "".join(f"Traceback (most recent call last):\n  File \"tensorstore/{i}.py\"\nValueError: "
                        f"RESOURCE_EXHAUSTED writing d/{i}: No space left on device [os_error_code='28']\n"
                        for i in range(40))
SEEN = collections.Counter()


def reached(event: str, what: str = "") -> None:
    SEEN[event] += 1
    if event == "file" and LIST_FILES:
        print(f"FILE {SEEN[event]} {what}", flush=True)
    if event == EVENT and SEEN[event] == int(COUNT):
        print(f"BLOCKED {event} {COUNT}", flush=True)
        threading.Event().wait()  # Until SIGKILL.


original_finalize = atomicity.AtomicRenameTemporaryPath.finalize


async def finalize(self):
    reached("checkpoint-write")
    if FULL_DISK_AT == f"checkpoint-write:{SEEN['checkpoint-write']}":
        os.write(2, LIBRARY_NOISE.encode())
        raise ValueError(f"RESOURCE_EXHAUSTED: Failed writing {self.get()}: No space left on device")
    reached("file", f"checkpoint {self.get()}")
    commit = SEEN["checkpoint-write"]
    if commit <= HOLD_COMMITS:
        print(f"HOLDING {commit} {self.get()}", flush=True)
        while not (HOLD_DIR / f"release-{commit}").exists():
            time.sleep(0.05)
    return await original_finalize(self)


def at_epoch_start(epoch_function):
    """The trainer's epoch function (train_epoch, or train_epoch_stepwise), reaching "epoch-start" first."""
    def run_epoch(*args, **kwargs):
        reached("epoch-start")
        return epoch_function(*args, **kwargs)
    return run_epoch


original_append = rundir.append_metrics


def append_metrics(workdir, record):
    """Writes half of the line first where the kill is planned (metrics-append or file), so the
    kill lands in the middle of a metrics line."""
    if any(EVENT == event and SEEN[event] + 1 == int(COUNT) for event in ("metrics-append", "file")):
        line = json.dumps(record) + "\n"
        with open(Path(workdir) / rundir.METRICS_FILE, "a") as f:
            f.write(line[: len(line) // 2])
    reached("metrics-append")
    reached("file", f"metrics line of epoch {record['epoch']}")
    original_append(workdir, record)


def replace(source, destination):
    """fvae.files' os.replace: the file (or folder) is complete under its temporary name."""
    reached("file", str(destination))
    os.replace(source, destination)


original_create_writer = trainer.create_writer


def create_writer(*args, **kwargs):
    writer = original_create_writer(*args, **kwargs)
    reached("file", "tensorboard event file")
    return writer


atomicity.AtomicRenameTemporaryPath.finalize = finalize
files.os = types.SimpleNamespace(**{**vars(os), "replace": replace})
trainer.create_writer = create_writer
trainer.train_epoch = at_epoch_start(trainer.train_epoch)
trainer.train_epoch_stepwise = at_epoch_start(trainer.train_epoch_stepwise)
rundir.append_metrics = append_metrics

if __name__ == "__main__":
    try:
        cli.run(train.main)
    finally:
        print("EVENTS", json.dumps(SEEN), flush=True)
