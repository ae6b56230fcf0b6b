"""Latent samplers: a contract over every registered one (deterministic by seed, a normalized
density or a bound below it, samples like the data, saved and reloaded exactly), the Gaussian
mixture against scikit-learn, and the hierarchical model's decoding through p(z1 | z2)."""

import dataclasses

import jax
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnMixture

from fvae.analysis.samplers import SAMPLERS, FittedSampler, GaussianMixture, fit_sampler, load_sampler, save_sampler
from fvae.errors import DamagedFileError
from tests.helpers import params_equal

CENTRES = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])


def three_clusters(n, seed):
    rng = np.random.default_rng(seed)
    return CENTRES[rng.integers(0, 3, n)] + 0.5 * rng.normal(size=(n, 2))


def small(sampler):
    """A registered sampler at settings that fit in seconds (whichever of these fields it has)."""
    fields = {f.name for f in dataclasses.fields(sampler)}
    # Few steps: a faster rate than the defaults' (the two-stage VAE's gamma needs it to fall in 60 epochs).
    shrink = {"epochs": 60, "hidden": (32, 32), "layers": 4, "components": (1, 3, 5), "batch_size": 100,
              "learning_rate": 3e-3}
    return dataclasses.replace(sampler, **{k: v for k, v in shrink.items() if k in fields})


@pytest.fixture(scope="module", params=sorted(SAMPLERS))
def fitted(request):
    sampler = small(SAMPLERS[request.param])
    train, val = three_clusters(3000, 0), three_clusters(1000, 1)
    params, note = sampler.fit(train, val, seed=0)
    return request.param, sampler, params, note, train


@pytest.mark.slow  # Fits each sampler (about 40 s for the three).
def test_fitting_is_deterministic_by_seed(fitted):
    name, sampler, params, note, train = fitted
    again, again_note = sampler.fit(train, three_clusters(1000, 1), seed=0)
    assert params_equal(params, again) and note == again_note


@pytest.mark.slow  # Fits each sampler (about 40 s for the three).
def test_log_prob_is_a_normalized_density_or_a_bound_below_one(fitted):
    """The integral of exp(log_prob) over a fine grid covering the data: 1 for an exact
    density, at most 1 (up to the grid's error) for a lower bound."""
    name, sampler, params, _, _ = fitted
    x, y = np.meshgrid(np.linspace(-9, 9, 181), np.linspace(-7, 11, 181))
    grid = np.stack([x, y], -1).reshape(-1, 2)
    integral = np.exp(sampler.log_prob(params, grid)).sum() * 0.1 * 0.1
    if sampler.exact_density:
        assert integral == pytest.approx(1, abs=0.01)
    else:
        assert 0.5 < integral < 1.01


@pytest.mark.slow  # Fits each sampler (about 40 s for the three).
def test_samples_look_like_the_data(fitted):
    """Each cluster gets about its third of the samples, and the fitted density is far higher at
    the data than between the clusters."""
    name, sampler, params, _, train = fitted
    samples = np.asarray(sampler.sample(params, jax.random.key(1), 3000))
    nearest = np.argmin(np.linalg.norm(samples[:, None] - CENTRES[None], axis=-1), axis=1)
    assert np.allclose(np.bincount(nearest, minlength=3) / 3000, 1 / 3, atol=0.06)
    # The data's median distance to its centre is 0.59; one Gaussian over all three gives about 2.5.
    assert np.median(np.min(np.linalg.norm(samples[:, None] - CENTRES[None], axis=-1), axis=1)) < 1.5
    at_data, between = sampler.log_prob(params, CENTRES), sampler.log_prob(params, np.array([[0.0, -4.0]]))
    assert np.all(at_data > between + 3)


