"""Train and evaluate several configs in turn, then write one markdown results table.

    python -m experiments.sweep --configs default,binarized_mlp,conv --workdir runs/sweep
    python -m experiments.sweep --configs default,iwae --set train.max_train_minutes=3 --eval_images 1000

Each config trains into WORKDIR/<config> (a finished run is reused, a stopped one resumed)
and is evaluated by experiments.evaluate (IWAE with --iwae_samples on the first
--eval_images test images, 0 = all). WORKDIR/results.md and results.json hold the table:
config, likelihood, test -log p(x) by IWAE, bits/dim where defined, negative ELBO, active
units, linear-probe accuracy, epochs (best / trained) and training time.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from fvae.report import evaluate_run  # noqa: E402
from fvae import data, runs  # noqa: E402
from fvae.checkpoint import CheckpointError  # noqa: E402
from fvae.runner import Interrupted, NonFiniteError, train_and_evaluate  # noqa: E402

flags.DEFINE_list("configs", None, "Config modules under experiments/configs, e.g. default,iwae.", required=True)
flags.DEFINE_string("workdir", "runs/sweep", "Folder for the runs and the results table.")
flags.DEFINE_list("set", [], "Overrides for every config, e.g. train.max_train_minutes=3,train.max_epochs=20.")
flags.DEFINE_integer("iwae_samples", 1000, "Importance samples K for the test -log p(x).")
flags.DEFINE_integer("eval_images", 0, "Evaluate on the first N test images (0: all 10,000).")
FLAGS = flags.FLAGS

COLUMNS = ("config", "likelihood", "test -log p(x), nats", "bits/dim", "neg. ELBO", "active units",
           "probe acc.", "epochs (best/trained)", "train min")


def load_config(name: str, overrides: list[str]) -> ml_collections.ConfigDict:
    """experiments/configs/<name>.py with `key.path=value` overrides (values as Python literals)."""
    try:
        module = importlib.import_module(f"experiments.configs.{name}")
    except ModuleNotFoundError as err:
        known = sorted(p.stem for p in Path(__file__).parent.joinpath("configs").glob("*.py") if p.stem != "__init__")
        raise ValueError(f"no config {name!r} in experiments/configs (known: {', '.join(known)})") from err
    config = module.get_config()
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {override!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # A bare string such as likelihood.name=gaussian.
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


def run_one(name: str, workdir: Path, overrides: list[str], iwae_samples: int, eval_images: int,
            log=print) -> dict:
    """Trains (or reuses / resumes) one config and evaluates it; returns its table row."""
    config = load_config(name, overrides)
    run_dir = workdir / name
    finished = (run_dir / runs.TEST_METRICS_FILE).is_file()
    if not finished:
        log(f"== {name}: training into {run_dir}")
        train_and_evaluate(config, run_dir, resume=(run_dir / runs.CONFIG_FILE).is_file(), log=log, progress=False)
    summary = runs.read_json(run_dir / runs.TEST_METRICS_FILE)
    log(f"== {name}: evaluating (IWAE K={iwae_samples})")
    metrics = evaluate_run(run_dir, [iwae_samples], limit=eval_images, overwrite=True, log=log)
    bits = metrics.get(f"iwae_bits_per_dim_k{iwae_samples}")
    return {
        "config": name, "likelihood": config.likelihood.name,
        "test -log p(x), nats": metrics[f"iwae_nll_k{iwae_samples}"],
        "bits/dim": bits, "neg. ELBO": metrics["elbo_loss"],
        "active units": f"{metrics['active_units']}/{config.model.latents}",
        "probe acc.": metrics["linear_probe_accuracy"],
        "epochs (best/trained)": f"{summary['best_epoch']}/{summary['epochs_trained']}",
        "train min": summary["train_seconds"] / 60,
    }


def markdown_table(rows: list[dict], iwae_samples: int, eval_images: int) -> str:
    def cell(value):
        if value is None:
            return "n/a"
        return f"{value:.2f}" if isinstance(value, float) and abs(value) >= 10 else (
            f"{value:.3f}" if isinstance(value, float) else str(value))

    images = f"the first {eval_images}" if eval_images else "all 10,000"
    lines = [f"IWAE bound with K={iwae_samples} and negative ELBO on {images} test images, in nats per image "
             "(bits/dim only where the likelihood is a normalized mass over discrete pixels). Bernoulli on grey "
             "pixels is not a normalized density; its numbers compare only with other Bernoulli rows.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    workdir = Path(FLAGS.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name in FLAGS.configs:
            load_config(name, FLAGS.set)  # Fail on a bad name or override before any training.
        for name in FLAGS.configs:
            rows.append(run_one(name, workdir, FLAGS.set, FLAGS.iwae_samples, FLAGS.eval_images))
            runs.write_json(workdir / "results.json", rows)
            (workdir / "results.md").write_text(markdown_table(rows, FLAGS.iwae_samples, FLAGS.eval_images))
    except Interrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    except (data.DataError, runs.RunDirError, CheckpointError, NonFiniteError, ValueError, KeyError) as err:
        sys.exit(f"error: {err}")
    print(markdown_table(rows, FLAGS.iwae_samples, FLAGS.eval_images))
    print(f"Written: {workdir / 'results.md'}")


if __name__ == "__main__":
    app.run(main)
