"""The research toolkit end to end: evaluate trained runs, compare them, run the notebook."""

import json
import os

import numpy as np
import pytest

from fvae import errors
from fvae.data import sources
from fvae.run import rundir
from fvae.run.assemble import load_run_state, load_splits, run_keys
from fvae.run.report import evaluate_run
from fvae.run.trainer import train_and_evaluate
from tests.conftest import REPO
from tests.helpers import MOCK_DATA_DIR, MOCK_SIZES, bound_slack, mock_fashion_mnist
from tests.test_plots import assert_picture
from tests.test_runner import small_config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    with mock_fashion_mnist():
        for name, latents in (("latent8", 8), ("latent2", 2)):
            config = small_config(MOCK_DATA_DIR, 2)
            config.model.latents = latents
            train_and_evaluate(config, root / name, log=lambda _: None, progress=False)
    return root


@pytest.fixture
def classifier_dir(mock_data_dir):
    """Where the sample-quality classifier (trained once on the mock training split) is kept:
    the data directory, which under the mock is one temporary folder per test process."""
    return sources.resolve_data_dir(str(mock_data_dir)) / "fvae_classifier"


@pytest.mark.slow
def test_evaluate_run_writes_metrics_report_codes_and_pictures(two_runs, mock_data_dir, classifier_dir):
    for name, latents in (("latent8", 8), ("latent2", 2)):
        evaluate_run(two_runs / name, iwae_samples=(1, 10), limit=300, log=lambda _: None)
        out = two_runs / name / "eval"
        stored = json.loads((out / "metrics.json").read_text())
        assert stored["images"] == 300 and len(stored["kl_per_dimension"]) == latents
        assert 0 <= stored["active_units"] <= latents
        config, state = load_run_state(two_runs / name)
        images = load_splits(config).test.images[:300]
        # The tighter bound, up to Monte Carlo noise measured on the same images.
        assert stored["iwae_nll_k10"] <= stored["iwae_nll_k1"] + bound_slack(state, images, None, 10)
        assert 0 < stored["iwae_nll_k10_stderr"] < 10
        assert "iwae_bits_per_dim_k10" not in stored  # Grey-pixel Bernoulli: not a normalized density.
        # The 10 classes are balanced: a probe of codes without class information (a broken
        # encoder, shuffled labels) scores about 0.10 (+- 0.01 on 1,000 test images).
        assert 0.3 < stored["linear_probe_accuracy"] <= 1 and 0.3 < stored["knn5_accuracy"] <= 1
        # Sample quality: whatever the limit, as many prior samples as there are test images
        # (10,000 for Fashion-MNIST), against them, in the features of the shipped classifier:
        # none is trained.
        assert stored["sample_images"] == MOCK_SIZES["test"] and stored["frechet_distance"] > 0
        assert 0 <= stored["precision"] <= 1 and 0 <= stored["recall"] <= 1
        assert stored["classifier"].startswith("shipped") and "class_conditional_accuracy" not in stored
        assert not classifier_dir.exists()
        assert np.load(out / "test_codes.npy").shape == (MOCK_SIZES["test"], latents)
        assert np.load(out / "train_labels.npy").shape == (1000,)
        report = (out / "report.md").read_text()
        pictures = [line.split("(")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
        expected = {"samples.png", "reconstructions.png", "interpolations.png", "traversals.png", "training_curves.png"}
        expected |= {"manifold.png", "latent_scatter.png"} if latents == 2 else {"latent_pca.png", "latent_tsne.png"}
        assert set(pictures) == expected
        for picture in pictures:
            assert_picture(out / picture)
    with pytest.raises(errors.RunDirError, match="overwrite"):
        evaluate_run(two_runs / "latent2", iwae_samples=(1,), limit=100, log=lambda _: None)


@pytest.mark.slow
def test_runs_load_as_a_table_with_histories(two_runs):
    table = rundir.load_runs(two_runs)
    assert sorted(table["name"]) == ["latent2", "latent8"]
    assert sorted(table["config.model.latents"]) == [2, 8]
    assert table["test_loss"].notna().all()
    history = rundir.load_history(table["path"][0], as_frame=True)
    assert list(history["epoch"]) == [1, 2]
    assert list((two_runs / "latent8" / "tensorboard").glob("events.out.tfevents.*"))


def test_patience_rows_replay_a_recorded_curve_with_its_epoch_times():
    from experiments.patience import patience_rows

    losses = [300, 250, 240, 241, 242, 239, 239.5, 240, 241, 238]
    history = [{"epoch": e, "val_loss": v, "seconds": 6.0 * e} for e, v in enumerate(losses, start=1)]
    short, long = patience_rows(history, [2, 50])
    # Patience 2: epochs 4 and 5 fail to beat 240, so it stops after epoch 5 with epoch 3 best.
    assert (short["epochs trained"], short["best epoch"], short["best val. loss"]) == (5, 3, 240)
    assert short["train min"] == pytest.approx(6.0 * (1 + 2 + 3 + 4 + 5) / 60)
    assert short["train min to best"] == pytest.approx(6.0 * (1 + 2 + 3) / 60)
    assert (long["epochs trained"], long["best epoch"], long["best val. loss"]) == (10, 10, 238)


def test_whole_number_flags_are_parsed_once_for_every_script():
    from experiments.cli import whole_numbers
    from fvae.errors import ConfigError

    assert whole_numbers(["1", "10", "10"], "--k", "1,10") == [1, 10, 10]
    for values, distinct, message in ((["a"], False, "--k takes whole numbers, e.g. 1,10; got a"),
                                      (["0", "5"], False, "--k needs values >= 1"),
                                      ([], False, "--k needs values >= 1"),
                                      (["5", "5"], True, "--k needs distinct values >= 1")):
        with pytest.raises(ConfigError, match=message):
            whole_numbers(values, "--k", "1,10", distinct)


def test_number_list_flags_and_output_files_are_checked_before_any_work(tmp_path, monkeypatch):
    """--temperatures takes positive numbers; an --out file that cannot be written is refused
    at once (as a non-root user in a read-only folder: os.access says no), not after the work."""
    from experiments.cli import check_output_file, positive_numbers
    from fvae.errors import ConfigError

    assert positive_numbers(["0.7", "1"], "--t", "0.7") == [0.7, 1.0] and positive_numbers([], "--t", "0.7") == []
    for values in (["a"], ["0"], ["-1"], ["inf"], ["nan"]):
        with pytest.raises(ConfigError, match="--t takes positive numbers"):
            positive_numbers(values, "--t", "0.7")
    check_output_file(str(tmp_path / "sub" / "out.json"), "--out")  # Writable: its folder is made.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match="--out=.*out.json cannot be written"):
        check_output_file(str(tmp_path / "sub" / "out.json"), "--out")


@pytest.mark.slow
def test_patience_cli_prints_a_row_per_patience_and_refuses_an_untrained_dir(two_runs, tmp_path):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "experiments.patience", "--workdir", str(two_runs / "latent8"),
                          "--patience", "1,5"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 5 |")]
    assert len(rows) == 2 and "2 epochs recorded" in run.stdout
    empty = subprocess.run([sys.executable, "-m", "experiments.patience", "--workdir", str(tmp_path)],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert empty.returncode == 1 and "Traceback" not in empty.stderr and "no recorded epochs" in empty.stderr


@pytest.mark.slow
def test_iwae_metrics_match_a_direct_computation_per_k_and_pair_each_k_with_the_largest(two_runs, mock_data_dir):
    import statistics

    import jax

    from fvae.compute.bounds import iwae_log_likelihoods
    from fvae.run.assemble import model_inputs, run_keys
    from fvae.run.report import iwae_metrics

    config, state = load_run_state(two_runs / "latent8")
    inputs = jax.device_put(model_inputs(config, load_splits(config).test.take(100)))
    key = run_keys(config.seed)["eval"]
    metrics = iwae_metrics(state, inputs, key, [1, 4, 16], discrete=False, log=lambda _: None)
    direct = {k: [-float(v) for v in iwae_log_likelihoods(state, inputs, jax.random.fold_in(key, k), num_samples=k)]
              for k in (1, 4, 16)}
    for k, values in direct.items():
        assert metrics[f"iwae_nll_k{k}"] == pytest.approx(statistics.fmean(values), rel=1e-6)
        assert metrics[f"iwae_nll_k{k}_stderr"] == pytest.approx(statistics.stdev(values) / 10, rel=1e-5)
    for k in (1, 4):
        gaps = [a - b for a, b in zip(direct[k], direct[16])]
        assert metrics[f"iwae_nll_k{k}_minus_k16"] == pytest.approx(statistics.fmean(gaps), rel=1e-5, abs=1e-6)
        assert metrics[f"iwae_nll_k{k}_minus_k16_stderr"] == pytest.approx(statistics.stdev(gaps) / 10, rel=1e-5)
    assert "iwae_nll_k16_minus_k16" not in metrics
    assert metrics["iwae_nll_k1_minus_k16"] > 3 * metrics["iwae_nll_k1_minus_k16_stderr"]  # The tighter bound.
    # Each K has its own key: asked alone, K=4 gives the same number.
    alone = iwae_metrics(state, inputs, key, [4], discrete=False, log=lambda _: None)
    assert alone["iwae_nll_k4"] == metrics["iwae_nll_k4"] and not [k for k in alone if "minus" in k]


@pytest.mark.slow
def test_iwae_k_cli_prints_a_row_per_k_writes_json_and_refuses_bad_k(two_runs, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "k.json"
    command = [sys.executable, "-m", "tests.mock_cli", "experiments.iwae_k", "--workdir", str(two_runs / "latent8")]
    run = subprocess.run([*command, "--iwae_samples", "1,8", "--limit", "50", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    stored = json.loads(out.read_text())
    assert stored["images"] == 50 and {"iwae_nll_k1", "iwae_nll_k8", "iwae_nll_k1_minus_k8"} <= set(stored)
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 8 |")]
    assert len(rows) == 2 and f"{stored['iwae_nll_k8']:.2f}" in rows[1]
    before = sorted(p.name for p in (two_runs / "latent8").iterdir())
    for bad, message in ((["--iwae_samples", "0,5"], "distinct values >= 1"),
                         (["--iwae_samples", "a"], "whole numbers"),
                         (["--limit", "1"], "standard error needs two")):
        refused = subprocess.run([*command, *bad], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr and message in refused.stderr
    assert sorted(p.name for p in (two_runs / "latent8").iterdir()) == before


@pytest.mark.slow
def test_sample_quality_cli_scores_references_a_run_and_its_sampler(two_runs, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "rows.json"
    run = subprocess.run([sys.executable, "-m", "tests.mock_cli", "experiments.sample_quality", "--runs",
                          str(two_runs / "latent2"), "--samplers=gmm", "--sampler_config.gmm.components=1,2",
                          "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {row["images"]: row for row in json.loads(out.read_text())}
    assert rows["training images"]["frechet_distance"] < rows["uniform noise"]["frechet_distance"]
    assert rows["prior samples of latent2"]["sample_images"] == MOCK_SIZES["test"]
    gmm = rows["gmm samples of latent2"]
    assert gmm["fit"]["components"] in (1, 2) and gmm["fit"]["training_codes"] == 1000
    assert (two_runs / "latent2" / "samplers" / "gmm" / "fvae_sha256.json").is_file()


@pytest.mark.slow
def test_compare_bounds_pairs_models_on_the_same_images_and_refuses_different_images(two_runs, tmp_path):
    """Each model's bound is its evaluation's figure (same key, same images); the paired
    difference is the difference of the two means, with the standard error of the per-image
    differences; a model that evaluates other images is refused."""
    import shutil
    import subprocess
    import sys

    import jax

    from fvae.run.report import iwae_metrics, iwae_per_image

    out = tmp_path / "compare.json"
    models = f"{two_runs / 'latent8'},{two_runs / 'latent2'}"
    command = [sys.executable, "-m", "tests.mock_cli", "experiments.compare_bounds"]
    run = subprocess.run([*command, "--models", models, "--iwae_samples", "8", "--limit", "60", "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(out.read_text())["models"]
    per_image = []
    with mock_fashion_mnist():
        for name, row in zip(("latent8", "latent2"), rows):
            config, state = load_run_state(two_runs / name)
            inputs = jax.device_put(load_splits(config).test.take(60))
            expected = iwae_metrics(state, inputs, run_keys(config.seed)["eval"], (8,), False, log=lambda _: None)
            assert row["iwae_nll"] == pytest.approx(expected["iwae_nll_k8"], rel=1e-12)
            assert row["iwae_nll_stderr"] == pytest.approx(expected["iwae_nll_k8_stderr"], rel=1e-9)
            per_image.append(iwae_per_image(state, inputs, run_keys(config.seed)["eval"], 8))
    gap = per_image[1] - per_image[0]
    assert rows[0]["minus_first"] == 0 and rows[0]["minus_first_stderr"] == 0
    assert rows[1]["minus_first"] == pytest.approx(rows[1]["iwae_nll"] - rows[0]["iwae_nll"], abs=1e-9)
    assert rows[1]["minus_first_stderr"] == pytest.approx(np.std(gap, ddof=1) / np.sqrt(60), rel=1e-9)
    other = tmp_path / "binarized"
    shutil.copytree(two_runs / "latent2", other)
    config = json.loads((other / "config.json").read_text())
    config["likelihood"]["name"] = "binarized_bernoulli"  # The same network; binarized test images.
    (other / "config.json").write_text(json.dumps(config))
    refused = subprocess.run([*command, "--models", f"{two_runs / 'latent8'},{other}", "--iwae_samples", "2",
                              "--limit", "60"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "evaluates other test images" in refused.stderr


@pytest.mark.slow
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


@pytest.mark.slow
def test_evaluation_with_samplers_reads_the_data_once_and_keeps_the_fitted_samplers(two_runs, mock_data_dir,
                                                                                    tmp_path, monkeypatch):
    """One read of the stored splits serves the likelihoods, the codes, the samplers' fit and
    the sample scores; the fitted samplers are kept beside the run and drawn again from there."""
    from fvae.data import arrays
    from fvae.run.generation import chosen_samplers, sample_grid

    reads = []
    real = arrays.load_split
    monkeypatch.setattr(arrays, "load_split", lambda folder, split: reads.append(split) or real(folder, split))
    samplers = chosen_samplers(["gmm", "realnvp"], {"gmm": {"components": [1, 2]}, "realnvp": {"epochs": 2}})
    logged = []
    metrics = evaluate_run(two_runs / "latent8", iwae_samples=(2,), limit=50, samplers=samplers,
                           out=tmp_path / "eval", log=logged.append)
    assert reads == ["train", "test"]
    assert [line for line in logged if line.startswith("Fitting")] == [
        "Fitting the Gaussian mixture to 1000 training codes (8 latents) ...",
        "Fitting the RealNVP flow to 1000 training codes (8 latents) ..."]
    for name in ("gmm", "realnvp"):
        scores = metrics["samplers"][name]
        assert scores["sample_images"] == MOCK_SIZES["test"] and scores["frechet_distance"] > 0
        assert scores["fit"]["sampler"] == name and scores["fit"]["training_codes"] == 1000
        assert "codes" not in scores["fit"] and (two_runs / "latent8" / "samplers" / name / "params.msgpack").is_file()
    assert list(metrics["samplers"]["gmm"]["fit"]["settings"]["components"]) == [1, 2]
    assert_picture(tmp_path / "eval" / "samplers.png")
    grid = sample_grid(two_runs / "latent8", sampler="gmm", num=16, out_dir=tmp_path / "grid",
                       settings={"gmm": {"components": [1, 2]}})
    assert_picture(grid)  # Drawn from the kept sampler: the settings match, nothing refitted.


@pytest.mark.slow
def test_vampprior_run_evaluates_with_its_own_prior(mock_data_dir, tmp_path, classifier_dir):
    from experiments.configs import vampprior_mlp
    from fvae.compute.bounds import iwae_log_likelihoods

    config = small_config(mock_data_dir, 2, base=vampprior_mlp)
    config.prior.components, config.train.batch_size, config.train.max_train_minutes = 20, 100, 0.0
    train_and_evaluate(config, tmp_path / "run", log=lambda _: None, progress=False)
    stored = evaluate_run(tmp_path / "run", iwae_samples=(1, 10), limit=200, log=lambda _: None)
    assert stored["likelihood"] == "binarized_bernoulli" and "iwae_bits_per_dim_k10" in stored
    _, state = load_run_state(tmp_path / "run")
    images = load_splits(config).test.images[:200]
    assert stored["iwae_nll_k10"] <= stored["iwae_nll_k1"] + bound_slack(state, images, None, 10)
    # The VampPrior's log p(z) is used: scoring the same samples under N(0, I) gives other numbers.
    import jax

    from fvae.models.gaussians import log_standard_normal

    vamp = float(-iwae_log_likelihoods(state, images, jax.random.key(0), 10, 100, 10).mean())
    standard = state.replace(apply_fn=_with_standard_normal_prior(state.apply_fn, log_standard_normal))
    other = float(-iwae_log_likelihoods(standard, images, jax.random.key(0), 10, 100, 10).mean())
    assert abs(vamp - stored["iwae_nll_k10"]) < 5 and abs(vamp - other) > 0.01
    for picture in ("samples.png", "reconstructions.png"):
        assert_picture(tmp_path / "run" / "eval" / picture)


def _with_standard_normal_prior(apply_fn, log_prior):
    """The model's apply with its prior density replaced by `log_prior`, in the VAEOutput too."""
    def apply(variables, *args, method=None, **kwargs):
        if method == "log_prior":
            return log_prior(args[0])
        out = apply_fn(variables, *args, method=method, **kwargs)
        return out.replace(log_prior=log_prior(out.z)) if method is None else out
    return apply


@pytest.mark.slow
def test_hierarchical_vampprior_run_trains_and_evaluates_like_any_model(mock_data_dir, tmp_path, classifier_dir):
    """The two-layer VAE goes through the same runner, IWAE evaluation, probes and pictures."""
    from experiments.configs import hierarchical_vampprior

    config = small_config(mock_data_dir, 2, base=hierarchical_vampprior)
    config.model.top_latents, config.prior.components, config.train.batch_size = 4, 20, 100
    config.objective.warmup_epochs, config.train.max_train_minutes = 0, 0.0
    summary = train_and_evaluate(config, tmp_path / "run", log=lambda _: None, progress=False)
    assert summary["test_loss"] == pytest.approx(summary["test_reconstruction"] + summary["test_kl"])
    stored = evaluate_run(tmp_path / "run", iwae_samples=(1, 10), limit=200, log=lambda _: None)
    assert len(stored["kl_per_dimension"]) == stored["latents"] == 8 + 4  # Both layers' codes.
    assert 0 <= stored["active_units"] <= 12
    assert (tmp_path / "run" / "eval" / "latent_pca.png").is_file()  # 12-D codes: no 2-D manifold.
    _, state = load_run_state(tmp_path / "run")
    images = load_splits(config).test.images[:200]
    assert stored["iwae_nll_k10"] <= stored["iwae_nll_k1"] + bound_slack(state, images, None, 10)
    assert 0.3 < stored["linear_probe_accuracy"] <= 1
    for picture in ("samples.png", "reconstructions.png", "interpolations.png", "traversals.png"):
        assert_picture(tmp_path / "run" / "eval" / picture)


@pytest.mark.slow
def test_conditional_run_reports_the_classifiers_accuracy_on_its_class_conditional_samples(mock_data_dir, tmp_path):
    """The labels reach the samples: a classifier recognises the class each sample was drawn for
    (about 0.1 if the labels were ignored or shuffled; 0.38 measured for this small model after 15
    epochs on 1,000 mock images). The classifier, retrained on the mock data when asked to, is
    kept in the data directory."""
    from experiments.configs import conditional

    config = small_config(mock_data_dir, 15, base=conditional)
    config.objective.warmup_epochs, config.train.max_train_minutes = 0, 0.0
    train_and_evaluate(config, tmp_path / "run", log=lambda _: None, progress=False)
    stored = evaluate_run(tmp_path / "run", iwae_samples=(1,), limit=500, retrain_classifier=True, log=lambda _: None)
    assert stored["classifier"].startswith("retrained") and stored["classifier_test_accuracy"] > 0.9
    assert stored["class_conditional_accuracy"] > 0.25 and stored["frechet_distance"] > 0
    from fvae.data import sources
    assert list((sources.resolve_data_dir(config.data.data_dir) / "fvae_classifier").glob("*.msgpack"))
