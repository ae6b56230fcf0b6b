"""Training and evaluation throughput, with the machine's matmul peak measured in the same run.

    python -m experiments.benchmark [--configs mlp500,default] [--out benchmarks/]

For each config it measures: compile time of the epoch function; steady-state training
images/s and seconds per epoch for the on-device fast path (one compiled call per epoch)
and for a careful per-step loop (jitted step, batches gathered ahead on the host);
evaluation images/s; the model's training FLOPs per image (XLA's cost analysis of one
train step); achieved FLOP/s as a fraction of the best float32 matmul measured here; and,
to say what bounds it, the FLOP/s of the step's matmuls timed alone at the model's shapes.
Synthetic uint8 images of the real shape are used, so no dataset is needed.
With --peers PYTHON (the Python of an environment made from benchmarks/peers/requirements.txt),
it also trains the same models written in PyTorch (eager) and Keras 3 on JAX
(benchmarks/peers/), one after another in the same run, on the same synthetic data and
epochs, and reports fvae's fast-path images/s over the best peer's.
It writes benchmark.json and benchmark.md into --out.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from experiments.configs import load as load_config  # noqa: E402
from experiments.results_doc import benchmark_markdown  # noqa: E402
from fvae import compute, files  # noqa: E402
from fvae.compute.bounds import IWAE_IMAGES_PER_CALL, evaluate_bound, iwae_chunk, iwae_log_likelihoods  # noqa: E402
from fvae.errors import ConfigError  # noqa: E402
from fvae.models import architecture, build_model  # noqa: E402
from fvae.run.assemble import learning_rate  # noqa: E402
from fvae.run.versions import cpu_model  # noqa: E402

cli.define_config("default", "Only its --config.KEY=VALUE overrides are read here: they apply to every "
                  "config of --configs.")
flags.DEFINE_list("configs", ["mlp500", "default"], "Configs: names in experiments/configs or paths.")
flags.DEFINE_string("out", "benchmarks", "Folder for benchmark.json and benchmark.md.")
flags.DEFINE_integer("train_images", 55_000, "Training images per epoch (synthetic).", lower_bound=1)
flags.DEFINE_integer("epochs", 3, "Timed epochs per path (after one warm-up epoch).", lower_bound=1)
flags.DEFINE_integer("batch_size", 0, "Override every config's batch size (0: keep the config's).",
                     lower_bound=0)
flags.DEFINE_integer("matmul_size", 2048, "Side of the square float32 matmul for the peak.", lower_bound=1)
flags.DEFINE_integer("iwae_samples", 0, "> 0: also time IWAE evaluation with this many samples per image "
                     "(as experiments.evaluate computes it), e.g. 5000.", lower_bound=0)
flags.DEFINE_list("iwae_configs", [], "Configs whose IWAE to time (default: those of --configs), e.g. the "
                  "flat and hierarchical likelihood models beside the conv models' training.")
flags.DEFINE_integer("iwae_images", 500, "Binary test images (synthetic) for the IWAE timing.", lower_bound=1)
flags.DEFINE_string("peers", "", "The Python of the peers' environment (benchmarks/peers/requirements.txt): "
                    "also train the PyTorch and Keras twins of the configs that have them.")
FLAGS = flags.FLAGS

# The peer scripts (benchmarks/peers/) and the configs each has a twin of. Keras's conv layers
# run as XLA convolutions (minutes per epoch on a CPU): run keras_vae.py by hand for those.
PEERS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "peers"
PEERS = {"pytorch_eager": ("torch_vae.py", ("mlp500", "conv_chollet", "conv_2d")),
         "keras_jax": ("keras_vae.py", ("mlp500",))}


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(size: int, repeats: int = 10) -> float:
    """Best achieved FLOP/s of a size^3 float32 matmul on the default device."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    jax.block_until_ready(matmul(a, b))
    return 2 * size**3 / _best_time(lambda: matmul(a, b), repeats)


