import json
import os
import subprocess
import sys

import pytest

from experiments.configs import mlp500
from fvae import runs
from fvae.checkpoint import Checkpoints
from fvae.runner import initial_state, train_and_evaluate
from tests.conftest import REPO
from tests.helpers import params_equal


def small_config(data_dir, max_epochs):
    config = mlp500.get_config()
    config.data.data_dir = str(data_dir)
    config.data.train_subset, config.data.val_size = 1000, 500
    config.model.encoder_hidden = config.model.decoder_hidden = (64,)
    config.model.latents = 8
    config.train.batch_size, config.train.max_epochs, config.train.patience = 100, max_epochs, 50
    config.output.num_samples, config.output.num_reconstructions = 16, 8
    return config


def final_state(config, workdir):
    template = initial_state(config)
    checkpoints = Checkpoints(workdir)
    state, meta = checkpoints.restore_latest(template)
    checkpoints.close()
    return state, meta


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in history]


def test_resume_ends_with_the_same_result_as_an_uninterrupted_run(prepared_data_dir, tmp_path):
    quiet = dict(log=lambda _: None, progress=False)
    full = train_and_evaluate(small_config(prepared_data_dir, 4), tmp_path / "full", **quiet)
    train_and_evaluate(small_config(prepared_data_dir, 2), tmp_path / "split", **quiet)
    resumed = train_and_evaluate(small_config(prepared_data_dir, 4), tmp_path / "split", resume=True, **quiet)

    full_state, full_meta = final_state(small_config(prepared_data_dir, 4), tmp_path / "full")
    split_state, split_meta = final_state(small_config(prepared_data_dir, 4), tmp_path / "split")
    assert int(split_state.step) == int(full_state.step) == 40
    assert params_equal(split_state.params, full_state.params)
    assert params_equal(split_state.opt_state, full_state.opt_state)
    assert split_meta["early_stopping"] == full_meta["early_stopping"]
    assert without_timing(runs.load_history(tmp_path / "split")) == without_timing(runs.load_history(tmp_path / "full"))
    for key in ("test_loss", "test_reconstruction", "test_kl", "best_epoch"):
        assert resumed[key] == full[key]


def test_early_stopping_restores_the_best_epoch(prepared_data_dir, tmp_path):
    config = small_config(prepared_data_dir, 30)
    config.train.learning_rate, config.train.patience = 0.02, 2  # Overfits fast, then stops.
    summary = train_and_evaluate(config, tmp_path / "run", log=lambda _: None, progress=False)
    history = runs.load_history(tmp_path / "run")
    best = min(history, key=lambda r: r["val_loss"])
    assert summary["best_epoch"] == best["epoch"] and len(history) == best["epoch"] + 2 < 30
    assert summary["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_produces_a_full_run_directory(prepared_data_dir, tmp_path):
    workdir = tmp_path / "run"
    args = ["--config", "experiments/configs/mlp500.py", "--workdir", str(workdir), "--progress=false",
            f"--config.data.data_dir={prepared_data_dir}", "--config.data.train_subset=2000",
            "--config.data.val_size=1000", "--config.train.max_epochs=2"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch   2" in result.stdout and "Best epoch" in result.stdout

    config = json.loads((workdir / "config.json").read_text())
    assert config["model"]["latents"] == 20 and config["data"]["train_subset"] == 2000
    history = runs.load_history(workdir)
    assert [r["epoch"] for r in history] == [1, 2]
    for key in ("train_loss", "val_loss", "val_reconstruction", "val_kl", "train_kl", "seconds", "images_per_second"):
        assert key in history[0]
    test_metrics = json.loads((workdir / "test_metrics.json").read_text())
    assert test_metrics["test_loss"] == pytest.approx(test_metrics["test_reconstruction"] + test_metrics["test_kl"])
    for picture in ("reconstructions.png", "samples.png"):
        assert (workdir / picture).stat().st_size > 10_000
    assert (workdir / "checkpoints" / "latest" / "2").is_dir()
    assert (workdir / "checkpoints" / "best").is_dir()

    again = run_cli(*args)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert runs.load_history(workdir) == history

    resumed = run_cli("--workdir", str(workdir), "--resume", "--progress=false")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout
    assert json.loads((workdir / "test_metrics.json").read_text()) == test_metrics
