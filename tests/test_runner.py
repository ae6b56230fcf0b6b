import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import conv, iwae, mlp500
from fvae import data, errors
from fvae.errors import DataError
from fvae.run import rundir, trainer
from fvae.run.assemble import initial_state, load_splits
from fvae.run.checkpoints import Checkpoints
from fvae.run.trainer import train_and_evaluate
from tests.conftest import REPO
from tests.helpers import params_equal


def small_config(data_dir, max_epochs, base=mlp500):
    """`base`'s config shrunk to seconds: 1,000 training and 500 validation images, 64 units, 8 latents."""
    config = base.get_config()
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


def test_resume_ends_with_the_same_result_as_an_uninterrupted_run(mock_data_dir, tmp_path):
    quiet = dict(log=lambda _: None, progress=False)
    full = train_and_evaluate(small_config(mock_data_dir, 4), tmp_path / "full", **quiet)
    train_and_evaluate(small_config(mock_data_dir, 2), tmp_path / "split", **quiet)
    resumed = train_and_evaluate(small_config(mock_data_dir, 4), tmp_path / "split", resume=True, **quiet)

    full_state, full_meta = final_state(small_config(mock_data_dir, 4), tmp_path / "full")
    split_state, split_meta = final_state(small_config(mock_data_dir, 4), tmp_path / "split")
    assert int(split_state.step) == int(full_state.step) == 40
    assert params_equal(split_state.params, full_state.params)
    assert params_equal(split_state.opt_state, full_state.opt_state)
    assert split_meta["early_stopping"] == full_meta["early_stopping"]
    split_history, full_history = (rundir.load_history(tmp_path / name) for name in ("split", "full"))
    assert without_timing(split_history) == without_timing(full_history)
    for key in ("test_loss", "test_reconstruction", "test_kl", "best_epoch"):
        assert resumed[key] == full[key]


