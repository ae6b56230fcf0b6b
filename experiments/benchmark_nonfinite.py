"""What stopping right after a NaN costs: `train_epoch` waits for each block's non-finite check
before dispatching the next (stop_on_nonfinite=True, what the runner uses) versus dispatching
every block without waiting (False).

    python -m experiments.benchmark_nonfinite [--config mlp500] [--steps_per_call 0,8] [--epochs 5]

Synthetic uint8 images (55,000, like benchmark.py); best epoch time of --epochs after one
warm-up epoch, per setting. Writes benchmarks/nonfinite.md and .json (--out).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae import compute, files  # noqa: E402
from fvae.errors import ConfigError  # noqa: E402
from fvae.run.assemble import initial_state  # noqa: E402
from fvae.run.versions import cpu_model  # noqa: E402

cli.define_config("mlp500")
flags.DEFINE_list("steps_per_call", ["8", "0"], "Block sizes to compare (0: the whole epoch in one call).")
flags.DEFINE_integer("train_images", 55_000, "Synthetic training images per epoch.", lower_bound=1)
flags.DEFINE_integer("epochs", 5, "Timed epochs per setting (after one warm-up epoch).", lower_bound=1)
flags.DEFINE_string("out", "benchmarks", "Folder for nonfinite.md and nonfinite.json.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    blocks = cli.whole_numbers(FLAGS.steps_per_call, "--steps_per_call", "8,0", distinct=True, minimum=0)
    config = FLAGS.config
    batch = config.train.batch_size
    if FLAGS.train_images < batch:
        raise ConfigError(f"--train_images={FLAGS.train_images} is less than one batch ({batch}): give at least that "
                          "many")
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)  # Before any work: --out naming a file fails at once.
    images = jax.device_put(np.random.default_rng(0).integers(0, 256, (FLAGS.train_images, 784), dtype=np.uint8))
    key, shuffle_key = jax.random.key(1), jax.random.key(2)
    rows = []
    for block in blocks:
        for wait in (False, True):
            state, times = initial_state(config), []
            for epoch in range(FLAGS.epochs + 1):
                begin = time.perf_counter()
                state, metrics = compute.train_epoch(state, images, key, shuffle_key, epoch,
                                                     compute.EpochOptions(batch, block, stop_on_nonfinite=wait))
                jax.block_until_ready(metrics)
                times.append(time.perf_counter() - begin)
            best = min(times[1:])
            rows.append({"config": cli.config_name(), "steps_per_call": block, "stop_on_nonfinite": wait,
                         "seconds_per_epoch": best, "images_per_second": FLAGS.train_images // batch * batch / best})
            print(json.dumps(rows[-1]))
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "jax": jax.__version__,
            "backend": jax.default_backend(), "rows": rows}
    files.write_json(out / "nonfinite.json", meta)
    lines = [f"{meta['date']}, {meta['cpu']}, jax {meta['jax']} ({meta['backend']}); best of {FLAGS.epochs} epochs",
             "", "| config | steps_per_call | waits for the NaN check | s/epoch | img/s |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['config']} | {r['steps_per_call'] or 'whole epoch'} | {'yes' if r['stop_on_nonfinite'] else 'no'} "
              f"| {r['seconds_per_epoch']:.3f} | {r['images_per_second']:.0f} |" for r in rows]
    files.write_text(out / "nonfinite.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    cli.run(main)
