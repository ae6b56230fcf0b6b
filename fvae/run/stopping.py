"""When training stops: early stopping on the validation loss (and its replay on a recorded
curve), and SIGTERM/SIGINT recorded so that a run stops cleanly after a saved epoch."""

from __future__ import annotations

import dataclasses
import math
import signal
import threading


@dataclasses.dataclass
class EarlyStopping:
    """Stops when validation loss has not improved by min_delta for `patience` epochs."""

    patience: int
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Records an epoch's validation loss; returns True if it is the new best."""
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = float(val_loss), epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EarlyStopping:
        return cls(**values)


def replay_early_stopping(val_losses: list[float], patience: int, min_delta: float = 0.0) -> tuple[EarlyStopping, int]:
    """(the stopper's final state, epochs trained) of a run with this patience whose validation
    losses by epoch were val_losses: the runner's rule replayed on a recorded curve. Exact for
    runs whose learning rate does not depend on when they stop (constant, or a schedule over
    max_epochs), so one long run answers "what would patience P have cost or saved"."""
    stopper = EarlyStopping(patience, min_delta)
    for epoch, loss in enumerate(val_losses, start=1):
        stopper.update(epoch, loss)
        if stopper.should_stop:
            return stopper, epoch
    return stopper, len(val_losses)


class StopSignals:
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