def layer_matmul_ceiling(fan_in: int, fan_out: int, batch_size: int, repeats: int = 5) -> float:
    """FLOP/s of the training matmuls of one Dense layer at its own shape, timed alone.

    For the layer (fan_in -> fan_out) at batch B: forward (B,in)x(in,out), weight
    gradient (in,B)x(B,out) and input gradient (B,out)x(out,in), 20 of each in one compiled
    call. Small matrices run below the large-square peak; this is the ceiling a training
    step made only of these products could reach.
    """
    total_flops, total_seconds = 0.0, 0.0
    for m, k, n in ((batch_size, fan_in, fan_out), (fan_in, batch_size, fan_out), (batch_size, fan_out, fan_in)):
        a = jax.random.normal(jax.random.key(0), (20, m, k))
        b = jax.random.normal(jax.random.key(1), (k, n))
        products = jax.jit(lambda a, b: jax.lax.map(lambda x: x @ b, a))
        jax.block_until_ready(products(a, b))
        total_seconds += _best_time(lambda: products(a, b), repeats)
        total_flops += 20 * 2 * m * k * n
    return total_flops / total_seconds


def benchmark_config(name: str, num_images: int, epochs: int) -> dict:
    config = load_config(name, cli.config_overrides())
    batch_size = FLAGS.batch_size or config.train.batch_size
    rng = np.random.default_rng(0)
    host_images = rng.integers(0, 256, (num_images, 784), dtype=np.uint8)
    images = jax.device_put(host_images)
    model = build_model(config)
    key, shuffle_key = jax.random.key(1), jax.random.key(2)

    def fresh_state():
        return compute.create_train_state(model, jax.random.key(0), host_images[:1], learning_rate(config))

    steps = num_images // batch_size
    indices = compute.epoch_batches(shuffle_key, 0, num_images, batch_size)
    t = config.train
    block = t.steps_per_call or steps

    start = time.perf_counter()
    compute.train_block.lower(fresh_state(), images, indices[:block], key).compile()
    compile_seconds = time.perf_counter() - start
    step_cost = compute.train_step.lower(fresh_state(), host_images[:batch_size], key).compile().cost_analysis()
    step_cost = step_cost[0] if isinstance(step_cost, list) else step_cost
    assert step_cost is not None, "XLA gave no cost analysis"
    flops_per_image = float(step_cost["flops"]) / batch_size

    # Fast path: one compiled call per epoch, dataset and shuffle on device.
    state = fresh_state()
    fast_times = []
    for epoch in range(epochs + 1):
        begin = time.perf_counter()
        state, metrics = compute.train_epoch(state, images, key, shuffle_key, epoch,
                                             compute.EpochOptions(batch_size, t.steps_per_call))
        jax.block_until_ready(metrics)
        fast_times.append(time.perf_counter() - begin)
    fast_epoch = min(fast_times[1:])

    # Per-step loop as a careful user writes it: jitted step, all batches gathered ahead.
    state = fresh_state()
    step_times = []
    for epoch in range(epochs + 1):
        order = np.asarray(compute.epoch_batches(shuffle_key, epoch, num_images, batch_size))
        batches = [host_images[row] for row in order]
        begin = time.perf_counter()
        for batch in batches:
            state, metrics = compute.train_step(state, batch, key)
        jax.block_until_ready(state.params)
        step_times.append(time.perf_counter() - begin)
    step_epoch = min(step_times[1:])

    eval_images = jax.device_put(host_images[:10_000])
    jax.block_until_ready(evaluate_bound(state, eval_images, key, t.eval_batch_size))
    eval_seconds = _best_time(lambda: evaluate_bound(state, eval_images, key, t.eval_batch_size), 3)

    ceiling_gflops = None
    dense = architecture(config).dense_layers(config.model)  # None: convs have no matmul-only ceiling.
    if dense:
        ceiling_flops = sum(2 * batch_size * a * b for a, b in dense)
        ceiling_seconds = sum(2 * batch_size * a * b / layer_matmul_ceiling(a, b, batch_size) for a, b in dense)
        ceiling_gflops = ceiling_flops / ceiling_seconds / 1e9

    trained = steps * batch_size
    return {
        "model_shape_matmul_gflops": ceiling_gflops,
        "config": name + "".join(f" {k}={v}" for k, v in cli.config_overrides().items()), "batch_size": batch_size,
        "compile_seconds": compile_seconds,
        "flops_per_image": flops_per_image,
        "fast_seconds_per_epoch": fast_epoch, "fast_images_per_second": trained / fast_epoch,
        "step_seconds_per_epoch": step_epoch, "step_images_per_second": trained / step_epoch,
        "eval_images_per_second": 10_000 / eval_seconds,
    }


