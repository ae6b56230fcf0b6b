import json

import numpy as np

from fvae.run import rundir, writer


def tensorboard_scalars(logdir) -> dict[tuple[int, str], float]:
    """Every scalar in the event files under logdir, read back with TensorFlow's own reader."""
    import tensorflow as tf

    found = {}
    for path in logdir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[event.step, value.tag] = float(tf.make_ndarray(value.tensor))
    return found


def test_one_write_reaches_json_lines_tensorboard_and_the_console(tmp_path):
    lines = []
    metrics = writer.create_writer(tmp_path, lines.append, lambda step, s: f"epoch {step}: {s['val_loss']:.1f}")
    metrics.write_scalars(1, {"train_loss": 3.5, "val_loss": 4.25})
    metrics.write_scalars(2, {"train_loss": 2.5, "val_loss": 3.75})
    metrics.close()
    assert rundir.load_history(tmp_path) == [{"epoch": 1, "train_loss": 3.5, "val_loss": 4.25},
                                           {"epoch": 2, "train_loss": 2.5, "val_loss": 3.75}]
    assert lines == ["epoch 1: 4.2", "epoch 2: 3.8"]
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert scalars == {(1, "train_loss"): 3.5, (1, "val_loss"): 4.25, (2, "train_loss"): 2.5, (2, "val_loss"): 3.75}
    # Each line is on disk (whole) as soon as it is written.
    assert [json.loads(line)["epoch"] for line in (tmp_path / rundir.METRICS_FILE).read_text().splitlines()] == [1, 2]


def test_processes_other_than_0_write_nothing(tmp_path):
    lines = []
    metrics = writer.create_writer(tmp_path, lines.append, lambda step, s: "line", is_writer=False)
    metrics.write_scalars(1, {"val_loss": float(np.float32(1.0))})
    metrics.close()
    assert lines == [] and list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_file_it_was_writing(tmp_path, monkeypatch):
    """A failed write carries no file name of its own (ENOSPC from write or fsync): fvae.files adds
    it, leaves no temporary file and keeps the old file; TensorBoard's event file, which TensorFlow
    fails to create with its own error type, is an OSError naming it."""
    import errno
    import os

    from clu import metric_writers

    from fvae import files

    target = tmp_path / "test_metrics.json"
    files.write_json(target, {"old": 1})

    def no_space(_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    for write in (lambda: files.write_json(target, {"new": 2}), lambda: files.append_line(tmp_path / "m.jsonl", "{}")):
        try:
            write()
        except OSError as err:
            assert err.errno == errno.ENOSPC and err.filename in (str(target), str(tmp_path / "m.jsonl"))
        else:
            raise AssertionError("the full disk was not reported")
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": 1}
    assert not list(tmp_path.glob("*.tmp"))

    def tensorflow_full(*args, **kwargs):
        os.write(2, b"TensorFlow's traceback\n")
        raise RuntimeError("CreateSummaryFileWriter: No space left on device")  # Not an OSError.

    monkeypatch.setattr(metric_writers, "SummaryWriter", tensorflow_full)
    try:
        writer.create_writer(tmp_path, print, lambda step, s: "")
    except OSError as err:
        assert err.errno == errno.ENOSPC and str(tmp_path / "tensorboard") in err.filename
        assert "TensorFlow's traceback" in err.__cause__.library_output
    else:
        raise AssertionError("the full disk was not reported")
