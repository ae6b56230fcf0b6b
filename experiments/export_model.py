"""Store a trained run's best parameters as a model folder (written once): what
`fvae.load_model` loads and experiments.evaluate evaluates without the run directory.

    python -m experiments.export_model --workdir runs/gated_vae --out results/models/gated_vae

Writes params.msgpack (float32), config.json, versions.json, 100 test images with their
negative ELBO under a fixed key (reference.json), and fvae_sha256.json. Refuses an existing --out.
"""

from __future__ import annotations

from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.run.stored import export_model  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory of a trained model.", required=True)
flags.DEFINE_string("out", None, "New folder for the stored model.", required=True)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    out = export_model(FLAGS.workdir, FLAGS.out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"Stored {FLAGS.workdir} in {out} ({size / 1e6:.1f} MB).")


if __name__ == "__main__":
    cli.run(main)
