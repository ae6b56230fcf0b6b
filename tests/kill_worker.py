"""experiments.train in a subprocess that blocks at a chosen event, so a test can SIGKILL it there.

    FVAE_BLOCK_AT=checkpoint-write:2 python -m tests.mock_cli tests.kill_worker --config ... --workdir ...

At the N-th occurrence of the event in this process it prints "BLOCKED <event> <N>" on
stdout and waits forever; the test then sends SIGKILL. Every kill therefore lands at a
chosen point of the run, triggered by the run itself, not by a timer that load can miss.
Events:
  epoch-start       an epoch is about to train;
  checkpoint-write  Orbax has written a checkpoint into its temporary folder and is about
                    to commit it by renaming (a kill here is a kill during a checkpoint write);
  metrics-append    half of an epoch's metrics.jsonl line is written (after its checkpoint).

With FVAE_HOLD_COMMITS=N and FVAE_HOLD_DIR=DIR instead, the first N checkpoint commits wait:
at the i-th it prints "HOLDING i" and goes on once DIR/release-i exists, so a test can run a
reader of the run while a checkpoint write is in progress, for as long as the reader takes.
"""

import collections
import json
import os
import threading
import time
from pathlib import Path

from orbax.checkpoint._src.path import atomicity

from experiments import cli, train
from fvae.run import rundir, trainer

EVENT, _, COUNT = os.environ.get("FVAE_BLOCK_AT", "none:0").partition(":")
HOLD_COMMITS, HOLD_DIR = int(os.environ.get("FVAE_HOLD_COMMITS", "0")), Path(os.environ.get("FVAE_HOLD_DIR", "."))
SEEN = collections.Counter()


def reached(event: str) -> None:
    SEEN[event] += 1
    if event == EVENT and SEEN[event] == int(COUNT):
        print(f"BLOCKED {event} {COUNT}", flush=True)
        threading.Event().wait()  # Until SIGKILL.


original_finalize = atomicity.AtomicRenameTemporaryPath.finalize


async def finalize(self):
    reached("checkpoint-write")
    commit = SEEN["checkpoint-write"]
    if commit <= HOLD_COMMITS:
        print(f"HOLDING {commit} {self.get()}", flush=True)
        while not (HOLD_DIR / f"release-{commit}").exists():
            time.sleep(0.05)
    return await original_finalize(self)


original_run_epoch = trainer._run_epoch


def run_epoch(*args, **kwargs):
    reached("epoch-start")
    return original_run_epoch(*args, **kwargs)


original_append = rundir.append_metrics


def append_metrics(workdir, record):
    if EVENT == "metrics-append" and SEEN["metrics-append"] + 1 == int(COUNT):
        line = json.dumps(record) + "\n"
        with open(Path(workdir) / rundir.METRICS_FILE, "a") as f:
            f.write(line[: len(line) // 2])
    reached("metrics-append")
    original_append(workdir, record)


atomicity.AtomicRenameTemporaryPath.finalize = finalize
trainer._run_epoch = run_epoch
rundir.append_metrics = append_metrics

if __name__ == "__main__":
    try:
        cli.run(train.main)
    finally:
        print("EVENTS", json.dumps(SEEN), flush=True)