def benchmark_iwae(name: str, num_samples: int, num_images: int) -> dict:
    """Images/s of the IWAE estimate with `num_samples` samples per image, exactly as
    experiments.evaluate runs it (fvae.compute.bounds.iwae_log_likelihoods with its default batch
    and chunk sizes), after one compiling call; FLOPs per image from XLA's cost analysis of
    one chunk of samples for one call's batch of images."""
    config = load_config(name, cli.config_overrides())
    images = (np.random.default_rng(0).random((num_images, 784)) < 0.3).astype(np.uint8) * 255
    images = jax.device_put(images)
    state = compute.create_train_state(build_model(config), jax.random.key(0), images[:1], 1e-3)
    key, chunk = jax.random.key(1), iwae_chunk(num_samples)
    jax.block_until_ready(iwae_log_likelihoods(state, images[:IWAE_IMAGES_PER_CALL], key, num_samples))
    seconds = _best_time(lambda: iwae_log_likelihoods(state, images, key, num_samples), 1)
    batch = images[:IWAE_IMAGES_PER_CALL].astype(np.float32) / 255

    def chunk_log_weights(state, x, key):
        return state.apply_fn({"params": state.params}, x, key, None, chunk).log_weights

    cost = jax.jit(chunk_log_weights).lower(state, batch, key).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert cost is not None, "XLA gave no cost analysis"
    return {"config": name + "".join(f" {k}={v}" for k, v in cli.config_overrides().items()),
            "iwae_samples": num_samples,
            "images": num_images, "seconds": seconds, "images_per_second": num_images / seconds,
            "flops_per_image": float(cost["flops"]) * (num_samples // chunk) / IWAE_IMAGES_PER_CALL}


def benchmark_peer(python: str, peer: str, name: str, num_images: int, epochs: int, batch_size: int) -> dict:
    """One peer's training images/s for config `name` (its script run to completion in a subprocess)."""
    script = PEERS_DIR / PEERS[peer][0]
    command = [python, str(script), "--model", name, "--epochs", str(epochs), "--train_images", str(num_images),
               "--batch_size", str(batch_size), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"error: the peer {script.name} --model {name} failed: {done.stderr.strip()[-500:]} "
                         "... check --peers names a Python with benchmarks/peers/requirements.txt installed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.peers and not Path(FLAGS.peers).is_file():
        raise SystemExit(f"error: --peers {FLAGS.peers} is not a file ... give the Python of an environment made "
                         "from benchmarks/peers/requirements.txt, e.g. .venv-peers/bin/python")
    for name in dict.fromkeys([*FLAGS.configs, *FLAGS.iwae_configs]):
        config = load_config(name, cli.config_overrides())  # Before any work: a wrong name fails at once.
        batch = FLAGS.batch_size or config.train.batch_size
        if name in FLAGS.configs and FLAGS.train_images < batch:
            raise ConfigError(f"--train_images={FLAGS.train_images} is less than one batch of {name} ({batch}): "
                              "give at least that many")
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)  # Before any work: --out naming a file fails at once.
    peak = matmul_peak(FLAGS.matmul_size)
    report = {"backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
              "devices": jax.device_count(), "machine": platform.machine(),
              "date": time.strftime("%Y-%m-%d"), "jax": jax.__version__,
              "matmul_size": FLAGS.matmul_size, "matmul_peak_gflops": peak / 1e9, "cpu": cpu_model(),
              "results": [], "iwae": [], "peers": []}

    def record(table: str, result: dict) -> None:
        """Adds one result and rewrites both reports, so a run cut short keeps what it measured."""
        report[table].append(result)
        print(json.dumps(result))
        files.write_json(out / "benchmark.json", report)
        files.write_text(out / "benchmark.md", benchmark_markdown(report))

    for name in FLAGS.configs:
        result = benchmark_config(name, FLAGS.train_images, FLAGS.epochs)
        result["fraction_of_peak"] = result["flops_per_image"] * result["fast_images_per_second"] / peak
        record("results", result)
        for peer, (_, twins) in PEERS.items() if FLAGS.peers else ():
            if name in twins:
                measured = benchmark_peer(FLAGS.peers, peer, name, FLAGS.train_images, FLAGS.epochs,
                                          result["batch_size"])
                record("peers", {**measured, "config": result["config"],
                                 "fvae_images_per_second": result["fast_images_per_second"]})
    for name in (FLAGS.iwae_configs or FLAGS.configs) if FLAGS.iwae_samples else ():
        result = benchmark_iwae(name, FLAGS.iwae_samples, FLAGS.iwae_images)
        result["fraction_of_peak"] = result["flops_per_image"] * result["images_per_second"] / peak
        record("iwae", result)
    print(benchmark_markdown(report))


if __name__ == "__main__":
    cli.run(main)
