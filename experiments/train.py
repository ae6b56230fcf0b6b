"""Train a VAE on Fashion-MNIST to early stopping and report test metrics.

    python -m experiments.train --config experiments/configs/default.py --workdir runs/default
    python -m experiments.train --workdir runs/default --resume     # continue a stopped run
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (used by tfds) info logs off.

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from fvae import runs
from fvae.checkpoint import CheckpointError
from fvae.data import DataError
from fvae.runner import Interrupted, NonFiniteError, train_and_evaluate

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "experiments/configs/default.py", "Config file (.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory for config, metrics, checkpoints and pictures.",
                    required=True)
flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its latest checkpoint.")
flags.DEFINE_bool("progress", True, "Show a progress bar per epoch.")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, after checking every --config.KEY override against the schema: a typo
    gets one message naming the key and the nearest valid keys, not an ml_collections traceback."""
    from fvae.config import check_key

    for arg in argv[1:]:
        if arg.startswith("--config."):
            try:
                check_key(arg[len("--config."):].split("=", 1)[0])
            except ValueError as err:
                sys.exit(f"error: {arg}: {err}")
    return app.parse_flags_with_usage(argv)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
    try:
        config = FLAGS.config
        if FLAGS.resume and not FLAGS["config"].present:
            config = runs.load_config(FLAGS.workdir)  # Resume with the run's own config.
        train_and_evaluate(config, FLAGS.workdir, resume=FLAGS.resume, progress=FLAGS.progress)
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except (DataError, runs.RunDirError, CheckpointError, NonFiniteError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
