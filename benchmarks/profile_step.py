"""Where a config's training step spends its time: a jax.profiler trace of compiled train steps,
summed by XLA operation kind.

    python benchmarks/profile_step.py [--config conv_chollet] [--steps 20] [--top 12]

It compiles a block of --steps train steps (one `lax.scan`, as training runs them) on
random images, runs it once to warm up, traces a second run with jax.profiler (perfetto
format), and prints the share of the traced operation time per kind of operation (dot =
matmul, fusion = fused elementwise / reduction / pad / slice work, copy, transpose, ...)
and the longest single operations.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import tempfile
from pathlib import Path

import jax
import numpy as np

from experiments.configs import load
from fvae import compute
from fvae.models import build_model
from fvae.run.assemble import objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="conv_chollet")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    config = load(args.config)
    batch = config.train.batch_size
    images = jax.device_put(np.random.default_rng(0).integers(0, 256, (args.steps * batch, 784), np.uint8))
    indices = jax.numpy.arange(args.steps * batch).reshape(args.steps, batch)
    state = compute.create_train_state(build_model(config), jax.random.key(0), np.zeros((1, 784), np.uint8),
                                     config.train.learning_rate, objective(config))
    state, metrics = compute.train_block(state, images, indices, jax.random.key(1))  # Compiles.
    jax.block_until_ready(metrics)
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            state, metrics = compute.train_block(state, images, indices, jax.random.key(2))
            jax.block_until_ready(metrics)
        trace = json.loads(gzip.open(next(Path(folder).rglob("perfetto_trace.json.gz"))).read())

    events = [e for e in trace["traceEvents"] if e.get("ph") == "X" and "dur" in e]
    wall = (max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)) / 1e3
    # XLA operations are named like "dot.12", "fusion.3", "copy_transpose.4"; skip the
    # host-side and runtime events (names with spaces, colons or capitals).
    ops = [e for e in events if re.fullmatch(r"[a-z][a-z0-9_\-]*(\.\d+)?", e["name"])]
    by_kind, by_name = collections.Counter(), collections.Counter()
    for e in ops:
        by_kind[re.sub(r"\.\d+$", "", e["name"])] += e["dur"]
        by_name[e["name"]] += e["dur"]
    total = sum(by_kind.values())
    print(f"{args.config}: {args.steps} steps of batch {batch}, traced wall {wall:.1f} ms "
          f"({wall / args.steps:.2f} ms/step, {args.steps * batch / wall * 1e3:.0f} img/s); "
          f"operation time {total / 1e3:.1f} ms over {len(ops)} operation runs (both cores' threads summed)")
    print("\n| kind | ms | share |\n| --- | --- | --- |")
    for kind, dur in by_kind.most_common(args.top):
        print(f"| {kind} | {dur / 1e3:.1f} | {100 * dur / total:.0f}% |")
    print("\n| longest operations | ms | share |\n| --- | --- | --- |")
    for name, dur in by_name.most_common(args.top):
        print(f"| {name} | {dur / 1e3:.1f} | {100 * dur / total:.0f}% |")


if __name__ == "__main__":
    main()
