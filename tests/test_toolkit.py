"""The research toolkit end to end: evaluate trained runs, compare them, run the notebook."""

import json
import os

import numpy as np
import pytest

from fvae.report import evaluate_run
from fvae import runs
from fvae.runner import train_and_evaluate
from tests.conftest import REPO
from tests.test_plots import assert_picture
from tests.test_runner import small_config


@pytest.fixture(scope="module")
def two_runs(prepared_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, latents in (("latent8", 8), ("latent2", 2)):
        config = small_config(prepared_data_dir, 2)
        config.model.latents = latents
        train_and_evaluate(config, root / name, log=lambda _: None, progress=False)
    return root


def test_evaluate_run_writes_metrics_report_codes_and_pictures(two_runs):
    for name, latents in (("latent8", 8), ("latent2", 2)):
        evaluate_run(two_runs / name, iwae_samples=(1, 10), limit=300, log=lambda _: None)
        out = two_runs / name / "eval"
        stored = json.loads((out / "metrics.json").read_text())
        assert stored["images"] == 300 and len(stored["kl_per_dimension"]) == latents
        assert 0 <= stored["active_units"] <= latents
        assert stored["iwae_nll_k10"] <= stored["iwae_nll_k1"] + 1.0  # Tighter bound (up to sampling noise).
        assert "iwae_bits_per_dim_k10" not in stored  # Grey-pixel Bernoulli: not a normalized density.
        assert 0.1 < stored["linear_probe_accuracy"] <= 1 and 0.1 < stored["knn5_accuracy"] <= 1
        assert np.load(out / "test_codes.npy").shape == (10_000, latents)
        assert np.load(out / "train_labels.npy").shape == (1000,)
        report = (out / "report.md").read_text()
        pictures = [line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
        expected = {"samples.png", "reconstructions.png", "interpolations.png", "traversals.png", "training_curves.png"}
        expected |= {"manifold.png", "latent_scatter.png"} if latents == 2 else {"latent_pca.png", "latent_tsne.png"}
        assert set(pictures) == expected
        for picture in pictures:
            assert_picture(out / picture)
    with pytest.raises(runs.RunDirError, match="overwrite"):
        evaluate_run(two_runs / "latent2", iwae_samples=(1,), limit=100, log=lambda _: None)


def test_runs_load_as_a_table_with_histories(two_runs):
    table = runs.load_runs(two_runs)
    assert sorted(table["name"]) == ["latent2", "latent8"]
    assert sorted(table["config.model.latents"]) == [2, 8]
    assert table["test_loss"].notna().all()
    history = runs.load_history(table["path"][0], as_frame=True)
    assert list(history["epoch"]) == [1, 2]
    assert list((two_runs / "latent8" / "tensorboard").glob("events.out.tfevents.*"))


def test_compare_runs_notebook_executes(two_runs, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "experiments" / "compare_runs.ipynb", as_version=4)
    monkeypatch.setenv("FVAE_RUNS", str(two_runs))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum(o.output_type == "display_data" for o in outputs) == 2  # Curves and sample grids.
