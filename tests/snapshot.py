"""A few-step numerical snapshot of every experiment config, to keep refactors honest.

For each config in experiments/configs: its model, objective and learning rate; three
train steps on a fixed batch of 64 structured fake images; the loss of each step, the
global norm of the parameters after them, and the validation bound (ELBO, or the IWAE
bound with the config's K) on another fixed batch. `tests/test_snapshot.py` checks every
config against the values recorded on this CPU kind (tests/snapshots/configs.json with
AVX-512, configs-avx2.json without) to 1e-5 relative, or, for a config recorded only on the
other kind, to 1e-3 (the CPU kinds differ by up to 1e-4). Re-recording a config whose numbers
changed drops it from the other kind's file (its numbers there predate the change), so one
machine is enough: the other kind checks it to 1e-3 until someone records it there too.

    python -m tests.snapshot --write     # record this CPU kind's file (before a refactor)
    python -m tests.snapshot --write gated_vae gated_vampprior   # record (or re-record) only these
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import optax

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
# XLA:CPU compiles for the vector extensions it finds, so each CPU kind has its own numbers.
FILES = {"avx512": SNAPSHOTS / "configs.json", "avx2": SNAPSHOTS / "configs-avx2.json"}


def cpu_kind() -> str:
    """"avx512" on CPUs with AVX-512 (the Intel machines), else "avx2" (e.g. AMD EPYC)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return "avx512" if "avx512f" in flags.split() else "avx2"


SNAPSHOT = FILES[cpu_kind()]


def measure(name: str) -> dict[str, float | list[float]]:
    from experiments import configs
    from fvae.compute.bounds import evaluate_bound
    from fvae.compute.state import create_train_state
    from fvae.compute.steps import train_step
    from fvae.data import Dataset
    from fvae.models import build_model
    from fvae.run.assemble import learning_rate, objective, optimizer
    from tests.helpers import class_images

    config = configs.load(name)
    images, labels = class_images(128, seed=7)
    images, labels = images.reshape(128, 784), labels.astype(np.int32)
    train_batch = Dataset(images[:64], labels[:64] if config.model.conditional else None)
    state = create_train_state(build_model(config), jax.random.key(config.seed), images[:1],
                               learning_rate(config), objective(config), tx=optimizer(config))
    losses = []
    for _ in range(3):
        state, metrics = train_step(state, train_batch, jax.random.key(1))
        losses.append(float(metrics["loss"]))
    val = Dataset(images[64:], labels[64:] if config.model.conditional else None)
    bound = evaluate_bound(state, val, jax.random.key(2), 64, num_samples=config.objective.iwae_samples)
    return {"losses": losses, "param_norm": float(optax.tree.norm(state.params)),
            "val_loss": float(bound["loss"]), "val_kl": float(bound["kl"])}


def main(argv: list[str]) -> None:
    from experiments import configs

    if argv[1:2] != ["--write"]:
        sys.exit(__doc__)
    names = argv[2:] or configs.names()
    unknown = sorted(set(names) - set(configs.names()))
    if unknown:
        sys.exit(f"unknown configs {unknown}; known: {configs.names()}")
    before = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.is_file() else {}
    recorded = dict(before) if argv[2:] else {}
    recorded.update({name: measure(name) for name in names})
    SNAPSHOT.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
    print(f"wrote {SNAPSHOT} ({len(recorded)} configs)")
    changed = [name for name in names if name in before and not _same(before[name], recorded[name])]
    for other in (path for path in FILES.values() if path != SNAPSHOT and path.is_file()):
        there = json.loads(other.read_text())
        stale = [name for name in changed if name in there]
        if stale:
            other.write_text(json.dumps({k: v for k, v in there.items() if k not in stale}, indent=1) + "\n")
            print(f"{other}: dropped {stale} (their numbers changed here, so they are stale there)")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=1e-5, atol=0) for k in a)


if __name__ == "__main__":
    main(sys.argv)
