"""Which of several trained models bounds -log p(x) lower, on the same images, with a standard
error that says whether the difference is real.

    python -m experiments.compare_bounds \
        --models results/models/gated_hierarchical_vampprior,results/models/top_down --iwae_samples 5000

Each model (a run directory or a stored model) gets the IWAE bound with K importance samples
on the first --limit images of the split (0: all), drawn with the key experiments.evaluate
uses for that K, so each bound is its evaluation's figure on the same images. Two models'
means each carry a standard error of most of a nat, mostly the images' own spread; the
difference of their per-image bounds (paired) cancels that spread. Prints a markdown table
with each model's bound and its paired difference to the first model; --out also writes
them as JSON. The models must evaluate the same images (the same likelihood binarization and
data); nothing in them changes.
"""

from __future__ import annotations

import time

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae import files  # noqa: E402
from fvae.errors import ConfigError  # noqa: E402
from fvae.run.assemble import load_splits, model_inputs, run_keys, stored_data  # noqa: E402
from fvae.run.report import iwae_per_image, paired_difference, standard_error  # noqa: E402
from fvae.run.stored import load_trained  # noqa: E402

flags.DEFINE_list("models", None, "Two or more run directories or stored models; the first is the reference.",
                  required=True)
flags.DEFINE_integer("iwae_samples", 5000, "K, the importance samples per image.", lower_bound=1)
flags.DEFINE_enum("split", "test", ["test", "val"], "Split to evaluate.")
flags.DEFINE_integer("limit", 0, "Evaluate the first N images of the split (0: all).", lower_bound=0)
flags.DEFINE_string("out", "", "JSON file for the rows (none if empty).")
FLAGS = flags.FLAGS


def compared(per_image: dict[str, np.ndarray], seconds: dict[str, float]) -> list[dict]:
    """One row per model: its mean bound and standard error, and its paired difference to the
    first model's bound on the same images (0 for the first)."""
    first = next(iter(per_image.values()))
    rows = []
    for name, values in per_image.items():
        gap, gap_stderr = paired_difference(values, first)
        rows.append({"model": name, "iwae_nll": float(np.mean(values)),
                     "iwae_nll_stderr": standard_error(values),
                     "minus_first": gap, "minus_first_stderr": gap_stderr, "seconds": seconds[name]})
    return rows


def main(argv):
    del argv
    cli.check_output_file(FLAGS.out, "--out")
    if len(FLAGS.models) < 2 or len(set(FLAGS.models)) != len(FLAGS.models):
        raise ConfigError(f"--models takes two or more different models, got {FLAGS.models}")
    if FLAGS.limit == 1:
        raise ConfigError("--limit must be 0 (all images) or >= 2 (a standard error needs two), got 1")
    loaded = {path: load_trained(path) for path in FLAGS.models}  # A wrong path fails before the long work.
    stored = stored_data(next(iter(loaded.values()))[0])  # The data, read once for every model.
    inputs, reference = {}, None
    for path, (config, _) in loaded.items():
        split = getattr(load_splits(config, stored), FLAGS.split)
        inputs[path] = model_inputs(config, split.take(FLAGS.limit) if FLAGS.limit else split)
        if reference is None:
            reference = inputs[path].images
        elif not np.array_equal(inputs[path].images, reference):
            raise ConfigError(f"{path} evaluates other {FLAGS.split} images than {FLAGS.models[0]} (another "
                              "likelihood, binarization seed or data): a paired difference needs the same images")
    per_image, seconds = {}, {}
    for path, (config, state) in loaded.items():
        start = time.perf_counter()
        per_image[path] = iwae_per_image(state, jax.device_put(inputs[path]), run_keys(config.seed)["eval"],
                                         FLAGS.iwae_samples)
        seconds[path] = time.perf_counter() - start
        print(f"{path}: {np.mean(per_image[path]):.2f} nats in {seconds[path]:.0f} s", flush=True)
    rows = compared(per_image, seconds)
    count = len(next(iter(per_image.values())))
    print(f"\nIWAE bound, K={FLAGS.iwae_samples}, on the first {count} {FLAGS.split} images (nats)\n")
    print(f"| model | -log p(x) <= | +- | minus {FLAGS.models[0]} (paired) | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['model']} | {row['iwae_nll']:.2f} | {row['iwae_nll_stderr']:.2f} | "
              f"{row['minus_first']:+.3f} +- {row['minus_first_stderr']:.3f} | {row['seconds']:.0f} |")
    if FLAGS.out:
        files.write_json(FLAGS.out, {"split": FLAGS.split, "images": count, "iwae_samples": FLAGS.iwae_samples,
                                     "models": rows})


if __name__ == "__main__":
    cli.run(main)
