"""What other patiences would have done to a finished run: its validation curve replayed under
the runner's early-stopping rule.

    python -m experiments.patience --workdir runs/gated_vae --patience 10,20,50,100,1000

For each patience: the epoch the run would have stopped at, its best epoch and validation
loss, and the training minutes to the stop and to the best epoch (the run's own epoch times).
Exact when the learning rate does not depend on when the run stops (a constant rate, or a
schedule over max_epochs); a run that stopped early itself can only answer for patiences up
to its own. Prints a markdown table.
"""

from __future__ import annotations

import itertools

from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.errors import ConfigError  # noqa: E402
from fvae.run import rundir  # noqa: E402
from fvae.run.stopping import replay_early_stopping  # noqa: E402

flags.DEFINE_string("workdir", None, "A run directory (its metrics.jsonl).", required=True)
flags.DEFINE_list("patience", ["10", "20", "50", "100"], "Patiences to replay, in epochs.")
FLAGS = flags.FLAGS


def patience_rows(history: list[dict], patiences: list[int], min_delta: float = 0.0) -> list[dict]:
    """One row per patience: stop and best epochs, best validation loss, minutes to each."""
    minutes = [seconds / 60 for seconds in itertools.accumulate((r["seconds"] for r in history), initial=0.0)]
    rows = []
    for patience in patiences:
        stopper, trained = replay_early_stopping([r["val_loss"] for r in history], patience, min_delta)
        rows.append({"patience": patience, "epochs trained": trained, "best epoch": stopper.best_epoch,
                     "best val. loss": stopper.best_loss, "train min": minutes[trained],
                     "train min to best": minutes[stopper.best_epoch]})
    return rows


def main(argv):
    del argv
    patiences = cli.whole_numbers(FLAGS.patience, "--patience", "10,50,100")
    history = rundir.load_history(FLAGS.workdir)
    if not history:
        raise ConfigError(f"{FLAGS.workdir} has no recorded epochs (no metrics.jsonl): give a run directory "
                          "that has trained, e.g. runs/gated_vae")
    config = rundir.load_config(FLAGS.workdir)
    own = config.train.patience
    rows = patience_rows(history, patiences, config.train.min_delta)
    print(f"{FLAGS.workdir}: {len(history)} epochs recorded, trained with patience {own}, "
          f"learning-rate schedule {config.train.get('lr_schedule', 'constant')}")
    print("| patience | epochs trained | best epoch | best val. loss | train min to best | train min |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        note = " (beyond the run's own patience: only a lower bound)" if (
            r["patience"] > own and r["epochs trained"] == len(history)
            and len(history) < config.train.max_epochs) else ""
        print(f"| {r['patience']} | {r['epochs trained']}{note} | {r['best epoch']} | {r['best val. loss']:.2f} | "
              f"{r['train min to best']:.1f} | {r['train min']:.1f} |")


if __name__ == "__main__":
    cli.run(main)
