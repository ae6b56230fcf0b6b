"""experiments.sweep and experiments.sample end to end on tiny runs of the model family."""

import subprocess
import sys

import pytest

from fvae import data, sweep
from fvae.report import sample_run
from tests.conftest import REPO
from tests.test_plots import assert_picture

TINY = ["data.train_subset=600", "data.val_size=300", "train.max_epochs=1", "train.batch_size=100",
        "model.encoder_hidden=(32,)", "model.decoder_hidden=(32,)", "output.num_samples=10",
        "output.num_reconstructions=8"]


@pytest.fixture(scope="module")
def sweep_dir(prepared_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    overrides = TINY + [f"data.data_dir={prepared_data_dir}"]
    rows = [sweep.run_one(name, root, overrides, iwae_samples=10, eval_images=100, log=lambda _: None)
            for name in ("conditional", "binarized_mlp", "discretized_logistic")]
    (root / "results.md").write_text(sweep.markdown_table(rows, 10, 100))
    return root, rows


def test_sweep_writes_one_row_per_config_with_bits_only_where_defined(sweep_dir):
    root, rows = sweep_dir
    table = (root / "results.md").read_text()
    assert [row["config"] for row in rows] == ["conditional", "binarized_mlp", "discretized_logistic"]
    assert rows[0]["bits/dim"] is None and rows[1]["bits/dim"] > 0 and rows[2]["bits/dim"] > 0
    for row in rows:
        assert row["test -log p(x), nats"] <= row["neg. ELBO"] + 2.0  # IWAE is the tighter bound (up to noise).
        assert row["epochs (best/trained)"] == "1/1"
        assert f"| {row['config']} | {row['likelihood']} |" in table
    # The binarized model is evaluated on binary test images: its -log p(x) is a real mass.
    assert rows[1]["test -log p(x), nats"] > 0


def test_sweep_rejects_unknown_configs_and_bad_overrides():
    with pytest.raises(ValueError, match="no config 'nope'"):
        sweep.load_config("nope", [])
    with pytest.raises(ValueError, match="key=value"):
        sweep.load_config("default", ["train.batch_size"])


def test_conditional_run_reports_class_grids(sweep_dir):
    root, _ = sweep_dir
    assert_picture(root / "conditional" / "eval" / "class_conditional.png")


@pytest.mark.parametrize("label", ["Dress", "dress", "3", "ankle boot", "T-shirt"])
def test_sample_accepts_class_names_and_indices(sweep_dir, label):
    root, _ = sweep_dir
    path = sample_run(root / "conditional", label, num=12)
    assert path.parent == root / "conditional" / "samples"
    assert_picture(path)


def test_sample_cli_rejects_bad_labels_clearly(sweep_dir):
    root, _ = sweep_dir
    for args, message in ((["--label", "Sweater"], "unknown class 'Sweater'"),
                          (["--label", "12"], "unknown class '12'")):
        result = subprocess.run([sys.executable, "-m", "experiments.sample", "--workdir", str(root / "conditional"),
                                 *args], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert "3=Dress" in result.stderr
    with pytest.raises(ValueError, match="not a conditional VAE"):
        sample_run(root / "binarized_mlp", "Dress")


def test_parse_label():
    assert data.parse_label("Ankle boot") == 9 and data.parse_label("top") == 0 and data.parse_label(8) == 8
    with pytest.raises(ValueError):
        data.parse_label("")
