"""How the IWAE bound of a trained run depends on K, the importance samples per image.

    python -m experiments.iwae_k --workdir runs/gated_vampprior --iwae_samples 1,10,100,1000,5000 --limit 1000

K is an evaluation-time choice only (training uses objective.iwae_samples): every K bounds
the same -log p(x) from above, and larger K bounds it more tightly at proportionally more
cost. For each K: the bound on the first --limit test images (the key experiments.evaluate
uses for that K, so a row matches its figure on the same images), its standard error, how
far it lies above the largest K's bound on the same images (a paired difference, with its
own standard error), and the seconds it took. Prints a markdown table; --out also writes the
metrics as JSON. Nothing in the run directory changes.
"""

from __future__ import annotations

import jax  # noqa: E402
from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae import files  # noqa: E402
from fvae.errors import ConfigError  # noqa: E402
from fvae.models.likelihoods import build_likelihood  # noqa: E402
from fvae.run.assemble import load_run_state, load_splits, model_inputs, run_keys  # noqa: E402
from fvae.run.report import iwae_metrics  # noqa: E402

flags.DEFINE_string("workdir", None, "A trained run directory.", required=True)
flags.DEFINE_list("iwae_samples", ["1", "10", "100", "1000", "5000"], "The K to compare.")
flags.DEFINE_enum("split", "test", ["test", "val", "train"], "Split to evaluate.")
flags.DEFINE_integer("limit", 1000, "Evaluate the first N images of the split (0: all).", lower_bound=0)
flags.DEFINE_string("out", "", "JSON file for the metrics (none if empty).")
FLAGS = flags.FLAGS


def markdown_rows(metrics: dict, ks: list[int]) -> list[str]:
    """The table: one row per K, from iwae_metrics' flat metrics."""
    largest = max(ks)
    lines = [f"| K | -log p(x) <= (nats) | +- | above K={largest} (paired) | seconds |",
             "| --- | --- | --- | --- | --- |"]
    for k in ks:
        gap = (f"{metrics[f'iwae_nll_k{k}_minus_k{largest}']:.2f} +- "
               f"{metrics[f'iwae_nll_k{k}_minus_k{largest}_stderr']:.2f}") if k != largest else "0"
        lines.append(f"| {k} | {metrics[f'iwae_nll_k{k}']:.2f} | {metrics[f'iwae_nll_k{k}_stderr']:.2f} | {gap} | "
                     f"{metrics[f'seconds_iwae_k{k}']:.1f} |")
    return lines


def main(argv):
    del argv
    cli.check_output_file(FLAGS.out, "--out")
    ks = cli.whole_numbers(FLAGS.iwae_samples, "--iwae_samples", "1,10,100,1000", distinct=True)
    if FLAGS.limit < 0 or FLAGS.limit == 1:
        raise ConfigError(f"--limit must be 0 (all images) or >= 2 (a standard error needs two), got {FLAGS.limit}")
    config, state = load_run_state(FLAGS.workdir)
    evaluated = getattr(load_splits(config), FLAGS.split)
    if FLAGS.limit:
        evaluated = evaluated.take(FLAGS.limit)
    inputs = jax.device_put(model_inputs(config, evaluated))
    discrete = build_likelihood(config.likelihood).discrete
    metrics = {"workdir": str(FLAGS.workdir), "split": FLAGS.split, "images": evaluated.num_examples,
               **iwae_metrics(state, inputs, run_keys(config.seed)["eval"], ks, discrete)}
    print(f"{FLAGS.workdir}: IWAE bound on the first {evaluated.num_examples} {FLAGS.split} images")
    print("\n".join(markdown_rows(metrics, ks)))
    if FLAGS.out:
        files.write_json(FLAGS.out, metrics)


if __name__ == "__main__":
    cli.run(main)
