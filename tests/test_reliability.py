"""Kills, bad numbers and bad input: nothing is lost, every failure says what to do.

The figures (kill and bad-input tests passed and failed, SIGKILLs sent, runs lost) are
printed in the pytest summary by conftest.py, counted from the test outcomes.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest

from experiments.configs import mlp500
from fvae import errors
from fvae.data import sources
from fvae.errors import DataError
from fvae.files import write_digest
from fvae.run import assemble, rundir, trainer
from fvae.run.checkpoints import FORMAT_VERSION, CheckpointError, Checkpoints
from fvae.run.versions import cpu_model, version_changes
from tests.conftest import REPO, SHARED_DATA, require
from tests.helpers import MOCK_DATA_DIR, debian_style_copy, mock_fashion_mnist, params_equal, rewrite_idx
from tests.test_runner import damage, final_state, small_config, without_timing

KILLS = pytest.mark.reliability("kills")
BAD_INPUT = pytest.mark.reliability("bad input")


def cli(workdir, *extra, module="experiments.train"):
    """A command line that trains mlp500 on the mock data (tests.mock_cli) in a subprocess."""
    return [sys.executable, "-m", "tests.mock_cli", module, "--config", "experiments/configs/mlp500.py",
            "--workdir", str(workdir), "--progress=false", "--config.data.train_subset=1024",
            "--config.data.val_size=500", "--config.train.max_epochs=12", "--config.train.patience=50", *extra]


ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def checkpoint_write_in_progress(workdir: Path) -> bool:
    """True while Orbax has an uncommitted (temporary) checkpoint folder in the run."""
    root = workdir / "checkpoints"
    return root.is_dir() and any("tmp" in p.name for sub in root.iterdir() if sub.is_dir() for p in sub.iterdir())


def kill_plan(rng: random.Random, kills: int) -> list[str]:
    """Where each kill lands (tests/kill_worker.py events): every other one during a checkpoint
    write, the others at the start of an epoch or halfway through a metrics line. Each event
    index is at most 2, so a process gets at most one epoch further before it is killed and
    12 epochs leave every planned event reachable."""
    plan = []
    for i in range(kills):
        if i % 2:
            plan.append(f"checkpoint-write:{rng.randint(1, 2)}")
        else:
            plan.append(rng.choice(["epoch-start:1", "epoch-start:2", "metrics-append:1"]))
    return plan


@pytest.mark.slow
@KILLS
def test_sigkill_at_ten_chosen_moments_loses_nothing(tmp_path, record_property):
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(cli(reference), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    workdir, plan, during_writes = tmp_path / "killed", kill_plan(random.Random(0), 10), 0
    for event in plan:
        resume = ["--resume"] if (workdir / "config.json").is_file() else []
        process = subprocess.Popen(cli(workdir, *resume, module="tests.kill_worker"), cwd=REPO,
                                   env=dict(ENV, FVAE_BLOCK_AT=event), stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        # The worker prints BLOCKED when it reaches the event and then waits: no deadline to miss.
        blocked = next((line for line in process.stdout if line.startswith("BLOCKED")), None)
        writing = checkpoint_write_in_progress(workdir)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        assert blocked is not None, f"the run ended before reaching {event} (exit code {process.returncode})"
        record_property("sigkills", 1)  # Summed into the reliability line by tests/conftest.py.
        record_property("sigkills_during_checkpoint_writes", int(writing))
        during_writes += writing
        assert writing == event.startswith("checkpoint-write"), (event, writing)
    final = subprocess.run(cli(workdir, "--resume"), cwd=REPO, env=ENV, capture_output=True,
                           text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]

    config = mlp500.get_config()
    killed_state, killed_meta = final_state(config, workdir)
    reference_state, reference_meta = final_state(config, reference)
    same = (params_equal(killed_state.params, reference_state.params)
            and params_equal(killed_state.opt_state, reference_state.opt_state)
            and killed_meta["early_stopping"] == reference_meta["early_stopping"]
            and without_timing(rundir.load_history(workdir)) == without_timing(rundir.load_history(reference)))
    record_property("runs_lost", int(not same))
    assert same, "a killed and resumed run ended differently from the uninterrupted one"
    assert json.loads((workdir / "test_metrics.json").read_text())["test_loss"] == \
        json.loads((reference / "test_metrics.json").read_text())["test_loss"]
    assert during_writes == 5


def best_params(config, workdir: Path):
    """The parameters of the run's best checkpoint (a run resumed from best after a kill during
    its first latest write, with no epoch left to train, has no latest one)."""
    checkpoints = Checkpoints(workdir)
    try:
        return checkpoints.restore_best(assemble.initial_state(config))[0].params
    finally:
        checkpoints.close()


def kill_at(workdir: Path, event: str, *extra: str) -> str | None:
    """Runs the training (tests/kill_worker.py) until it reaches `event`, SIGKILLs it there and
    returns the line that says where it stopped (None: it ended before reaching it)."""
    process = subprocess.Popen(cli(workdir, *extra, module="tests.kill_worker"), cwd=REPO,
                               env=dict(ENV, FVAE_BLOCK_AT=event), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    blocked = next((line for line in process.stdout if line.startswith("BLOCKED")), None)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    return blocked


@pytest.mark.slow
@KILLS
def test_a_kill_at_every_file_of_start_up_epoch_one_and_the_report_leaves_a_way_forward(tmp_path, record_property):
    """docs/reliability.md's promise that every state has a way forward, at every file a run
    writes: a one-epoch run is SIGKILLed once at each (tests/kill_worker.py's "file" event:
    versions.json, config.json, the TensorBoard file, each checkpoint commit and digest, the
    metrics line, the pictures, test_metrics.json), each time in a fresh directory. What the
    state then says to run (docs/reliability.md's table: `train` for a run that never saved an
    epoch, `train --resume` otherwise) succeeds without a question, and the run ends as the
    uninterrupted one did, bit for bit."""
    one_epoch = ("--config.train.max_epochs=1",)
    reference = tmp_path / "uninterrupted"
    listing = subprocess.run(cli(reference, *one_epoch, module="tests.kill_worker"), cwd=REPO,
                             env=dict(ENV, FVAE_LIST_FILES="1"), capture_output=True, text=True, timeout=900)
    assert listing.returncode == 0, listing.stderr[-3000:]
    written = [line.split(" ", 2)[2] for line in listing.stdout.splitlines() if line.startswith("FILE ")]
    for expected in ("versions.json", "config.json", "tensorboard", "checkpoint", "fvae_sha256.json",
                     "metrics line", "samples.png", "test_metrics.json"):
        assert any(expected in what for what in written), (expected, written)
    config = mlp500.get_config()
    reference_state = best_params(config, reference)
    reference_report = json.loads((reference / rundir.TEST_METRICS_FILE).read_text())

    for n, what in enumerate(written, 1):
        workdir = tmp_path / f"killed-{n}"
        assert kill_at(workdir, f"file:{n}", *one_epoch) is not None, f"the run ended before writing {what}"
        record_property("sigkills", 1)  # Summed into the reliability line by tests/conftest.py.
        record_property("sigkills_during_checkpoint_writes", int(checkpoint_write_in_progress(workdir)))
        state = rundir.run_state(workdir)
        assert state in ("never started", "failed before any epoch", "stopped"), (what, state)
        resume = [] if state in ("never started", "failed before any epoch") else ["--resume"]
        done = subprocess.run(cli(workdir, *one_epoch, *resume), cwd=REPO, env=ENV, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, (what, state, done.stderr[-3000:])
        report = json.loads((workdir / rundir.TEST_METRICS_FILE).read_text())
        same = (params_equal(best_params(config, workdir), reference_state)
                and without_timing(rundir.load_history(workdir)) == without_timing(rundir.load_history(reference))
                and report["test_loss"] == reference_report["test_loss"]
                and all((workdir / name).is_file() for name in ("samples.png", "reconstructions.png")))
        record_property("runs_lost", int(not same))
        assert same, f"killed while writing {what} ({state}), the run ended differently from the uninterrupted one"
        shutil.rmtree(workdir)


@pytest.mark.slow
@BAD_INPUT
def test_a_full_disk_while_training_is_one_line_and_the_libraries_pages_go_to_the_run_log(tmp_path):
    """A checkpoint write failing as a full disk does under TensorStore (tests/kill_worker.py:
    pages of tracebacks on the stderr descriptor, an error of its own type): the terminal gets the
    one error line, which names a log in the run's logs/ holding those pages and the traceback;
    after that, --resume finishes the run."""
    workdir, three = tmp_path / "run", "--config.train.max_epochs=3"
    failed = subprocess.run(cli(workdir, three, module="tests.kill_worker"), cwd=REPO,
                            env=dict(ENV, FVAE_FULL_DISK_AT="checkpoint-write:9", TF_ENABLE_ONEDNN_OPTS="0"),
                            capture_output=True, text=True, timeout=900)
    lines = failed.stderr.strip().splitlines()
    assert failed.returncode == 1 and len(lines) == 1, failed.stderr[-3000:]
    assert lines[0].startswith("error: no space left on the disk while writing the checkpoint of epoch 2 "), lines
    log = Path(lines[0].rsplit("the libraries' own messages are in ", 1)[1].rstrip(")"))
    assert log.parent == workdir / "logs"
    text = log.read_text()
    assert text.count("No space left on device [os_error_code='28']") == 40  # The pages, all of them.
    assert "ValueError: RESOURCE_EXHAUSTED: Failed writing" in text and "CheckpointError" in text
    done = subprocess.run(cli(workdir, three, "--resume"), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert rundir.run_state(workdir) == "finished" and len(rundir.load_history(workdir)) == 3


def test_an_error_from_a_library_is_one_line_naming_a_log_of_its_pages(tmp_path, monkeypatch):
    """experiments/cli.py: fvae's own errors are the line alone; one that wraps a library's error
    or carries its captured output names a log that holds both, in the run's logs/ when the
    trainer marked it (log_dir), else in the temporary folder's fvae-errors/."""
    from experiments import cli as scripts

    monkeypatch.setattr(scripts.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert scripts._library_log(errors.RunDirError("the directory is in use")) == ""
    try:
        try:
            raise ValueError("RESOURCE_EXHAUSTED deep in TensorStore")
        except ValueError as library:
            raise errors.CheckpointError("no space left ...") from library
    except errors.CheckpointError as err:
        err.library_output = "pages of C++ tracebacks\n"
        in_temp = scripts._library_log(err)
        err.log_dir = tmp_path / "run"
        in_run = scripts._library_log(err)
    for line, folder in ((in_temp, tmp_path / "tmp" / "fvae-errors"), (in_run, tmp_path / "run" / "logs")):
        log = Path(line.rsplit("are in ", 1)[1].rstrip(")"))
        assert log.parent == folder
        text = log.read_text()
        assert "ValueError: RESOURCE_EXHAUSTED deep in TensorStore" in text and "pages of C++ tracebacks" in text


def reader(module: str, workdir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """A command that only reads the run (on the mock data): sample or evaluate into `out`."""
    return subprocess.run([sys.executable, "-m", "tests.mock_cli", module, "--workdir", str(workdir), "--out", str(out),
                           *extra], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@KILLS
def test_sampling_and_evaluating_a_run_while_it_writes_checkpoints_never_disturbs_it(tmp_path):
    """Readers run while the trainer holds a checkpoint write open (tests/kill_worker.py holds its
    first 12 commits; a reader runs at each one once a best checkpoint is complete): each reads
    the newest complete checkpoint, leaves the trainer's temporary folder where it is and
    changes nothing under checkpoints/; the trainer then finishes exactly as an undisturbed run."""
    reference = tmp_path / "undisturbed"
    done = subprocess.run(cli(reference), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    workdir, holds = tmp_path / "live", tmp_path / "holds"
    holds.mkdir()
    process = subprocess.Popen(cli(workdir, module="tests.kill_worker"), cwd=REPO,
                               env=dict(ENV, FVAE_HOLD_COMMITS="12", FVAE_HOLD_DIR=str(holds)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    readers = 0
    try:
        for commit in range(1, 13):
            assert next((line for line in process.stdout if line.startswith(f"HOLDING {commit} ")), None), \
                f"the trainer ended before commit {commit}: {process.stderr.read()[-3000:]}"
            assert checkpoint_write_in_progress(workdir)
            if readers < 4 and rundir.has_checkpoint(workdir, "best"):
                before = sorted(str(p.relative_to(workdir)) for p in (workdir / "checkpoints").rglob("*"))
                if readers % 2:
                    result = reader("experiments.evaluate", workdir, tmp_path / f"eval-{commit}",
                                    "--iwae_samples=10", "--limit=100")
                else:
                    result = reader("experiments.sample", workdir, tmp_path / f"sample-{commit}", "-n", "16")
                assert result.returncode == 0, result.stderr[-3000:]
                assert "Traceback" not in result.stderr
                after = sorted(str(p.relative_to(workdir)) for p in (workdir / "checkpoints").rglob("*"))
                assert after == before, "a reader changed the run's checkpoints"
                readers += 1
            (holds / f"release-{commit}").touch()
        assert readers == 4
        out, err = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-3000:]
    assert without_timing(rundir.load_history(workdir)) == without_timing(rundir.load_history(reference))
    config = mlp500.get_config()
    live_state, _ = final_state(config, workdir)
    reference_state, _ = final_state(config, reference)
    assert params_equal(live_state.params, reference_state.params)


@pytest.mark.slow
@KILLS
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signals_stop_cleanly_after_saving_the_epoch(tmp_path, sig):
    workdir = tmp_path / "run"
    process = subprocess.Popen(cli(workdir, "--config.train.max_epochs=200"), cwd=REPO, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not rundir.load_history(workdir) and process.poll() is None:  # Waits for an event, not a time.
        time.sleep(0.05)
    process.send_signal(sig)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 130, err[-3000:]
    assert f"{sig.name} received: stopped cleanly after epoch" in err and "--resume" in err
    assert "Traceback" not in err
    epochs = [r["epoch"] for r in rundir.load_history(workdir)]
    checkpoints = Checkpoints(workdir)
    assert checkpoints.latest_epoch() == epochs[-1] < 200
    checkpoints.close()


@pytest.mark.slow
@BAD_INPUT
def test_absurd_learning_rate_fails_fast_from_the_cli(tmp_path):
    result = subprocess.run(cli(tmp_path / "run", "--config.train.learning_rate=1e30"),
                            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "the loss became NaN or Inf" in result.stderr
    assert "Traceback" not in result.stderr
    assert not rundir.load_history(tmp_path / "run")


def corrupt_folder(original_files, tmp_path, how):
    folder = debian_style_copy(original_files, tmp_path / "files")
    path = folder / "t10k-images-idx3-ubyte.gz"
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:50_000])
    elif how == "checksum":
        rewrite_idx(folder, path.name, lambda b: b.__setitem__(100, b[100] ^ 1))
    elif how == "shape":
        rewrite_idx(folder, path.name, lambda b: b.__setitem__(slice(4, 8), (9999).to_bytes(4, "big")))
    elif how == "not gzip":
        path.write_bytes(b"<html>not found</html>")
    return folder


BAD_DATA = {"missing": "Missing data file", "truncated": "truncated or not a valid gzip",
            "checksum": "checksum mismatch", "shape": "not a Fashion-MNIST IDX file", "not gzip": "not a valid gzip"}


@BAD_INPUT
@pytest.mark.parametrize("how", sorted(BAD_DATA))
def test_bad_data_files_are_named_and_never_read_as_prepared(original_files, tmp_path, how):
    folder = corrupt_folder(original_files, tmp_path, how)
    with pytest.raises(DataError) as err:
        sources.prepare(tmp_path / "tfds", folder)
    message = str(err.value)
    assert BAD_DATA[how] in message and "t10k-images-idx3-ubyte.gz" in message and "Ways to provide" in message
    assert not sources.is_prepared(tmp_path / "tfds")


@BAD_INPUT
def test_unusable_data_directory_is_reported(original_files, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError, match="Cannot create data directory"):
        sources.prepare(blocker / "tfds", original_files)


BAD_CONFIGS = {
    "--config.train.batch_size=0": "train.batch_size must be >= 1",
    "--config.train.min_delta=nan": "train.min_delta must be a finite number",  # Passed every comparison.
    "--config.seed=99999999999999999999": "seed must be in 0..",  # Overflowed in jax after the run dir existed.
    "--config.train.learning_rate=-1": "train.learning_rate must be > 0",
    "--config.model.compute_dtype=float16": "model.compute_dtype must be one of",
    "--config.data.val_size=60000": "data.val_size must be in",
    "--config.data.train_subset=50": "exceeds the 50 training images",
    "--config.train.foo=1": "unknown config key 'train.foo'; nearest valid keys: train.",
    "--config.train.batchsize=64": "nearest valid keys: train.batch_size",
}


@pytest.mark.slow
@BAD_INPUT
def test_two_processes_preparing_the_data_at_once_both_succeed(original_files, tmp_path):
    """The loser of the race used to report a data problem with the list of ways to provide the
    files, though they were fine: now the second waits for the first (a lock in data_dir)."""
    command = [sys.executable, "-m", "experiments.prepare_data", "--data_dir", str(tmp_path / "tfds"),
               "--manual_dir", str(original_files)]
    processes = [subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in processes]  # Reads both pipes: no filled-pipe stall.
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0 and "is prepared in" in out, err[-2000:]
    assert sources.is_prepared(tmp_path / "tfds")


@pytest.mark.slow
@BAD_INPUT
@pytest.mark.parametrize("override", sorted(BAD_CONFIGS))
def test_bad_config_values_are_rejected_before_any_work(tmp_path, override):
    result = subprocess.run(cli(tmp_path / "run", override), cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and BAD_CONFIGS[override] in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished") / "run"
    with mock_fashion_mnist():
        trainer.train_and_evaluate(small_config(MOCK_DATA_DIR, 2), workdir, log=lambda _: None,
                                  progress=False)
    return workdir


def test_run_directory_records_versions(finished_run):
    recorded = json.loads((finished_run / "versions.json").read_text())
    assert recorded["jax"] == jax.__version__ and "orbax-checkpoint" in recorded and "python" in recorded
    assert recorded["cpu"] == cpu_model() and recorded["cpu"]


@BAD_INPUT
def test_run_directory_misuse_is_refused_and_nothing_is_overwritten(finished_run, mock_data_dir, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file() and p.name != ".lock"}
    cases = [
        (dict(workdir=finished_run, resume=False), errors.RunDirError, "refusing to overwrite"),
        (dict(workdir=tmp_path / "nothing", resume=True), errors.RunDirError, "holds no run"),
    ]
    different = small_config(mock_data_dir, 2)
    different.model.latents = 3
    cases.append((dict(workdir=finished_run, resume=True, config=different), errors.RunDirError,
                  "model.latents: run has 8, given 3"))
    for case, error, phrase in cases:
        config = case.pop("config", small_config(mock_data_dir, 2))
        with pytest.raises(error, match=phrase):
            trainer.train_and_evaluate(config, log=lambda _: None, progress=False, **case)
    after = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before


@BAD_INPUT
def test_a_wrong_workdir_creates_nothing_and_a_file_is_not_a_workdir(mock_data_dir, tmp_path):
    from fvae.run.report import evaluate_run

    with pytest.raises(errors.RunDirError, match="holds no run"):
        evaluate_run(tmp_path / "TYPO")
    assert not (tmp_path / "TYPO").exists()  # It was left holding eval/, so train refused it later.
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for resume in (False, True):
        with pytest.raises(errors.RunDirError, match="is a file, not a directory"):
            trainer.train_and_evaluate(small_config(mock_data_dir, 1), afile, resume=resume, log=lambda _: None,
                                      progress=False)
    assert afile.read_text() == "mine"


@BAD_INPUT
def test_a_run_whose_latest_checkpoints_are_all_damaged_resumes_from_best_and_is_never_restarted(mock_data_dir,
                                                                                               tmp_path):
    """No readable latest checkpoint: --resume says so and continues from the best one (the epochs
    after it again, bit for bit); with the best one damaged too, it is refused, naming what is
    left, however often, and nothing is changed (the run has trained: never restarted)."""
    config = small_config(mock_data_dir, 3)
    config.train.learning_rate = 3e-2  # Overfits: the best epoch is not the last, so epochs are redone.
    reference, workdir = tmp_path / "reference", tmp_path / "run"
    for folder in (reference, workdir):
        trainer.train_and_evaluate(config, folder, log=lambda _: None, progress=False)
    (workdir / rundir.TEST_METRICS_FILE).unlink()  # As a kill leaves it.
    for checkpoint in (workdir / "checkpoints" / "latest").iterdir():
        if checkpoint.name.isdigit():
            damage(checkpoint)
    messages = []
    summary = trainer.train_and_evaluate(config, workdir, resume=True, log=messages.append, progress=False)
    assert any("resuming from the best one" in m for m in messages), messages
    assert without_timing(rundir.load_history(workdir)) == without_timing(rundir.load_history(reference))
    assert summary["test_loss"] == json.loads((reference / rundir.TEST_METRICS_FILE).read_text())["test_loss"]

    for which in ("latest", "best"):
        for checkpoint in (workdir / "checkpoints" / which).iterdir():
            if checkpoint.name.isdigit():
                damage(checkpoint)
    (workdir / rundir.TEST_METRICS_FILE).unlink()
    before = {p: p.read_bytes() for p in (workdir / "metrics.jsonl",)}
    for phrase in ("best weights are lost|No readable", "holds no readable latest or best checkpoint"):
        with pytest.raises(errors.CheckpointError, match=phrase):
            trainer.train_and_evaluate(config, workdir, resume=True, log=lambda _: None, progress=False)
    assert {p: p.read_bytes() for p in before} == before


@BAD_INPUT
def test_a_start_killed_before_its_config_is_written_starts_again(mock_data_dir, tmp_path):
    """A start that wrote versions.json and died before config.json (a kill, a full disk) is
    neither a run to resume nor files to protect: train starts it afresh."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "versions.json").write_text('{"python": "3.11"}')
    assert rundir.run_state(workdir) == "never started"
    summary = trainer.train_and_evaluate(small_config(mock_data_dir, 1), workdir, log=lambda _: None, progress=False)
    assert summary["best_epoch"] == 1 and rundir.run_state(workdir) == "finished"


@BAD_INPUT
def test_a_cut_short_versions_file_is_named_with_what_to_do(finished_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    (copy / "versions.json").write_text((copy / "versions.json").read_text()[:20])
    with pytest.raises(errors.DamagedFileError, match="versions.json is not valid JSON .* delete it to resume"):
        version_changes(copy)


@BAD_INPUT
def test_a_second_process_cannot_write_a_run_in_use(finished_run, mock_data_dir):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from fvae.run import rundir
with rundir.exclusive({str(finished_run)!r}):
    print("locked", flush=True)
    time.sleep(60)
"""], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(errors.RunDirError, match="in use by another fvae process"):
            trainer.train_and_evaluate(small_config(mock_data_dir, 3), finished_run, resume=True,
                                      log=lambda _: None, progress=False)
    finally:
        holder.kill()
        holder.wait()


@BAD_INPUT
def test_incompatible_checkpoints_fail_clearly(finished_run, tmp_path):
    import shutil

    from fvae.compute.state import create_train_state
    from fvae.models import VAE, Decoder, Encoder
    from tests.helpers import fake_images

    other_model = create_train_state(VAE(Encoder((32,), 8), Decoder((32,), (784,))), jax.random.key(0),
                                     fake_images(1), 1e-3)
    checkpoints = Checkpoints(finished_run)
    with pytest.raises(CheckpointError, match="does not match this model configuration"):
        checkpoints.restore_latest(other_model)
    checkpoints.close()

    old = tmp_path / "old"
    shutil.copytree(finished_run, old)
    for meta in (old / "checkpoints").rglob("meta/metadata"):
        content = json.loads(meta.read_text())
        content["format_version"] = FORMAT_VERSION + 1
        meta.write_text(json.dumps(content))
        write_digest(meta.parents[1])  # A consistent checkpoint of another format, not a damaged one.
    with pytest.raises(CheckpointError, match="format version"):
        assemble.load_run_state(old)


@pytest.mark.slow
@BAD_INPUT
def test_resume_past_a_damaged_checkpoint_from_the_cli(finished_run, tmp_path):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(finished_run, workdir)
    damage(workdir / "checkpoints" / "latest" / "2")
    result = subprocess.run([sys.executable, "-m", "tests.mock_cli", "experiments.train", "--workdir", str(workdir),
                             "--resume", "--progress=false"], cwd=REPO, env=ENV, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"{workdir / 'checkpoints' / 'latest' / '2'} is damaged" in output
    assert "resuming from the previous checkpoint (epoch 1)" in output and "Traceback" not in output
    assert [r["epoch"] for r in rundir.load_history(workdir)] == [1, 2]
    assert without_timing(rundir.load_history(workdir)) == without_timing(rundir.load_history(finished_run))


# Every script in experiments/ with each kind of bad input: (kind, script, arguments, what the one
# error line names). {tmp} holds: nothing/ (absent), afile (a file), cut/ (a run whose config.json
# is cut short), unreadable/ (a run whose config.json is a folder), each run with one metrics line;
# garbled/ (three metrics lines, the second cut); {data} is the folder of the original Fashion-MNIST files.
BAD_INPUTS = [
    ("missing", "train", ["--config", "{tmp}/nosuch.py", "--workdir", "{tmp}/run"], "no config"),
    ("missing", "train", ["--workdir", "{tmp}/nothing", "--resume"], "holds no run"),
    ("unreadable", "train", ["--workdir", "{tmp}/unreadable", "--resume"], "config.json cannot be read"),
    ("truncated", "train", ["--workdir", "{tmp}/cut", "--resume"], "config.json is not valid JSON"),
    ("wrong type", "train", ["--workdir", "{tmp}/run", "--config.train.batch_size=abc"], "invalid literal"),
    ("out of range", "train", ["--workdir", "{tmp}/run", "--config.train.batch_size=0"], "must be >= 1"),
    ("out of range", "train", ["--workdir", "{tmp}/run", "--config.model.latents=1000000000000"],
     "GiB free here; make it smaller"),
    ("out of range", "train", ["--workdir", "{tmp}/run", "--config.output.num_samples=1000000000000"],
     "output.num_samples must be in 1..10,000"),
    ("out of range", "evaluate", ["--workdir", "{tmp}/cut", "--iwae_samples=99999999999999999999"],
     "--iwae_samples takes values up to"),
    ("out of range", "train", ["--workdir", "{tmp}/run", "--config.train.optimizer=lion"],
     "train.optimizer must be one of"),
    ("out of range", "train", ["--workdir", "{tmp}/run", "--config.model.architecture=top_down",
                               "--config.model.posterior=both"], "model.posterior must be one of"),
    ("file for dir", "train", ["--config", "mlp500", "--workdir", "{tmp}/afile"], "is a file, not a directory"),
    ("missing", "evaluate", ["--workdir", "{tmp}/nothing"], "holds no run"),
    ("unreadable", "evaluate", ["--workdir", "{tmp}/unreadable"], "config.json cannot be read"),
    ("truncated", "evaluate", ["--workdir", "{tmp}/cut"], "config.json is not valid JSON"),
    ("wrong type", "evaluate", ["--workdir", "{tmp}/cut", "--limit=ten"], "flag --limit=ten"),
    ("out of range", "evaluate", ["--workdir", "{tmp}/cut", "--limit=-1"], "flag --limit=-1"),
    ("out of range", "evaluate", ["--workdir", "{tmp}/cut", "--iwae_samples=0"], "--iwae_samples needs"),
    ("file for dir", "evaluate", ["--workdir", "{tmp}/afile"], "is a file, not a directory"),
    ("out of range", "evaluate", ["--workdir", "{tmp}/cut", "--samplers=gmm,nope"], "unknown sampler nope"),
    ("unknown name", "evaluate", ["--workdir", "{tmp}/cut", "--sampler_config.realnvp.layer=3"],
     "--sampler_config.realnvp.layer is not a sampler setting (realnvp has batch_size"),
    ("out of range", "evaluate", ["--workdir", "{tmp}/cut", "--samplers=realnvp",
                                  "--sampler_config.realnvp.epochs=0", "--sampler_config.realnvp.learning_rate=-1"],
     "realnvp.epochs takes a whole number >= 1, e.g. 50; got 0; realnvp.learning_rate takes a positive"),
    ("wrong type", "sample", ["--workdir", "{tmp}/cut", "--sampler_config.gmm.max_iter=many"],
     "flag --sampler_config.gmm.max_iter=many"),
    ("out of range", "sample", ["--workdir", "{tmp}/cut", "--sampler=gmm", "--sampler_config.gmm.components=(5,2)"],
     "gmm.components takes increasing counts"),
    ("missing", "sample", ["--workdir", "{tmp}/nothing"], "holds no run"),
    ("missing", "sample", ["--workdir", "{tmp}/noparams", "--out", "{tmp}/pictures"],
     "is a stored model without its params.msgpack"),
    ("truncated", "sample", ["--workdir", "{tmp}/cut"], "config.json is not valid JSON"),
    ("wrong type", "sample", ["--workdir", "{tmp}/cut", "--n=many"], "flag --n=many"),
    ("out of range", "sample", ["--workdir", "{tmp}/cut", "--seed=-1"], "flag --seed=-1"),
    ("file for dir", "sample", ["--workdir", "{tmp}/afile"], "is a file, not a directory"),
    ("out of range", "sample", ["--workdir", "{tmp}/cut", "--sampler=nope"], "unknown sampler nope"),
    ("out of range", "sample", ["--workdir", "{tmp}/cut", "--temperature=0"], "temperature must be a positive number"),
    ("out of range", "evaluate", ["--workdir", "{tmp}/cut", "--temperatures=0.7,-1"],
     "--temperatures takes positive numbers"),
    ("missing", "export_model", ["--workdir", "{tmp}/nothing", "--out", "{tmp}/model"], "holds no run"),
    ("truncated", "export_model", ["--workdir", "{tmp}/cut", "--out", "{tmp}/model"], "config.json is not valid JSON"),
    ("file for dir", "export_model", ["--workdir", "{tmp}/afile", "--out", "{tmp}/model"], "is a file, not a dir"),
    ("exists", "export_model", ["--workdir", "{tmp}/cut", "--out", "{tmp}/unreadable"], "written once"),
    ("missing", "iwae_k", ["--workdir", "{tmp}/nothing"], "holds no run"),
    ("truncated", "iwae_k", ["--workdir", "{tmp}/cut"], "config.json is not valid JSON"),
    ("out of range", "iwae_k", ["--workdir", "{tmp}/cut", "--iwae_samples=0,10"], "--iwae_samples needs"),
    ("file for dir", "iwae_k", ["--workdir", "{tmp}/cut", "--out", "{tmp}/cut"], "is a directory"),
    ("missing", "compare_bounds", ["--models", "{tmp}/cut,{tmp}/nothing"], "config.json is not valid JSON"),
    ("missing", "compare_bounds", ["--models", "{tmp}/nothing,{tmp}/cut"], "holds no run"),
    ("out of range", "compare_bounds", ["--models", "{tmp}/cut"], "two or more different models"),
    ("out of range", "compare_bounds", ["--models", "{tmp}/cut,{tmp}/cut2", "--limit=1"], "a standard error needs two"),
    ("file for dir", "compare_bounds", ["--models", "{tmp}/afile,{tmp}/cut"], "is a file, not a directory"),
    ("missing", "patience", ["--workdir", "{tmp}/nothing"], "no recorded epochs"),
    ("unreadable", "patience", ["--workdir", "{tmp}/unreadable"], "config.json cannot be read"),
    ("truncated", "patience", ["--workdir", "{tmp}/cut"], "config.json is not valid JSON"),
    ("wrong type", "patience", ["--workdir", "{tmp}/cut", "--patience=ten"], "--patience takes whole numbers"),
    ("truncated", "patience", ["--workdir", "{tmp}/garbled"], "metrics.jsonl line 2 is not valid JSON"),
    ("missing", "prepare_data", ["--data_dir", "{tmp}/tfds", "--manual_dir", "{tmp}"], "Missing data file"),
    ("file for dir", "prepare_data", ["--data_dir", "{tmp}/afile", "--manual_dir", "{data}"], "afile"),
    ("missing", "sample_quality", ["--runs", "{tmp}/nothing"], "holds no run"),
    ("out of range", "sample_quality", ["--samplers=nope"], "unknown sampler nope"),
    ("unknown name", "sample_quality", ["--sampler_config.flow.epochs=3"],
     "--sampler_config.flow.epochs is not a sampler setting (the samplers are gmm, realnvp, two_stage_vae)"),
    ("file for dir", "sample_quality", ["--runs", "{tmp}/cut", "--out", "{tmp}/cut"], "is a directory"),
    ("missing", "sweep", ["--configs", "nope", "--workdir", "{tmp}/sweep"], "no config 'nope'"),
    ("wrong type", "sweep", ["--configs", "mlp500", "--workdir", "{tmp}/sweep", "--config.train.patience=x"],
     "invalid literal"),
    ("out of range", "sweep", ["--configs", "mlp500", "--workdir", "{tmp}/sweep", "--iwae_samples=0"],
     "flag --iwae_samples=0"),
    ("file for dir", "sweep", ["--configs", "mlp500", "--workdir", "{tmp}/afile"], "afile"),
    ("wrong type", "benchmark", ["--epochs=two"], "flag --epochs=two"),
    ("out of range", "benchmark", ["--train_images=0"], "flag --train_images=0"),
    ("file for dir", "benchmark", ["--out", "{tmp}/afile"], "afile"),
    ("missing", "benchmark", ["--out", "{tmp}/bench", "--peers", "{tmp}/nopython"], "is not a file"),
    ("unknown name", "benchmark", ["--out", "{tmp}/bench", "--iwae_samples=5", "--iwae_configs=nosuch"],
     "no config 'nosuch'"),
    ("wrong type", "benchmark_nonfinite", ["--steps_per_call=8,all"], "--steps_per_call takes whole numbers"),
    ("file for dir", "benchmark_nonfinite", ["--out", "{tmp}/afile"], "afile"),
    ("out of range", "benchmark_nonfinite", ["--out", "{tmp}/bench", "--train_images=10"], "less than one batch"),
    ("out of range", "benchmark", ["--out", "{tmp}/bench", "--configs=mlp500", "--train_images=10"],
     "less than one batch of mlp500"),
    ("wrong type", "results_doc", ["--chek"], "unexpected arguments"),
]


def _bad_input_folder(tmp_path: Path) -> dict[Path, tuple[bytes, int]]:
    """The folder the bad-input rows point into; returns what it holds (bytes, mtime) per path."""
    (tmp_path / "afile").write_text("mine")
    for name in ("cut", "unreadable"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text('{"epoch": 1, "val_loss": 250.0, "seconds": 1.0}\n')
    (tmp_path / "cut" / "config.json").write_text('{"seed": 0, "train": {"batch')  # Cut short.
    (tmp_path / "garbled").mkdir()  # A metrics line edited by hand, between two good ones.
    (tmp_path / "garbled" / "metrics.jsonl").write_text('{"epoch": 1, "val_loss": 250.0, "seconds": 1.0}\n{"epo\n'
                                                        '{"epoch": 3, "val_loss": 240.0, "seconds": 1.0}\n')
    (tmp_path / "unreadable" / "config.json").mkdir()
    (tmp_path / "noparams").mkdir()  # A stored model that lost its parameters.
    for name in ("reference.json", "fvae_sha256.json", "config.json"):
        (tmp_path / "noparams" / name).write_text("{}")
    return _contents(tmp_path)


def _contents(folder: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.mark.slow
@BAD_INPUT
@pytest.mark.parametrize("kind, script, arguments, message", BAD_INPUTS,
                         ids=[f"{script}-{kind}-{i}" for i, (kind, script, _, _) in enumerate(BAD_INPUTS)])
def test_every_script_turns_bad_input_into_one_error_line(tmp_path, kind, script, arguments, message):
    """The rule of experiments/cli.py, held for every script: exit status 1 (2 for results_doc's
    unknown flag), one line starting `error: ` that names the problem, no traceback, and
    nothing created or changed where the arguments point."""
    before = _bad_input_folder(tmp_path)
    if "{data}" in arguments:
        require((SHARED_DATA / "train-images-idx3-ubyte.gz").is_file(), f"no Fashion-MNIST files in {SHARED_DATA}")
    args = [part.replace("{tmp}", str(tmp_path)).replace("{data}", str(SHARED_DATA)) for part in arguments]
    result = subprocess.run([sys.executable, "-m", f"experiments.{script}", *args], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in result.stderr[result.stderr.index("error: "):], result.stderr[-2000:]
    assert result.stderr.startswith("error: "), result.stderr[:2000]  # No library log lines before it.
    assert _contents(tmp_path) == before


@pytest.mark.slow
@BAD_INPUT
def test_debug_shows_the_traceback_that_the_error_line_replaces(tmp_path):
    """--debug (or FVAE_DEBUG=1) is the way to see where an error came from."""
    _bad_input_folder(tmp_path)
    command = [sys.executable, "-m", "experiments.evaluate", "--workdir", str(tmp_path / "cut")]
    for extra, env in ((["--debug"], ENV), ([], dict(ENV, FVAE_DEBUG="1"))):
        result = subprocess.run(command + extra, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 1 and "Traceback" in result.stderr
        assert "DamagedFileError" in result.stderr and "config.json is not valid JSON" in result.stderr


@pytest.mark.slow
@BAD_INPUT
def test_every_transition_of_the_run_directory_state_machine(mock_data_dir, tmp_path):
    """docs/reliability.md's table, walked: in each state of a run directory, what train (new),
    train --resume and evaluate do, and which state follows. A refusal changes nothing."""
    from fvae.run.report import evaluate_run

    config = small_config(mock_data_dir, 2)
    longer = small_config(mock_data_dir, 3)

    def train(workdir, resume=False, c=config):
        return trainer.train_and_evaluate(c, workdir, resume=resume, log=lambda _: None, progress=False)

    def evaluate(workdir):
        return evaluate_run(workdir, iwae_samples=(2,), limit=50, overwrite=True, log=lambda _: None)

    def refused(action, message):
        before = _contents(tmp_path)
        with pytest.raises(errors.UserError, match=message):
            action()
        assert _contents(tmp_path) == before

    run, failed, damaged = tmp_path / "run", tmp_path / "failed", tmp_path / "damaged"
    # Never started: evaluate and --resume refuse and create nothing; train starts it.
    assert rundir.run_state(run) == "never started"
    refused(lambda: evaluate(run), "holds no run")
    refused(lambda: train(run, resume=True), "Cannot resume")
    # Failed before any epoch (its start wrote config.json, then it died, e.g. loading data):
    # evaluate has nothing to read; train and --resume both start it afresh.
    for workdir in (run, failed):
        rundir.start(workdir, config.to_dict(), resume=False)
        assert rundir.run_state(workdir) == "failed before any epoch"
    refused(lambda: evaluate(run), "No best checkpoint .* has not saved an epoch")
    train(run)
    train(failed, resume=True)
    assert rundir.run_state(run) == rundir.run_state(failed) == "finished"
    # Finished: train refuses; evaluate works (again only with --overwrite); --resume with a
    # higher max_epochs trains on (a killed one is then "stopped").
    refused(lambda: train(run), "already holds files")
    assert evaluate(run)["images"] == 50
    refused(lambda: evaluate_run(run, iwae_samples=(2,), limit=50, log=lambda _: None), "--overwrite")
    report, history = (run / rundir.TEST_METRICS_FILE).read_text(), rundir.load_history(run)
    train(run, resume=True)  # No limit raised: no epoch trained, the same report written again.
    assert (run / rundir.TEST_METRICS_FILE).read_text() == report and rundir.load_history(run) == history
    (run / rundir.TEST_METRICS_FILE).unlink()  # As a kill during training leaves it: checkpoints, no report.
    # Stopped: train refuses; evaluate reads the best so far; --resume finishes it.
    assert rundir.run_state(run) == "stopped"
    refused(lambda: train(run), "already holds files")
    assert evaluate(run)["images"] == 50
    train(run, resume=True, c=longer)
    assert rundir.run_state(run) == "finished" and len(rundir.load_history(run)) == 3
    # Training (another process holds the lock): train and --resume refuse; evaluate reads the
    # best checkpoint, which Orbax only ever commits whole.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fvae.run import rundir\n"
                               "with rundir.exclusive(sys.argv[1]):\n print('held', flush=True); time.sleep(600)",
                               str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert rundir.run_state(run) == "training"
        refused(lambda: train(run, resume=True, c=longer), "in use by another fvae process")
        refused(lambda: train(run), "already holds files")
        assert evaluate(run)["images"] == 50
    finally:
        holder.kill()
        holder.wait()
    assert rundir.run_state(run) == "finished"
    # Damaged: a cut config.json is named by every command; no latest checkpoint left is refused
    # by --resume however often it is repeated (the run has trained: never restarted).
    shutil.copytree(run, damaged)
    (damaged / rundir.CONFIG_FILE).write_text('{"seed": 0, "tr')
    assert rundir.run_state(damaged) == "damaged"
    for action in (lambda: evaluate(damaged), lambda: train(damaged, resume=True), lambda: train(damaged)):
        refused(action, "config.json is not valid JSON|already holds files")
    shutil.copy(run / rundir.CONFIG_FILE, damaged / rundir.CONFIG_FILE)
    for checkpoint in (damaged / "checkpoints" / "latest").iterdir():
        if checkpoint.name.isdigit():
            shutil.move(checkpoint, damaged / "checkpoints" / "damaged" / checkpoint.name)
    (damaged / rundir.TEST_METRICS_FILE).unlink()
    assert rundir.run_state(damaged) == "stopped"  # The best checkpoint is left: --resume continues from it.
    for checkpoint in (damaged / "checkpoints" / "best").iterdir():
        if checkpoint.name.isdigit():
            shutil.move(checkpoint, damaged / "checkpoints" / "damaged" / f"best-{checkpoint.name}")
    assert rundir.run_state(damaged) == "damaged"
    for _ in range(2):
        refused(lambda: train(damaged, resume=True, c=longer), "holds no readable latest or best checkpoint")
