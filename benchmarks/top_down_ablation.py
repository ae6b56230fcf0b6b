"""The top-down VAE's ablation on a short run: its posterior form and what each stabilizer does.

    python benchmarks/top_down_ablation.py --out results/top_down_ablation.json [--rows a,b]

Every row is experiments/configs/top_down.py at the small size of the size study (4 groups,
256 units) trained for 30 epochs (cosine to 0 over them, KL warm-up over 10, the learning
rate's over 2), with one thing changed. For each: the test negative ELBO of the best epoch,
its KL, each group's KL and active units on the test set, the fraction of steps skipped, and
whether the run stopped on a non-finite loss. Deterministic (no timing): it may run beside
other work. Writes the JSON (keeping the rows of an earlier call that this one does not
rerun) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from experiments.configs import top_down
from experiments.results_doc import ablation_table
from fvae import files
from fvae.compute.bounds import latent_statistics
from fvae.errors import UserError
from fvae.models import build_model
from fvae.run import assemble, rundir
from fvae.run.report import group_metrics
from fvae.run.trainer import train_and_evaluate
from fvae.run.versions import cpu_model, versions

BASE = {"model.groups": 4, "model.width": 256, "model.cell_hidden": 256, "train.max_epochs": 30,
        "objective.warmup_epochs": 10, "train.lr_warmup_epochs": 2.0, "train.patience": 30}
ROWS = {  # name: what changes from BASE
    "residual": {},
    "merge": {"model.posterior": "merge"},
    "residual without KL warm-up": {"objective.warmup_epochs": 0},
    "residual without free bits": {"objective.free_bits": 0.0},
    "residual without learning-rate warm-up": {"train.lr_schedule": "cosine"},
}


def run(name: str, overrides: dict) -> dict:
    config = top_down.get_config()
    for key, value in {**BASE, **overrides}.items():
        section, field = key.split(".")
        config[section][field] = value
    row = {"row": name, "overrides": overrides}
    with tempfile.TemporaryDirectory() as workdir:
        try:
            summary = train_and_evaluate(config, workdir, log=lambda _: None, progress=False)
        except UserError as err:  # A non-finite loss: the row says so.
            history = rundir.load_history(workdir)
            return {**row, "failed": str(err).splitlines()[0], "epochs": len(history)}
        history = rundir.load_history(workdir)
        _, state = assemble.load_run_state(workdir)
    test = assemble.load_splits(config).test.images
    stats = latent_statistics(state, test)
    groups = group_metrics(build_model(config).group_sizes, jax.device_get(stats))
    return {**row, "test_neg_elbo": summary["test_loss"], "test_kl": summary["test_kl"],
            "best_epoch": summary["best_epoch"],
            "skipped_fraction": float(np.mean([r["train_skipped"] for r in history])),
            **groups}


def table(rows: list[dict]) -> str:
    return ablation_table({"rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated names of ROWS")
    parser.add_argument("--out", default="results/top_down_ablation.json")
    args = parser.parse_args()
    names = args.rows.split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    rows = []
    for name in names:
        rows.append(run(name, ROWS[name]))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    if Path(args.out).is_file():  # Rows of an earlier call (e.g. a second process) are kept unless rerun.
        rows = [r for r in files.read_json(args.out)["rows"] if r["row"] not in names] + rows
        rows.sort(key=lambda r: list(ROWS).index(r["row"]))
    files.write_json(args.out, {"study": "top_down_ablation", "cpu": cpu_model(), "versions": versions(),
                                "date": time.strftime("%Y-%m-%d"), "base": BASE, "rows": rows})
    print(table(rows))


if __name__ == "__main__":
    main()
