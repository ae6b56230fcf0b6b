"""Train and evaluate several configs in turn, then write one markdown results table.

    python -m experiments.sweep --configs default,binarized_mlp,conv --workdir runs/sweep
    python -m experiments.sweep --configs default,iwae --set train.max_train_minutes=3 --eval_images 1000
    python -m experiments.sweep --variant "gated gated_vae" --variant "relu gated_vae model.gated=False" \
        --set train.max_epochs=100 --workdir runs/ablation     # one config against itself, changed

A --variant is "LABEL CONFIG [KEY=VALUE ...]": the config with its own overrides (after the
--set ones), run and listed under LABEL. Each config or variant trains into WORKDIR/<name>
(a finished run is reused, a stopped one resumed)
and is evaluated by experiments.evaluate (IWAE with --iwae_samples on the first
--eval_images test images, 0 = all). WORKDIR/results.md and results.json hold the table:
config, likelihood, test -log p(x) by IWAE, bits/dim where defined, negative ELBO, active
units, linear-probe accuracy, epochs (best / trained) and training time.
"""

from __future__ import annotations

from pathlib import Path

from experiments import cli  # First: sets the TensorFlow log level.
from absl import flags  # noqa: E402

from experiments.configs import load  # noqa: E402
from fvae import runs  # noqa: E402
from fvae.errors import ConfigError  # noqa: E402
from fvae.sweep import markdown_table, run_one  # noqa: E402

flags.DEFINE_list("configs", [], "Config modules under experiments/configs, e.g. default,iwae.")
flags.DEFINE_multi_string("variant", [], 'A config with overrides of its own, listed under a label: '
                          '"LABEL CONFIG [KEY=VALUE ...]" (no spaces inside a value), '
                          'e.g. "relu gated_vae model.gated=False". Repeatable.')
flags.DEFINE_string("workdir", "runs/sweep", "Folder for the runs and the results table.")
flags.DEFINE_multi_string("set", [], "Overrides for every config, comma-separated or repeated, e.g. "
                          "--set train.max_epochs=20,model.encoder_hidden=(512,256) --set train.batch_size=64.")
flags.DEFINE_integer("iwae_samples", 1000, "Importance samples K for the test -log p(x).")
flags.DEFINE_integer("eval_images", 0, "Evaluate on the first N test images (0: all 10,000).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    configs = {name: load(name, FLAGS.set) for name in FLAGS.configs}  # Bad names or overrides fail first.
    for variant in FLAGS.variant:
        words = variant.split()
        if len(words) < 2 or "/" in words[0]:
            raise ConfigError(f"--variant {variant!r}: give a label (a folder name) and a config, then any "
                              "overrides: \"LABEL CONFIG [KEY=VALUE ...]\", e.g. \"relu gated_vae model.gated=False\"")
        label, name, *overrides = words
        if label in configs:
            raise ConfigError(f"--variant label {label!r} is used twice (or is also in --configs); give each its own")
        configs[label] = load(name, [*FLAGS.set, *overrides])
    if not configs:
        raise ConfigError("nothing to run: give --configs NAME,... and/or --variant \"LABEL CONFIG [KEY=VALUE ...]\"")
    workdir = Path(FLAGS.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, config in configs.items():
        rows.append(run_one(name, config, workdir, FLAGS.iwae_samples, FLAGS.eval_images))
        runs.write_json(workdir / "results.json", rows)
        (workdir / "results.md").write_text(markdown_table(rows, FLAGS.iwae_samples, FLAGS.eval_images))
    print(markdown_table(rows, FLAGS.iwae_samples, FLAGS.eval_images))
    print(f"Written: {workdir / 'results.md'}")


if __name__ == "__main__":
    cli.run(main)
