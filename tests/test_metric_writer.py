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
