import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_benchmark_writes_its_report_and_counts_flops_right(tmp_path):
    """Runs the benchmark on tiny sizes: checks what it writes, never how fast it was. The peers'
    Python is a stand-in that answers as the peer scripts do (the real ones need torch and keras,
    outside fvae's environment), to check how their figures are asked for and reported."""
    fake_python = tmp_path / "peer_python"
    fake_python.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "script, args = sys.argv[1], dict(zip(sys.argv[2::2], sys.argv[3::2]))\n"
        "torch = script.endswith('torch_vae.py')\n"
        "print(json.dumps({'peer': 'pytorch_eager' if torch else 'keras_jax', 'model': args['--model'],\n"
        "                  'images': int(args['--train_images']), 'images_per_second': 400 if torch else 300,\n"
        "                  'torch' if torch else 'keras': 'x'}))\n")
    fake_python.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--configs=mlp500,conv_2d", "--train_images=1024", "--epochs=1",
         "--matmul_size=256", "--iwae_samples=20", "--iwae_images=100", "--iwae_configs=mlp500",
         f"--out={tmp_path}",
         f"--peers={fake_python}"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "benchmark.json").read_text())
    row, conv_row = report["results"]
    assert conv_row["config"] == "conv_2d" and conv_row["model_shape_matmul_gflops"] is None
    # Independent count for 784-500-(2x20) / 20-500-784 at batch 128: forward matmuls 2*sum(in*out);
    # backward twice that, minus the unneeded input gradient of the first layer.
    forward = 2 * (784 * 500 + 500 * 40 + 20 * 500 + 500 * 784)
    expected = 3 * forward - 2 * 784 * 500
    assert row["flops_per_image"] == pytest.approx(expected, rel=0.1)
    for key in ("fast_images_per_second", "step_images_per_second", "eval_images_per_second", "compile_seconds"):
        assert row[key] > 0
    assert 0 < row["fraction_of_peak"] < 2
    table = (tmp_path / "benchmark.md").read_text()
    assert "| mlp500 | 128 |" in table and "| conv_2d | 128 |" in table and "| n/a |" in table
    # IWAE rows: K=20 samples in one chunk per call of 100 images: the decoder runs K times per
    # image, the encoder once per chunk.
    iwae = {r["config"]: r for r in report["iwae"]}
    assert list(iwae) == ["mlp500"]  # --iwae_configs, not --configs.
    decoder, encoder = 2 * (20 * 500 + 500 * 784), 2 * (784 * 500 + 500 * 40)
    assert iwae["mlp500"]["flops_per_image"] == pytest.approx(20 * decoder + encoder, rel=0.1)
    assert iwae["mlp500"]["images"] == 100 and iwae["mlp500"]["images_per_second"] > 0
    assert "| mlp500 | 20 | 100 |" in table
    # Peers: both for mlp500, PyTorch only for conv_2d, each asked for the same model and images.
    peers = [(p["config"], p["peer"], p["model"], p["images"]) for p in report["peers"]]
    assert peers == [("mlp500", "pytorch_eager", "mlp500", 1024), ("mlp500", "keras_jax", "mlp500", 1024),
                     ("conv_2d", "pytorch_eager", "conv_2d", 1024)]
    assert report["peers"][0]["fvae_images_per_second"] == row["fast_images_per_second"]
    fast = row["fast_images_per_second"]
    assert f"| mlp500 | {fast:,.0f} | 400 | 300 | {fast / 400:.2f} |" in table
    assert f"| conv_2d | {conv_row['fast_images_per_second']:,.0f} | 400 |  | " in table


@pytest.mark.slow
def test_nonfinite_benchmark_compares_waiting_and_not_waiting(tmp_path):
    """Tiny sizes: checks the rows it writes (every block size with and without the wait), not speed."""
    result = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark_nonfinite", "--train_images=1024", "--epochs=1",
         "--steps_per_call=2,0", f"--out={tmp_path}"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "nonfinite.json").read_text())
    assert [(r["steps_per_call"], r["stop_on_nonfinite"]) for r in report["rows"]] == [
        (2, False), (2, True), (0, False), (0, True)]
    assert all(r["seconds_per_epoch"] > 0 for r in report["rows"]) and report["cpu"]
    assert "| mlp500 | whole epoch | yes |" in (tmp_path / "nonfinite.md").read_text()
