"""Train a VAE on Fashion-MNIST to early stopping and report test metrics.

    python -m experiments.train --config default --workdir runs/default
    python -m experiments.train --config mlp500 --workdir runs/mlp500 --config.train.batch_size=256
    python -m experiments.train --workdir runs/default --resume                  # continue a stopped run
    python -m experiments.train --workdir runs/default --resume --config.train.max_epochs=300   # train longer

--config names a file in experiments/configs or gives a path. On --resume without --config the
run's own config.json is used, with any --config.KEY=VALUE overrides applied to it.
"""

from absl import flags

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.run import rundir  # noqa: E402
from fvae.run.trainer import train_and_evaluate  # noqa: E402

cli.define_config("default")
flags.DEFINE_string("workdir", None, "Run directory for config, metrics, checkpoints and pictures.",
                    required=True)
flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its latest checkpoint.")
flags.DEFINE_bool("progress", True, "Show a progress bar per epoch.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    config = FLAGS.config
    if FLAGS.resume and not FLAGS["config"].present:
        config = rundir.load_config(FLAGS.workdir)  # Resume with the run's own config,
        config.update_from_flattened_dict(cli.config_overrides())  # and the values given.
    train_and_evaluate(config, FLAGS.workdir, resume=FLAGS.resume, progress=FLAGS.progress)


if __name__ == "__main__":
    cli.run(main)
