"""Evaluate a trained model: likelihoods, latent diagnostics, representation quality, sample
quality (the prior and any latent samplers, side by side), pictures.

    python -m experiments.evaluate --workdir runs/default [--iwae_samples=1000,5000] [--split=test]
    python -m experiments.evaluate --workdir results/models/gated_vae --out eval/gated_vae --iwae_samples=5000
    python -m experiments.evaluate --workdir runs/gated_vae --samplers=gmm,two_stage_vae,realnvp
    python -m experiments.evaluate --workdir runs/gated_vae --samplers=realnvp --sampler_config.realnvp.epochs=200

--workdir is a run directory or a stored model (experiments.export_model). Writes OUT/metrics.json,
OUT/report.md (metrics and sample-quality tables with every picture embedded), the pictures
(with --samplers, samplers.png: the prior and each sampler from the same seed), and the latent
codes (posterior means) with labels as .npy. OUT is RUN/eval for a run directory; a stored
model needs --out. Samplers are fitted once and kept in WORKDIR/samplers/NAME.
"""

from __future__ import annotations

from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.analysis.samplers import describe_samplers  # noqa: E402
from fvae.run.generation import chosen_samplers  # noqa: E402
from fvae.run.report import evaluate_run  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory or stored model to evaluate.", required=True)
flags.DEFINE_string("out", None, "Folder for the evaluation (default: WORKDIR/eval; required for a stored model).")
flags.DEFINE_list("iwae_samples", ["1000"], "Importance samples K for the IWAE bound (one estimate per K).")
flags.DEFINE_enum("split", "test", ["test", "val", "train"], "Split for the likelihood metrics.")
flags.DEFINE_integer("limit", 0, "Evaluate the likelihoods on the first N images of the split only (0: all); "
                     "the sample-quality scores always use 10,000 images.", lower_bound=0)
flags.DEFINE_list("samplers", [], f"Latent samplers to score beside the prior ({describe_samplers()}).")
flags.DEFINE_bool("retrain_classifier", False, "Score samples with a classifier trained on this machine's data "
                  "instead of the shipped one (the scores are then comparable only with each other).")
flags.DEFINE_bool("overwrite", False, "Replace an existing evaluation folder.")
flags.DEFINE_list("temperatures", [], "Also draw samples_t<T>.png, prior samples with every latent layer's noise "
                  "scaled by T, for each T (e.g. 0.7,0.85).")
cli.define_sampler_config()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    iwae_samples = cli.whole_numbers(FLAGS.iwae_samples, "--iwae_samples", "1000,5000", distinct=True)
    samplers = chosen_samplers(FLAGS.samplers, FLAGS.sampler_config.to_dict())
    evaluate_run(FLAGS.workdir, iwae_samples, FLAGS.split, FLAGS.limit, FLAGS.overwrite, samplers=samplers,
                 out=FLAGS.out, retrain_classifier=FLAGS.retrain_classifier,
                 temperatures=cli.positive_numbers(FLAGS.temperatures, "--temperatures", "0.7,0.85"))


if __name__ == "__main__":
    cli.run(main)
