import json

import pytest

from fvae import errors
from fvae.run import rundir


def test_new_run_writes_its_config_and_refuses_to_overwrite(tmp_path):
    workdir = tmp_path / "run"
    rundir.start(workdir, {"a": {"b": (1, 2)}}, resume=False)
    assert json.loads((workdir / "config.json").read_text()) == {"a": {"b": [1, 2]}}
    rundir.append_metrics(workdir, {"epoch": 1, "val_loss": 3.0})  # An epoch was trained.
    with pytest.raises(errors.RunDirError, match="refusing to overwrite"):
        rundir.start(workdir, {"a": {"b": (3,)}}, resume=False)
    assert json.loads((workdir / "config.json").read_text()) == {"a": {"b": [1, 2]}}


def test_a_start_that_never_saved_an_epoch_may_be_started_afresh(tmp_path):
    workdir = tmp_path / "run"
    rundir.start(workdir, {"a": 1}, resume=False)  # Then failed before saving anything.
    (workdir / "checkpoints" / "latest").mkdir(parents=True)  # Orbax's empty folders do not count.
    rundir.start(workdir, {"a": 2}, resume=False)
    assert json.loads((workdir / "config.json").read_text()) == {"a": 2}
    (workdir / "checkpoints" / "latest" / "1").mkdir()  # A saved epoch does.
    with pytest.raises(errors.RunDirError, match="refusing to overwrite"):
        rundir.start(workdir, {"a": 3}, resume=False)
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(errors.RunDirError, match="refusing to overwrite"):
        rundir.start(other, {"a": 1}, resume=False)


def test_resume_requires_a_run_and_the_same_config(tmp_path):
    with pytest.raises(errors.RunDirError, match="holds no run"):
        rundir.start(tmp_path / "missing", {}, resume=True)
    config = {"seed": 0, "train": {"max_epochs": 5, "batch_size": 8}}
    rundir.start(tmp_path / "run", config, resume=False)
    longer = {"seed": 0, "train": {"max_epochs": 9, "batch_size": 8}}
    rundir.start(tmp_path / "run", longer, resume=True)  # Training longer is allowed.
    assert rundir.load_config(tmp_path / "run").train.max_epochs == 9
    with pytest.raises(errors.RunDirError, match="train.batch_size: run has 8, given 16"):
        rundir.start(tmp_path / "run", {"seed": 0, "train": {"max_epochs": 9, "batch_size": 16}}, resume=True)


def test_a_run_with_a_decaying_learning_rate_resumes_only_with_its_own_max_epochs(tmp_path):
    config = {"seed": 0, "train": {"max_epochs": 5, "lr_schedule": "cosine", "patience": 3}}
    rundir.start(tmp_path / "run", config, resume=False)
    rundir.start(tmp_path / "run", {"seed": 0, "train": {"max_epochs": 5, "lr_schedule": "cosine", "patience": 9}},
               resume=True)  # More patience: the schedule is unchanged.
    with pytest.raises(errors.RunDirError, match="train.max_epochs 9 instead of 5.*'cosine' schedule"):
        rundir.start(tmp_path / "run", {"seed": 0, "train": {"max_epochs": 9, "lr_schedule": "cosine"}}, resume=True)
    assert rundir.load_config(tmp_path / "run").train.patience == 9


def test_metrics_lines_round_trip_and_history_rewrite(tmp_path):
    rundir.append_metrics(tmp_path, {"epoch": 1, "val_loss": 3.0})
    rundir.append_metrics(tmp_path, {"epoch": 2, "val_loss": 2.0})
    assert [r["epoch"] for r in rundir.load_history(tmp_path)] == [1, 2]
    rundir.write_history(tmp_path, [{"epoch": 1, "val_loss": 3.0}])
    assert rundir.load_history(tmp_path) == [{"epoch": 1, "val_loss": 3.0}]
    assert not list(tmp_path.glob("*.tmp"))
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "val_lo')  # An append cut short by a kill.
    assert rundir.load_history(tmp_path) == [{"epoch": 1, "val_loss": 3.0}]


def test_flatten():
    assert rundir.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_a_run_saved_before_new_config_keys_existed_still_resumes(tmp_path):
    from fvae.run.config import defaults

    old = defaults().to_dict()
    del old["likelihood"], old["model"]["architecture"]  # As written before those keys existed.
    workdir = tmp_path / "old"
    workdir.mkdir()
    (workdir / rundir.CONFIG_FILE).write_text(json.dumps(old))
    rundir.start(workdir, defaults().to_dict(), resume=True)  # Same config once defaults are filled in.
    changed = defaults()
    changed.likelihood.name = "gaussian"
    with pytest.raises(errors.RunDirError, match="likelihood.name"):
        rundir.start(workdir, changed.to_dict(), resume=True)