@pytest.mark.slow  # Fits each sampler (about 40 s for the three).
def test_a_saved_sampler_reloads_to_the_same_samples_and_densities(fitted, tmp_path):
    name, sampler, params, note, _ = fitted
    value = FittedSampler(name, sampler, params, note)
    save_sampler(tmp_path / name, value)
    loaded = load_sampler(tmp_path / name)
    assert loaded.name == name and loaded.sampler == sampler and loaded.note == note
    key, z = jax.random.key(2), three_clusters(50, 3)
    assert np.array_equal(np.asarray(loaded.sample(key, 100)), np.asarray(value.sample(key, 100)))
    assert np.array_equal(np.asarray(value.sample(key, 100)), np.asarray(sampler.sample(params, key, 100)))
    assert np.allclose(loaded.log_prob(z), sampler.log_prob(params, z), rtol=1e-6)
    (tmp_path / name / "params.msgpack").write_bytes(b"edited")
    with pytest.raises(DamagedFileError, match="differ from their recorded SHA-256"):
        load_sampler(tmp_path / name)


def test_fit_sampler_returns_a_value_with_its_fit_recorded(tmp_path, monkeypatch):
    """fit_sampler writes nothing and returns the sampler's own fit with the code counts."""
    monkeypatch.chdir(tmp_path)
    train, val = three_clusters(600, 0), three_clusters(200, 1)
    sampler = GaussianMixture(components=(1, 3, 5))
    value = fit_sampler("gmm", sampler, train, val, seed=0)
    params, note = sampler.fit(train, val, seed=0)
    assert value.name == "gmm" and value.sampler == sampler and params_equal(value.params, params)
    assert {k: value.note[k] for k in note} == note and value.note["components"] == 3
    assert (value.note["training_codes"], value.note["validation_codes"]) == (600, 200)
    assert value.note["seconds_fit"] > 0 and not list(tmp_path.iterdir())


def mixture_codes(n, seed, dim=40, centres=10):
    """Codes like a VAE's aggregate posterior: 40-D, correlated, a mixture of 10 Gaussians."""
    shape = np.random.default_rng(0)
    means, mixing = shape.normal(size=(centres, dim)), shape.normal(size=(centres, dim, dim)) / np.sqrt(dim)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, centres, n)
    return means[which] + np.einsum("nij,nj->ni", mixing[which], rng.normal(size=(n, dim)))


@pytest.mark.slow  # About 35 s.
def test_the_two_stage_vae_learns_correlated_codes_instead_of_collapsing():
    """At its defaults, the second stage's gamma falls well below 1 and its bound beats the
    full-covariance Gaussian by nats. (The settings before Dai and Wipf's skip connections and
    depth, with a constant rate, collapsed here: gamma 1.00, a bound 6 nats below the Gaussian.)"""
    train, val = mixture_codes(20000, 1), mixture_codes(2000, 2)
    sampler = SAMPLERS["two_stage_vae"]
    params, note = sampler.fit(train, val, seed=0)
    gaussian = SklearnMixture(1, covariance_type="full").fit(train).score(val)
    assert note["gamma"] < 0.5
    assert np.mean(sampler.log_prob(params, val)) > gaussian + 3


def test_the_mixture_chooses_its_components_on_validation_codes_and_matches_sklearn():
    train, val = three_clusters(3000, 0), three_clusters(1000, 1)
    mixture = GaussianMixture(components=(1, 2, 3, 4, 50, 60))
    params, note = mixture.fit(train, val, seed=0)
    assert note["components"] == 3 and len(params["weights"]) == 3
    scores = note["val_log_prob_by_components"]
    # It goes on past the best count, and stops at the first count that does not beat it.
    assert scores["3"] > scores["2"] and scores["4"] <= scores["3"] and set(scores) == {"1", "2", "3", "4"}
    reference = SklearnMixture(3, covariance_type="full", random_state=0, reg_covar=1e-6, max_iter=300).fit(train)
    assert np.allclose(mixture.log_prob(params, val), reference.score_samples(val), rtol=1e-10)