def test_early_stopping_restores_the_best_epoch(mock_data_dir, tmp_path):
    config = small_config(mock_data_dir, 30)
    config.train.learning_rate, config.train.patience = 0.1, 2  # Overfits within a few epochs, then stops.
    summary = train_and_evaluate(config, tmp_path / "run", log=lambda _: None, progress=False)
    history = rundir.load_history(tmp_path / "run")
    best = min(history, key=lambda r: r["val_loss"])
    assert summary["best_epoch"] == best["epoch"] and len(history) == best["epoch"] + 2 < 30
    assert summary["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def run_cli(*args, mock: bool = True):
    """experiments.train in a subprocess, on the mock data (tests.mock_cli) or the real data."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    wrapper = ["-m", "tests.mock_cli", "experiments.train"] if mock else ["-m", "experiments.train"]
    return subprocess.run([sys.executable, *wrapper, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_cli_produces_a_full_run_directory(mock_data_dir, tmp_path):
    workdir = tmp_path / "run"
    args = ["--config", "experiments/configs/mlp500.py", "--workdir", str(workdir), "--progress=false",
            f"--config.data.data_dir={mock_data_dir}", "--config.data.train_subset=1000",
            "--config.data.val_size=500", "--config.train.max_epochs=2"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch   2" in result.stdout and "Best epoch" in result.stdout

    config = json.loads((workdir / "config.json").read_text())
    assert config["model"]["latents"] == 20 and config["data"]["train_subset"] == 1000
    history = rundir.load_history(workdir)
    assert [r["epoch"] for r in history] == [1, 2]
    for key in ("train_loss", "val_loss", "val_reconstruction", "val_kl", "train_kl", "seconds", "images_per_second"):
        assert key in history[0]
    test_metrics = json.loads((workdir / "test_metrics.json").read_text())
    assert test_metrics["test_loss"] == pytest.approx(test_metrics["test_reconstruction"] + test_metrics["test_kl"])
    assert test_metrics["train_seconds_to_best_epoch"] == pytest.approx(
        sum(r["seconds"] for r in history if r["epoch"] <= test_metrics["best_epoch"]))
    assert "learning_rate" not in history[0]  # A constant rate is not logged.
    for picture in ("reconstructions.png", "samples.png"):
        assert (workdir / picture).stat().st_size > 10_000
    assert (workdir / "checkpoints" / "latest" / "2").is_dir()
    assert (workdir / "checkpoints" / "best").is_dir()

    again = run_cli(*args)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert rundir.load_history(workdir) == history

    resumed = run_cli("--workdir", str(workdir), "--resume", "--progress=false")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout
    assert json.loads((workdir / "test_metrics.json").read_text()) == test_metrics

    # The short form of "train longer": overrides without --config apply to the run's own config
    # (they were dropped, exit 0, nothing trained), whichever order they come in.
    longer = run_cli(f"--config.data.data_dir={mock_data_dir}", "--config.train.max_epochs=3", "--workdir",
                     str(workdir), "--resume", "--progress=false")
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert [r["epoch"] for r in rundir.load_history(workdir)] == [1, 2, 3]
    assert json.loads((workdir / "config.json").read_text())["train"]["max_epochs"] == 3


@pytest.mark.slow
def test_default_config_end_to_end_on_the_real_data(prepared_data_dir, tmp_path):
    """The one training run on the real Fashion-MNIST: the default config, all 55,000 training
    images, two epochs, through the command line."""
    workdir = tmp_path / "run"
    result = run_cli("--config", "experiments/configs/default.py", "--workdir", str(workdir), "--progress=false",
                     f"--config.data.data_dir={prepared_data_dir}", "--config.train.max_epochs=2", mock=False)
    assert result.returncode == 0, result.stderr[-3000:]
    history = rundir.load_history(workdir)
    assert [r["epoch"] for r in history] == [1, 2] and history[1]["val_loss"] < history[0]["val_loss"]
    summary = json.loads((workdir / "test_metrics.json").read_text())
    # Measured 2026-11-25: about 262 nats after 2 epochs (the default reaches 237.6 at its best
    # epoch); an untrained model scores about 543, a model that learned nothing about 430.
    assert 240 < summary["test_loss"] < 290, summary
    assert summary["test_loss"] == pytest.approx(summary["test_reconstruction"] + summary["test_kl"])


QUIET = dict(log=lambda _: None, progress=False)


@pytest.mark.slow
def test_iwae_run_reports_the_bound_it_was_selected_on(mock_data_dir, tmp_path):
    config = small_config(mock_data_dir, 3, base=iwae)
    assert config.objective.iwae_samples == 5
    summary = train_and_evaluate(config, tmp_path / "run", **QUIET)
    history = rundir.load_history(tmp_path / "run")
    best = min(history, key=lambda r: r["val_loss"])
    # Validation in the report is the K=5 bound that chose the best epoch, recomputed from its checkpoint.
    assert summary["best_epoch"] == best["epoch"]
    assert summary["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    # The K=5 bound is tighter than the ELBO terms of the same samples (10,000 test images).
    assert summary["test_loss"] < summary["test_reconstruction"] + summary["test_kl"]
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text()) == summary


def overfitting_config(data_dir, patience, max_epochs=30):
    config = small_config(data_dir, max_epochs)
    config.train.learning_rate, config.train.patience = 0.02, patience  # Overfits fast, then stops.
    return config


@pytest.mark.slow
def test_resume_with_a_larger_patience_continues_as_if_it_had_been_set_from_the_start(mock_data_dir, tmp_path):
    train_and_evaluate(overfitting_config(mock_data_dir, 2), tmp_path / "split", **QUIET)
    stopped = rundir.load_history(tmp_path / "split")
    resumed = train_and_evaluate(overfitting_config(mock_data_dir, 4), tmp_path / "split", resume=True, **QUIET)
    full = train_and_evaluate(overfitting_config(mock_data_dir, 4), tmp_path / "full", **QUIET)
    history = rundir.load_history(tmp_path / "split")
    assert len(history) > len(stopped) and history[:len(stopped)] == stopped
    assert without_timing(history) == without_timing(rundir.load_history(tmp_path / "full"))
    assert resumed["best_epoch"] == full["best_epoch"] and resumed["test_loss"] == full["test_loss"]


@pytest.mark.slow
def test_resume_with_more_epochs_continues_a_run_that_early_stopping_ended(mock_data_dir, tmp_path):
    first = train_and_evaluate(overfitting_config(mock_data_dir, 2), tmp_path / "run", **QUIET)
    stopped = rundir.load_history(tmp_path / "run")
    assert len(stopped) == first["best_epoch"] + 2 < 30
    messages = []
    more = overfitting_config(mock_data_dir, 2, max_epochs=len(stopped) + 2)
    resumed = train_and_evaluate(more, tmp_path / "run", resume=True, log=messages.append, progress=False)
    history = rundir.load_history(tmp_path / "run")
    assert [r["epoch"] for r in history] == list(range(1, len(stopped) + 3))
    assert history[:len(stopped)] == stopped
    assert any("fresh patience of 2 epochs" in m for m in messages)
    best = min(history, key=lambda r: r["val_loss"])
    assert resumed["best_epoch"] == best["epoch"] and best["val_loss"] <= min(r["val_loss"] for r in stopped)


@pytest.mark.slow
def test_time_budget_stops_training_and_a_larger_one_continues_it(mock_data_dir, tmp_path):
    config = small_config(mock_data_dir, 3)
    config.train.max_train_minutes = 1e-9  # Spent by the first epoch, whatever the machine.
    messages = []
    train_and_evaluate(config, tmp_path / "run", log=messages.append, progress=False)
    assert [r["epoch"] for r in rundir.load_history(tmp_path / "run")] == [1]
    assert any("training budget of 1e-09 minutes is spent" in m for m in messages)
    config.train.max_train_minutes = 600.0
    summary = train_and_evaluate(config, tmp_path / "run", resume=True, **QUIET)
    assert [r["epoch"] for r in rundir.load_history(tmp_path / "run")] == [1, 2, 3]
    assert summary["epochs_trained"] == 3


@pytest.mark.parametrize("path", ["whole epoch", "blocks of 3", "per step"])
def test_nan_stops_at_once_naming_epoch_and_step_and_writes_nothing_of_that_epoch(
        mock_data_dir, tmp_path, monkeypatch, path):
    name = "train_epoch_stepwise" if path == "per step" else "train_epoch"
    real, validations = getattr(trainer, name), []

    def poisoned(state, images, key, shuffle_key, epoch, *args, **kwargs):
        if epoch == 3:  # Inject a NaN into one weight at the start of epoch 3: step 21 fails.
            params = jax.tree.map(lambda x: x, state.params)
            params["decoder"]["logits"]["bias"] = params["decoder"]["logits"]["bias"].at[0].set(jnp.nan)
            state = state.replace(params=params)
        return real(state, images, key, shuffle_key, epoch, *args, **kwargs)

    real_evaluate = trainer.evaluate_bound

    def counted_evaluate(*args, **kwargs):
        validations.append(args)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer, name, poisoned)
    monkeypatch.setattr(trainer, "evaluate_bound", counted_evaluate)
    config = small_config(mock_data_dir, 6)
    config.train.on_device = path != "per step"
    config.train.steps_per_call = 3 if path == "blocks of 3" else 0
    with pytest.raises(errors.NonFiniteError, match=r"Epoch 3, step 21: the loss became NaN") as err:
        trainer.train_and_evaluate(config, tmp_path / "run", **QUIET)
    assert "last good epoch" in str(err.value)
    assert len(validations) == 2  # Epochs 1 and 2; none for the failed epoch.
    assert [r["epoch"] for r in rundir.load_history(tmp_path / "run")] == [1, 2]
    checkpoints = Checkpoints(tmp_path / "run")
    assert checkpoints.latest_epoch() == 2 and checkpoints.best.latest_step() <= 2
    checkpoints.close()
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_a_start_that_fails_before_training_leaves_no_run_behind(tmp_path):
    config = small_config(tmp_path, 1)
    config.data.data_dir = str(tmp_path / "no-data-here")
    config.data.manual_dir = str(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="Missing data file"):
        train_and_evaluate(config, tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_run_directory_that_never_saved_an_epoch_can_be_started_afresh(mock_data_dir, tmp_path):
    workdir = tmp_path / "run"
    bad = small_config(mock_data_dir, 2)
    bad.train.learning_rate = 1e30  # Fails in epoch 1: config.json and versions.json, no checkpoint.
    with pytest.raises(errors.NonFiniteError, match="Epoch 1"):
        train_and_evaluate(bad, workdir, **QUIET)
    assert (workdir / "config.json").is_file()
    summary = train_and_evaluate(small_config(mock_data_dir, 2), workdir, **QUIET)
    assert summary["epochs_trained"] == 2
    assert json.loads((workdir / "config.json").read_text())["train"]["learning_rate"] == 1e-3
    with pytest.raises(errors.RunDirError, match="refusing to overwrite"):  # Now it holds a trained run.
        train_and_evaluate(small_config(mock_data_dir, 2), workdir, **QUIET)


def damage(checkpoint_dir) -> None:
    """Overwrites bytes of every array file of a checkpoint, leaving its structure in place."""
    for path in (checkpoint_dir / "state").rglob("*"):
        if path.is_file() and path.parent.name == "d":
            content = bytearray(path.read_bytes())
            for i in range(min(16, len(content) - 1), len(content), 7):
                content[i] ^= 0xFF
            path.write_bytes(bytes(content))


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_previous_one_resumed(mock_data_dir, tmp_path):
    full = train_and_evaluate(small_config(mock_data_dir, 4), tmp_path / "full", **QUIET)
    workdir = tmp_path / "run"
    train_and_evaluate(small_config(mock_data_dir, 3), workdir, **QUIET)
    damage(workdir / "checkpoints" / "latest" / "3")
    messages = []
    resumed = train_and_evaluate(small_config(mock_data_dir, 4), workdir, resume=True, log=messages.append,
                                 progress=False)
    note = next(m for m in messages if "is damaged" in m)
    assert str(workdir / "checkpoints" / "latest" / "3") in note and "previous checkpoint (epoch 2)" in note
    aside = list((workdir / "checkpoints" / "damaged").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith("latest-3-") and (aside[0] / "state").is_dir()
    assert without_timing(rundir.load_history(workdir)) == without_timing(rundir.load_history(tmp_path / "full"))
    assert resumed["test_loss"] == full["test_loss"]


@pytest.mark.slow
def test_conv_config_trains_through_the_runner(mock_data_dir, tmp_path):
    config = small_config(mock_data_dir, 1, base=conv)
    config.data.train_subset, config.data.val_size, config.train.batch_size = 256, 300, 64
    assert config.model.architecture == "conv"
    summary = train_and_evaluate(config, tmp_path / "run", **QUIET)
    assert summary["epochs_trained"] == 1 and jnp.isfinite(summary["test_loss"])
    state, _ = final_state(config, tmp_path / "run")
    assert int(state.step) == 4 and "conv_0" in state.params["encoder"]


def test_binarized_runs_validate_and_test_on_one_fixed_binarization(mock_data_dir):
    from experiments.configs import binarized_mlp

    config = small_config(mock_data_dir, 1, base=binarized_mlp)
    raw = data.load(mock_data_dir, val_size=500, seed=config.seed, train_subset=1000)
    splits, again = load_splits(config), load_splits(config)
    for name in ("val", "test"):
        bits, grey = getattr(splits, name).images, getattr(raw, name).images
        assert set(np.unique(bits)) == {0, 255}
        np.testing.assert_array_equal(bits, getattr(again, name).images)  # Fixed: the same bits every time.
        # Independent check of the rule: pixel ~ Bernoulli(intensity / 255), so the mean is kept
        # (standard error over >= 392,000 pixels is below 0.25 grey levels)...
        assert abs(bits.mean() - grey.mean()) < 1.0
        # ... and black pixels stay black, white ones white.
        assert (bits[grey == 0] == 0).all() and (bits[grey == 255] == 255).all()
    np.testing.assert_array_equal(splits.train.images, raw.train.images)  # Binarized afresh every step.
    assert not np.array_equal(splits.val.images, splits.test.images[:500])
    config.likelihood.eval_binarization_seed = 1
    assert not np.array_equal(load_splits(config).test.images, splits.test.images)


def test_a_stop_signal_during_the_final_report_is_answered_after_it(mock_data_dir, tmp_path, monkeypatch):
    """SIGTERM while the report is written: the report is completed (nothing half-written), then
    the run stops with Interrupted (exit 130 from the command line) instead of finishing silently."""
    import signal

    original = trainer.reconstruct

    def reconstruct_after_a_sigterm(*args, **kwargs):  # Only the final report reconstructs.
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "reconstruct", reconstruct_after_a_sigterm)
    with pytest.raises(errors.Interrupted, match="SIGTERM received during the final report"):
        train_and_evaluate(small_config(mock_data_dir, 1), tmp_path / "run", log=lambda _: None, progress=False)
    assert (tmp_path / "run" / "samples.png").is_file()
    assert json.loads((tmp_path / "run" / rundir.TEST_METRICS_FILE).read_text())["best_epoch"] == 1
    assert rundir.run_state(tmp_path / "run") == "finished"

