"""Draw images from a trained model: from its prior (of one class for a conditional VAE), or
from a latent sampler fitted to its codes.

    python -m experiments.sample --workdir runs/conditional --label Dress -n 64
    python -m experiments.sample --workdir runs/default -n 64            # unconditional
    python -m experiments.sample --workdir runs/gated_vae --sampler gmm  # a fitted sampler
    python -m experiments.sample --workdir results/models/gated_vae --sampler realnvp --out pictures
    python -m experiments.sample --workdir runs/top_down -n 64 --temperature 0.7   # sharper samples

--workdir is a run directory or a stored model. Classes are accepted as names (case, spaces
and dashes ignored: "dress", "Ankle boot", "t-shirt") or indices 0-9. Writes
OUT/<class or sampler>_n<N>_seed<S>.png (the same arguments always give the same picture;
OUT is WORKDIR/samples for a run directory, required for a stored model) and prints its
path. A sampler is fitted on first use and kept in WORKDIR/samplers/NAME.
"""

from __future__ import annotations

from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.analysis.samplers import describe_samplers  # noqa: E402
from fvae.run.generation import PRIOR, sample_grid  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory or stored model.", required=True)
flags.DEFINE_string("out", None, "Folder for the picture (default: WORKDIR/samples; required for a stored model).")
flags.DEFINE_string("label", None, "Class name or index (conditional runs only).")
flags.DEFINE_string("sampler", PRIOR, f"Draw from the prior, or from a fitted sampler ({describe_samplers()}).")
flags.DEFINE_integer("n", 64, "Number of images.", lower_bound=1, upper_bound=10_000)
flags.DEFINE_integer("seed", 0, "Seed of the samples.", lower_bound=0, upper_bound=2**63 - 1)
flags.DEFINE_float("temperature", 1.0, "Scale of the noise of every latent layer drawn from the model (1: the "
                   "model itself; e.g. 0.7: sharper, less varied samples of a hierarchical VAE).")
cli.define_sampler_config()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    print(sample_grid(FLAGS.workdir, FLAGS.label, FLAGS.n, FLAGS.seed, FLAGS.sampler, FLAGS.out, FLAGS.temperature,
                      FLAGS.sampler_config.to_dict()))


if __name__ == "__main__":
    cli.run(main)
