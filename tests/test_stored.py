"""Stored models: exported once, loaded in one call, evaluated without their run directory to
the same numbers, and checked against their digests; the ones in results/models reproduce
their stored evaluation. Latent samplers fitted for a model are kept beside it."""

import json

import jax
import numpy as np
import pytest

import fvae
from fvae import errors
from fvae.analysis.samplers import SAMPLERS, load_sampler
from fvae.compute.bounds import evaluate_bound
from fvae.errors import ConfigError
from fvae.files import verify_digest
from fvae.run import stored
from fvae.run.assemble import load_run_state, load_splits
from fvae.run.generation import chosen_samplers, fit_samplers, fitted_samplers, generated_images
from fvae.run.report import evaluate_run
from fvae.run.trainer import train_and_evaluate
from tests.conftest import REPO
from tests.helpers import params_equal
from tests.test_runner import small_config

STORED_MODELS = sorted(p for p in (REPO / "results" / "models").glob("*") if p.is_dir())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tests.helpers import MOCK_DATA_DIR, mock_fashion_mnist

    root = tmp_path_factory.mktemp("stored")
    with mock_fashion_mnist():
        train_and_evaluate(small_config(MOCK_DATA_DIR, 2), root / "run", log=lambda _: None, progress=False)
        stored.export_model(root / "run", root / "model")
    return root


def test_a_stored_model_loads_in_one_call_to_the_runs_parameters(exported):
    model, params = fvae.load_model(exported / "model")
    _, state = load_run_state(exported / "run")
    assert params_equal(params, state.params)
    images = np.load(exported / "model" / stored.REFERENCE_IMAGES)
    out = model.apply({"params": params}, images / 255.0, jax.random.key(0))
    assert out.log_weights.shape == (1, stored.REFERENCE_COUNT)
    reference = json.loads((exported / "model" / stored.REFERENCE_FILE).read_text())
    assert float(evaluate_bound(state, images, jax.random.key(0))["loss"]) == reference["negative_elbo"]


def test_a_stored_model_is_written_once_and_checked_when_loaded(exported, tmp_path):
    with pytest.raises(errors.RunDirError, match="written once"):
        stored.export_model(exported / "run", exported / "model")
    copy = tmp_path / "copy"
    import shutil
    shutil.copytree(exported / "model", copy)
    data = bytearray((copy / stored.PARAMS_FILE).read_bytes())
    data[-1] ^= 1
    (copy / stored.PARAMS_FILE).write_bytes(bytes(data))
    with pytest.raises(errors.DamagedFileError, match="params.msgpack"):
        fvae.load_model(copy)
    with pytest.raises(errors.RunDirError, match="holds no stored model"):
        fvae.load_model(tmp_path)
    # A config edited to another shape (its digest recomputed, as by hand) is named, not a Flax traceback.
    edited = tmp_path / "edited"
    shutil.copytree(exported / "model", edited)
    config = json.loads((edited / "config.json").read_text())
    config["model"]["latents"] += 1
    (edited / "config.json").write_text(json.dumps(config))
    from fvae.files import write_digest
    (edited / "fvae_sha256.json").unlink()
    write_digest(edited)
    with pytest.raises(errors.DamagedFileError, match="does not fit .*config.json .*latents|does not fit"):
        fvae.load_model(edited)


@pytest.mark.slow
def test_evaluating_the_stored_model_gives_the_runs_numbers(exported, mock_data_dir, tmp_path):
    with pytest.raises(errors.ConfigError, match="--out"):
        evaluate_run(exported / "model", iwae_samples=(10,), limit=100, log=lambda _: None)
    from_model = evaluate_run(exported / "model", iwae_samples=(10,), limit=100, out=tmp_path / "eval",
                              log=lambda _: None)
    from_run = evaluate_run(exported / "run", iwae_samples=(10,), limit=100, log=lambda _: None)
    for key in ("iwae_nll_k10", "elbo_loss", "frechet_distance", "precision", "recall"):
        assert from_model[key] == from_run[key], key
    assert (tmp_path / "eval" / "report.md").is_file() and "training_curves.png" not in from_model


@pytest.mark.slow
def test_samplers_are_fitted_once_kept_beside_the_model_and_drawn_through_the_decoder(exported, mock_data_dir):
    config, state = stored.load_trained(exported / "model")
    logged = []
    gmm = SAMPLERS["gmm"]
    fitted = fitted_samplers(exported / "model", config, state, {"gmm": gmm}, log=logged.append)["gmm"]
    assert (exported / "model" / "samplers" / "gmm" / "fvae_sha256.json").is_file() and len(logged) == 1
    assert fitted.note["training_codes"] == 1000 and fitted.note["components"] >= 1
    again = fitted_samplers(exported / "model", config, state, {"gmm": gmm}, log=logged.append)["gmm"]
    assert len(logged) == 1 and params_equal(again.params, fitted.params)  # Reloaded, not refitted.
    # The value computed without any file is the one that was saved.
    value = fit_samplers(state, config, load_splits(config), {"gmm": gmm}, log=lambda _: None)["gmm"]
    assert params_equal(value.params, fitted.params) and value.note["components"] == fitted.note["components"]
    verify_digest(exported / "model")  # The model's own files are untouched.
    key = jax.random.key(3)
    images = generated_images(state, config, key, 1500, again)
    assert images.shape == (1500, 784) and 0 <= images.min() and images.max() <= 1
    assert np.array_equal(images, generated_images(state, config, key, 1500, fitted))
    other = chosen_samplers(["gmm"], {"gmm": {"max_iter": 7}})  # Other settings: refused, not refitted.
    with pytest.raises(ConfigError, match="other settings than asked: max_iter 7 \\(it has 300\\)"):
        fitted_samplers(exported / "model", config, state, other, log=logged.append)
    assert len(logged) == 1 and params_equal(load_sampler(exported / "model" / "samplers" / "gmm").params,
                                             fitted.params)


@pytest.mark.parametrize("path", STORED_MODELS, ids=[p.name for p in STORED_MODELS])
def test_the_models_in_the_repository_match_their_digests_and_stored_evaluation(path):
    """Within 1e-5 (relative) on any CPU: float32 sums differ in their last bits across CPU types."""
    config, state = stored.load_stored(path)
    reference = json.loads((path / stored.REFERENCE_FILE).read_text())
    loss = stored.reference_loss(state, np.load(path / stored.REFERENCE_IMAGES))
    assert loss == pytest.approx(reference["negative_elbo"], rel=1e-5)
    assert sum(f.stat().st_size for p in STORED_MODELS for f in p.rglob("*") if f.is_file()) <= 40e6


def test_the_stored_models_are_in_the_repository():
    """The three headline models, each with its fitted samplers."""
    assert {"gated_vae", "gated_vampprior", "gated_hierarchical_vampprior"} <= {p.name for p in STORED_MODELS}
    for path in STORED_MODELS:
        assert {"gmm", "two_stage_vae", "realnvp"} <= {p.name for p in (path / "samplers").iterdir()}
