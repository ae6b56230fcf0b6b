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
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from fvae import data, plots, runs  # noqa: E402
from fvae.checkpoint import CheckpointError  # noqa: E402
from fvae.evaluate import generate  # noqa: E402
from fvae.runner import load_run_state  # noqa: E402

flags.DEFINE_string("workdir", None, "Run directory of a trained model.", required=True)
flags.DEFINE_string("label", None, "Class name or index (conditional runs only).")
flags.DEFINE_integer("n", 64, "Number of images.", short_name="num")
flags.DEFINE_integer("seed", 0, "Seed of the prior samples.")
FLAGS = flags.FLAGS


def sample_run(workdir: str | Path, label: str | int | None = None, num: int = 64, seed: int = 0) -> Path:
    """Writes a grid of `num` prior samples (of class `label`) into RUN/samples; returns its path."""
    if num < 1:
        raise ValueError(f"-n must be >= 1, got {num}")
    workdir = Path(workdir)
    config = runs.load_config(workdir)
    conditional = config.model.conditional
    if label is not None and not conditional:
        raise ValueError(f"{workdir} is not a conditional VAE (model.conditional is False): omit --label, or "
                         "train one with experiments/configs/conditional.py")
    index = data.parse_label(label) if label is not None else None
    _, state = load_run_state(workdir)
    if conditional:
        labels = np.full(num, index, np.int32) if index is not None else np.arange(num, dtype=np.int32) % 10
    else:
        labels = None
    images = np.asarray(generate(state, jax.random.key(seed), num, labels))
    name = "all_classes" if index is None and conditional else ("prior" if index is None else
                                                                 data.CLASS_NAMES[index].replace("/", "-"))
    out = workdir / "samples" / f"{name}_n{num}_seed{seed}.png"
    out.parent.mkdir(exist_ok=True)
    title = f"{num} samples of class {data.CLASS_NAMES[index]}" if index is not None else f"{num} prior samples"
    plots.save_image_grid(out, images, title)
    return out


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        print(sample_run(FLAGS.workdir, FLAGS.label, FLAGS.n, FLAGS.seed))
    except (runs.RunDirError, CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    app.run(main)
