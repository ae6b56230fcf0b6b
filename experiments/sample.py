"""Draw images from a trained run's prior, of one class for a conditional VAE.

    python -m experiments.sample --workdir runs/conditional --label Dress -n 64
    python -m experiments.sample --workdir runs/default -n 64            # unconditional

Classes are accepted as names (case, spaces and dashes ignored: "dress", "Ankle boot",
"t-shirt") or indices 0-9. Writes RUN/samples/<class>_n<N>_seed<S>.png (the same
arguments always give the same picture) and prints its path.
"""

from __future__ import annotations

from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.run.report import sample_run  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory of a trained model.", required=True)
flags.DEFINE_string("label", None, "Class name or index (conditional runs only).")
flags.DEFINE_integer("n", 64, "Number of images.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the prior samples.", lower_bound=0, upper_bound=2**63 - 1)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    print(sample_run(FLAGS.workdir, FLAGS.label, FLAGS.n, FLAGS.seed))


if __name__ == "__main__":
    cli.run(main)
