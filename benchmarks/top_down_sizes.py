"""The top-down VAE's size study: a few sizes trained for the same few epochs on the full
training set, each with its training img/s, the validation ELBO reached, the projected time
of the recipe's epochs, and the projected cost of the K=5000 IWAE evaluation of the test set.

    python benchmarks/top_down_sizes.py --epochs 3 --out results/top_down_size_study.json

Each size is experiments/configs/top_down.py with the overrides below. Run it on a quiet
machine (nothing else running): the img/s are the mean of the epochs after the first (the
first compiles). The IWAE cost is timed on --iwae_images test images after one warm-up call
and scaled to 10,000. Writes the JSON (with the CPU and packages; the rows of an earlier call
that this one does not rerun are kept) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from experiments.configs import top_down
from experiments.results_doc import size_study_table
from fvae import files
from fvae.compute.bounds import iwae_log_likelihoods
from fvae.run import assemble, rundir
from fvae.run.trainer import train_and_evaluate
from fvae.run.versions import cpu_model, versions

SIZES = {  # name: overrides of experiments/configs/top_down.py
    "mlp-4x256-residual": {},
    "mlp-4x256-merge": {"model.posterior": "merge"},
    "mlp-8x384-residual": {"model.groups": 8, "model.width": 384, "model.cell_hidden": 384},
    # Measured before the learning-rate warm-up joined top_down.py (its timing does not depend on it).
    "conv-1x32-residual": {"model.cell": "conv", "model.groups": 1, "model.width": 32, "model.cell_hidden": 32,
                           "model.latents": 4, "train.lr_schedule": "cosine", "train.skip_grad_norm": 1000.0},
}
TEST_IMAGES = 10_000


def study(name: str, overrides: dict, epochs: int, iwae_images: int) -> dict:
    config = top_down.get_config()
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    recipe_epochs = config.train.max_epochs
    config.train.max_epochs = epochs  # The schedules laid out over these epochs; a warm-up over half of them at most.
    config.train.lr_warmup_epochs = min(config.train.lr_warmup_epochs, epochs / 2)
    with tempfile.TemporaryDirectory() as workdir:
        train_and_evaluate(config, workdir, log=lambda _: None, progress=False)
        history = rundir.load_history(workdir)
        _, state = assemble.load_run_state(workdir, "latest")
    seconds = [r["seconds"] for r in history[1:]]
    images_per_second = float(np.mean([r["images_per_second"] for r in history[1:]]))
    test = assemble.load_splits(config).test.images[:iwae_images]
    key = jax.random.key(0)
    iwae_log_likelihoods(state, test[:100], key, 5000).block_until_ready()  # Compile.
    start = time.perf_counter()
    iwae_log_likelihoods(state, test, key, 5000).block_until_ready()
    iwae_seconds = (time.perf_counter() - start) * TEST_IMAGES / len(test)
    return {"size": name, "overrides": overrides, "parameters": int(sum(a.size for a in jax.tree.leaves(state.params))),
            "epochs": epochs, "train_images_per_second": images_per_second,
            "val_loss": [r["val_loss"] for r in history], "val_kl": history[-1]["val_kl"],
            "projected_hours_for_recipe": float(np.mean(seconds)) * recipe_epochs / 3600,
            "recipe_epochs": recipe_epochs,
            "projected_hours_iwae_k5000_test": iwae_seconds / 3600}


def table(rows: list[dict]) -> str:
    return size_study_table({"rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--iwae_images", type=int, default=200)
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated names of SIZES")
    parser.add_argument("--out", default="results/top_down_size_study.json")
    args = parser.parse_args()
    names = args.sizes.split(",")
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {list(SIZES)}")
    rows = []
    for name in names:
        rows.append(study(name, SIZES[name], args.epochs, args.iwae_images))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    if Path(args.out).is_file():  # Rows of an earlier call that this one does not rerun are kept.
        rows = [r for r in files.read_json(args.out)["rows"] if r["size"] not in names] + rows
        rows.sort(key=lambda r: list(SIZES).index(r["size"]))
    files.write_json(args.out, {"study": "top_down_sizes", "cpu": cpu_model(), "versions": versions(),
                                "date": time.strftime("%Y-%m-%d"), "rows": rows})
    print(table(rows))


if __name__ == "__main__":
    main()
