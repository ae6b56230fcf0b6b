import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.configs import mlp500
from fvae import compute
from fvae.models import VAE, Decoder, Encoder
from tests.conftest import REPO
from tests.helpers import assert_same_training, fake_images, new_state
from tests.test_runner import final_state


def subprocess_env(devices: int) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")


@pytest.mark.slow
def test_eight_devices_match_one_device():
    result = subprocess.run([sys.executable, "-m", "tests.parallel_worker"], cwd=REPO, env=subprocess_env(8),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == report["mesh_size"] == 8
    assert report["uneven_batch_rejected"]  # 25 images do not split over 8 devices.
    for path in ("fast", "stepwise", "conditional", "conditional_stepwise"):
        r = report[path]
        assert not r["params_differ"], r
        assert r["loss"] == pytest.approx(r["one_device_loss"], rel=1e-5)
        assert r["val_loss"] == pytest.approx(r["one_device_val_loss"], rel=1e-5)


def test_the_training_comparison_tells_another_batch_order_from_rounding():
    images = jax.numpy.asarray(fake_images(1024))

    def trained(shuffle_seed: int):
        state = new_state()
        state, _ = compute.train_epoch(state, images, jax.random.key(1), jax.random.key(shuffle_seed), 0,
                                       compute.EpochOptions(64))
        return state.params

    same = trained(2)
    assert_same_training(same, trained(2), learning_rate=1e-3, steps=16)
    with pytest.raises(AssertionError, match="differ by more than"):
        assert_same_training(same, trained(3), learning_rate=1e-3, steps=16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_a_single_process(tmp_path):
    common = ["--config", "experiments/configs/mlp500.py", "--progress=false", "--config.data.train_subset=1024",
              "--config.data.val_size=500", "--config.train.max_epochs=2", "--config.train.eval_batch_size=500"]
    port = free_port()
    workers = [
        subprocess.Popen([sys.executable, "-m", "tests.mock_cli", "experiments.train", *common,
                          "--workdir", str(tmp_path / "multi"),
                          "--config.parallel.distributed=True",
                          f"--config.parallel.coordinator_address=127.0.0.1:{port}",
                          "--config.parallel.num_processes=2", f"--config.parallel.process_id={i}"],
                         cwd=REPO, env=subprocess_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=400) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]
    assert "Best epoch" in outputs[0][0] and "Best epoch" not in outputs[1][0]  # Process 0 reports.
    single = subprocess.run([sys.executable, "-m", "tests.mock_cli", "experiments.train", *common,
                             "--workdir", str(tmp_path / "single")], cwd=REPO, env=subprocess_env(1),
                            capture_output=True, text=True, timeout=400)
    assert single.returncode == 0, single.stderr[-3000:]

    multi_metrics = json.loads((tmp_path / "multi" / "test_metrics.json").read_text())
    single_metrics = json.loads((tmp_path / "single" / "test_metrics.json").read_text())
    for key in ("test_loss", "test_reconstruction", "test_kl", "val_loss"):
        assert multi_metrics[key] == pytest.approx(single_metrics[key], rel=1e-5)
    assert len((tmp_path / "multi" / "metrics.jsonl").read_text().splitlines()) == 2  # Written once.

    config = mlp500.get_config()
    multi_state, _ = final_state(config, tmp_path / "multi")
    single_state, _ = final_state(config, tmp_path / "single")
    steps = 2 * 1024 // config.train.batch_size
    assert_same_training(multi_state.params, single_state.params, config.train.learning_rate, steps)


@pytest.mark.slow
def test_bfloat16_compute_stays_finite_and_close_to_float32():
    images = jax.numpy.asarray(fake_images(2048))

    def final_loss(dtype):
        model = VAE(Encoder((128,), 8, dtype=dtype), Decoder((128,), (784,), dtype=dtype))
        state = compute.create_train_state(model, jax.random.key(0), fake_images(1), 1e-3)
        losses = []
        for epoch in range(10):  # 10 x 32 = 320 steps
            state, metrics = compute.train_epoch(state, images, jax.random.key(1), jax.random.key(2), epoch,
                                                 compute.EpochOptions(64))
            losses.append(float(metrics["loss"]))
        assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(state.params))
        assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(state.opt_state) if leaf.ndim)
        return losses

    f32, bf16 = final_loss(jax.numpy.float32), final_loss(jax.numpy.bfloat16)
    assert np.isfinite(bf16).all()
    assert bf16[-1] == pytest.approx(f32[-1], rel=0.02)
    assert bf16[-1] < 0.9 * bf16[0]


@pytest.mark.slow
def test_importing_fvae_leaves_the_backend_uninitialized():
    # jax.distributed.initialize must come before any computation: imports may not compute.
    code = ("import fvae, fvae.run.trainer, fvae.run.config, fvae.analysis.probes, experiments.train\n"
            "import jax._src.xla_bridge as xla_bridge\n"
            "assert not xla_bridge._backends, 'an import initialized the XLA backend'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(1), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
