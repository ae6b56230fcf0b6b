"""Draw images from a trained run's prior, of one class for a conditional VAE.

    python -m experiments.sample --workdir runs/conditional --label Dress -n 64
    python -m experiments.sample --workdir runs/default -n 64            # unconditional

Classes are accepted as names (case, spaces and dashes ignored: "dress", "Ankle boot",
"t-shirt") or indices 0-9. Writes RUN/samples/<class>_n<N>_seed<S>.png (the same
arguments always give the same picture) and prints its path.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from fvae import runs  # noqa: E402
from fvae.checkpoint import CheckpointError  # noqa: E402
from fvae.report import sample_run  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory of a trained model.", required=True)
flags.DEFINE_string("label", None, "Class name or index (conditional runs only).")
flags.DEFINE_integer("n", 64, "Number of images.")
flags.DEFINE_integer("seed", 0, "Seed of the prior samples.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        print(sample_run(FLAGS.workdir, FLAGS.label, FLAGS.n, FLAGS.seed))
    except (runs.RunDirError, CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    app.run(main)
