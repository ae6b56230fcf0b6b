"""Train and evaluate several configs in turn; keep one markdown results table per sweep folder.

    python -m experiments.sweep --configs default,binarized_mlp,conv --workdir runs/sweep
    python -m experiments.sweep --configs default,iwae --config.train.max_train_minutes=3 --eval_images 1000
    python -m experiments.sweep --configs gated_vae --label relu --config.model.gated=False \
        --config.train.max_epochs=100 --workdir runs/ablation      # an ablation: one row per call

--config.KEY=VALUE overrides apply to every config of --configs (names in experiments/configs
or paths). Each config trains into WORKDIR/<name> (--label names it instead, with one config)
(a finished run is reused, a stopped one resumed) and is evaluated by experiments.evaluate
(IWAE with --iwae_samples on the first --eval_images test images, 0 = all). WORKDIR/results.md
and results.json hold one row per run evaluated in WORKDIR, in the order first evaluated (a
rerun replaces its row): config, likelihood, test -log p(x) by IWAE, bits/dim where defined,
negative ELBO, active units, linear-probe accuracy, sample Frechet distance, epochs and
training time.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from experiments import cli  # First: sets the TensorFlow log level.
from experiments.configs import load  # noqa: E402
from fvae import files  # noqa: E402
from fvae.errors import ConfigError  # noqa: E402
from fvae.run.table import markdown_table, run_one  # noqa: E402

cli.define_config("default", "Only its --config.KEY=VALUE overrides are read here: they apply to every "
                  "config of --configs.")
flags.DEFINE_list("configs", [], "Configs to run: names in experiments/configs or paths, e.g. default,iwae.")
flags.DEFINE_string("label", None, "With one config: the name of its run and table row (default: the config's).")
flags.DEFINE_string("workdir", "runs/sweep", "Folder for the runs and the results table.")
flags.DEFINE_integer("iwae_samples", 1000, "Importance samples K for the test -log p(x).", lower_bound=1)
flags.DEFINE_integer("eval_images", 0, "Evaluate on the first N test images (0: all 10,000).", lower_bound=0)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS["config"].present:
        raise ConfigError("sweep runs the configs of --configs NAME,...; --config.KEY=VALUE overrides apply to each")
    if not FLAGS.configs:
        raise ConfigError("nothing to run: give --configs NAME[,NAME...] (names in experiments/configs or paths)")
    if FLAGS.label is not None and (len(FLAGS.configs) != 1 or not FLAGS.label or "/" in FLAGS.label):
        raise ConfigError(f"--label {FLAGS.label!r} names the run of a single config: give one config and a "
                          "label without '/'")
    overrides = cli.config_overrides()
    configs = {FLAGS.label or Path(name).stem: load(name, overrides) for name in FLAGS.configs}  # Bad names first.
    workdir = Path(FLAGS.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = workdir / "results.json"
    rows = files.read_json(results) if results.is_file() else []
    for name, config in configs.items():
        row = run_one(name, config, workdir, FLAGS.iwae_samples, FLAGS.eval_images)
        names = [r["config"] for r in rows]
        if name in names:
            rows[names.index(name)] = row
        else:
            rows.append(row)
        files.write_json(results, rows)
        files.write_text(workdir / "results.md", markdown_table(rows, FLAGS.iwae_samples, FLAGS.eval_images))
    print(markdown_table(rows, FLAGS.iwae_samples, FLAGS.eval_images))
    print(f"Written: {workdir / 'results.md'}")


if __name__ == "__main__":
    cli.run(main)
