"""Train a VAE on Fashion-MNIST to early stopping and report test metrics.

    python -m experiments.train --config experiments/configs/default.py --workdir runs/default
    python -m experiments.train --workdir runs/default --resume     # continue a stopped run
"""

import sys

from experiments import cli  # First: sets the TensorFlow log level.
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from fvae import runs  # noqa: E402
from fvae.config import check_key  # noqa: E402
from fvae.runner import train_and_evaluate  # noqa: E402

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
    config = FLAGS.config
    if FLAGS.resume and not FLAGS["config"].present:
        config = runs.load_config(FLAGS.workdir)  # Resume with the run's own config.
    train_and_evaluate(config, FLAGS.workdir, resume=FLAGS.resume, progress=FLAGS.progress)


if __name__ == "__main__":
    cli.run(main, flags_parser=parse_flags)
