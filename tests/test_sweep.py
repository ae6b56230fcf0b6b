"""experiments.sweep and experiments.sample end to end on tiny runs of the model family."""

import subprocess
import sys

import numpy as np
import pytest

from experiments import configs
from fvae import data, files
from fvae.run import report, rundir, table
from fvae.run.assemble import load_run_state
from fvae.run.generation import sample_grid
from tests.conftest import REPO
from tests.helpers import MOCK_DATA_DIR, bound_slack, mock_fashion_mnist
from tests.test_plots import assert_picture

TINY = {"data.train_subset": 600, "data.val_size": 300, "train.max_epochs": 1, "train.batch_size": 100,
        "model.encoder_hidden": (32,), "model.decoder_hidden": (32,), "output.num_samples": 10,
        "output.num_reconstructions": 8}
TINY_FLAGS = [f"--config.{key}={value}".replace(" ", "") for key, value in TINY.items()]


NAMES = ("conditional", "binarized_mlp", "discretized_logistic")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    overrides = {**TINY, "data.data_dir": str(MOCK_DATA_DIR)}
    evaluated = []  # (images, labels) that each run's IWAE evaluation really scored

    def recording(state, dataset, key, *args, **kwargs):
        evaluated.append((np.asarray(dataset.images), None if dataset.labels is None else np.asarray(dataset.labels)))
        return real(state, dataset, key, *args, **kwargs)

    real = report.iwae_log_likelihoods
    with pytest.MonkeyPatch.context() as patch, mock_fashion_mnist():
        patch.setattr(report, "iwae_log_likelihoods", recording)
        rows = [table.run_one(name, configs.load(name, overrides), root, iwae_samples=10, eval_images=100,
                              log=lambda _: None) for name in NAMES]
    (root / "results.md").write_text(table.markdown_table(rows, 10, 100))
    return root, rows, dict(zip(NAMES, evaluated))


@pytest.mark.slow
def test_sweep_writes_one_row_per_config_with_bits_only_where_defined(sweep_dir):
    root, rows, evaluated = sweep_dir
    table = (root / "results.md").read_text()
    assert [row["config"] for row in rows] == list(NAMES)
    assert rows[0]["bits/dim"] is None and rows[1]["bits/dim"] > 0 and rows[2]["bits/dim"] > 0
    for row in rows:
        _, state = load_run_state(root / row["config"])
        images, labels = evaluated[row["config"]]
        # IWAE is the tighter bound, up to Monte Carlo noise measured on the same images.
        assert row["test -log p(x), nats"] <= row["neg. ELBO"] + bound_slack(state, images, labels, 10)
        assert row["epochs (best/trained)"] == "1/1"
        assert f"| {row['config']} | {row['likelihood']} |" in table


@pytest.mark.slow
def test_binarized_model_is_evaluated_on_the_fixed_binarization_of_the_test_images(sweep_dir, mock_data_dir):
    root, _, evaluated = sweep_dir
    images, _ = evaluated["binarized_mlp"]
    config = rundir.load_config(root / "binarized_mlp")
    raw = data.load(mock_data_dir, val_size=config.data.val_size, seed=config.seed).test.images[:100]
    assert images.shape == (100, 784) and set(np.unique(images)) == {0, 255}
    expected = data.binarize_fixed(raw, [config.likelihood.eval_binarization_seed, 2])
    np.testing.assert_array_equal(images, expected)
    assert abs(images.mean() - raw.mean()) < 2.0  # Each pixel is 255 with probability intensity / 255.


def test_sweep_rejects_unknown_configs_and_keys():
    with pytest.raises(ValueError, match="no config 'nope'"):
        configs.load("nope")
    with pytest.raises(ValueError, match="unknown config key 'train.batchsize'"):
        configs.load("default", {"train.batchsize": 3})


@pytest.mark.slow
def test_conditional_run_reports_class_grids(sweep_dir):
    root, _, _ = sweep_dir
    assert_picture(root / "conditional" / "eval" / "class_conditional.png")


@pytest.mark.slow
@pytest.mark.parametrize("label", ["Dress", "dress", "3", "ankle boot", "T-shirt"])
def test_sample_accepts_class_names_and_indices(sweep_dir, label):
    root, _, _ = sweep_dir
    path = sample_grid(root / "conditional", label, num=12)
    assert path.parent == root / "conditional" / "samples"
    assert_picture(path)


@pytest.mark.slow
def test_sample_cli_rejects_bad_labels_clearly(sweep_dir):
    root, _, _ = sweep_dir
    for args, message in ((["--label", "Sweater"], "unknown class 'Sweater'"),
                          (["--label", "12"], "unknown class '12'")):
        result = subprocess.run([sys.executable, "-m", "experiments.sample", "--workdir", str(root / "conditional"),
                                 *args], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert "3=Dress" in result.stderr
    with pytest.raises(ValueError, match="not a conditional VAE"):
        sample_grid(root / "binarized_mlp", "Dress")


def test_parse_label():
    assert data.parse_label("Ankle boot") == 9 and data.parse_label("top") == 0 and data.parse_label(8) == 8
    with pytest.raises(ValueError):
        data.parse_label("")


@pytest.mark.slow
def test_sweep_cli_parses_tuple_overrides_and_names_unknown_keys(tmp_path):
    result = subprocess.run([sys.executable, "-m", "experiments.sweep", "--configs", "default", "--workdir",
                             str(tmp_path / "sweep"), "--config.model.encoder_hidden=(512,256)",
                             "--config.train.max_epoch=3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    # The typo stops the sweep with one line, before any training.
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unknown config key 'train.max_epoch'; nearest valid keys: train.max_epochs" in result.stderr
    assert not (tmp_path / "sweep" / "default").exists()


@pytest.mark.slow
def test_sweep_labels_make_an_ablation_table_one_call_per_row(tmp_path):
    common = [sys.executable, "-m", "tests.mock_cli", "experiments.sweep", "--workdir", str(tmp_path), *TINY_FLAGS,
              f"--config.data.data_dir={MOCK_DATA_DIR}", "--iwae_samples", "5", "--eval_images", "100",
              "--configs", "gated_vae"]
    for extra in ([], ["--label", "relu", "--config.model.gated=False", "--config.train.lr_schedule=constant"]):
        result = subprocess.run([*common, *extra], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    rows = files.read_json(tmp_path / "results.json")
    assert [row["config"] for row in rows] == ["gated_vae", "relu"]
    gated, relu = (rundir.load_config(tmp_path / label) for label in ("gated_vae", "relu"))
    assert gated.model.gated and gated.train.lr_schedule == "cosine" and gated.train.max_epochs == 1
    assert not relu.model.gated and relu.train.lr_schedule == "constant" and relu.train.max_epochs == 1
    assert all(row["sample Frechet distance"] > 0 and row["train min to best"] > 0 for row in rows)
    assert "| gated_vae | binarized_bernoulli |" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [(["--configs", "a,b", "--label", "x"], "names the run of a single config"),
                                           (["--configs", "gated_vae", "--label", "a/b"], "without '/'"),
                                           (["--configs", "nope"], "no config 'nope'"),
                                           ([], "nothing to run"),
                                           (["--config", "default"], "sweep runs the configs of --configs")])
def test_sweep_cli_rejects_bad_arguments_before_training(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "experiments.sweep", "--workdir", str(tmp_path / "sweep"), *args],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr and message in result.stderr
    assert not (tmp_path / "sweep").exists()
