"""Evaluate a trained run: likelihoods, latent diagnostics, representation quality, pictures.

    python -m experiments.evaluate --workdir runs/default [--iwae_samples=1000,5000] [--split=test]

Writes RUN/eval/metrics.json, RUN/eval/report.md (metrics table with every picture
embedded), the pictures, and the latent codes (posterior means) with labels as .npy.
"""

from __future__ import annotations

from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.run.report import evaluate_run  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory to evaluate.", required=True)
flags.DEFINE_list("iwae_samples", ["1000"], "Importance samples K for the IWAE bound (one estimate per K).")
flags.DEFINE_enum("split", "test", ["test", "val", "train"], "Split for the likelihood metrics.")
flags.DEFINE_integer("limit", 0, "Evaluate only the first N images of the split (0: all).", lower_bound=0)
flags.DEFINE_bool("overwrite", False, "Replace an existing RUN/eval folder.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    iwae_samples = cli.whole_numbers(FLAGS.iwae_samples, "--iwae_samples", "1000,5000", distinct=True)
    evaluate_run(FLAGS.workdir, iwae_samples, FLAGS.split, FLAGS.limit, FLAGS.overwrite)


if __name__ == "__main__":
    cli.run(main)
