"""The registry contract of priors (fvae.models.priors): each registered prior, inside a VAE with two
latents, is a normalized density (a grid integral), its samples follow that density (their
moments against the grid's), and the VAE's KL term agrees with a Monte Carlo average of
log q(z|x) - log p(z). A newly registered prior is covered without new test code."""

import functools

import jax
import numpy as np
import pytest

from fvae.models import build_model
from fvae.models.priors import PRIORS
from fvae.run.config import defaults, validate


def two_latent_model(prior: str):
    config = defaults()
    config.model.encoder_hidden, config.model.decoder_hidden, config.model.latents = (16,), (16,), 2
    config.prior.name, config.prior.components = prior, 4
    validate(config)
    model = build_model(config)
    x = jax.random.uniform(jax.random.key(0), (4, 784))
    return model, model.init(jax.random.key(1), x, jax.random.key(2)), x


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_every_prior_is_normalized_and_its_samples_follow_it(prior):
    model, variables, _ = two_latent_model(prior)
    axis = np.linspace(-8.0, 8.0, 401)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_prior = jax.jit(functools.partial(model.apply, method="log_prior"))  # Compiled whole: op by op is slower.
    density = np.exp(np.asarray(log_prior(variables, grid.astype(np.float32)), np.float64))
    cell = (axis[1] - axis[0]) ** 2
    np.testing.assert_allclose(density.sum() * cell, 1.0, atol=1e-3)
    mean = (density[:, None] * grid).sum(0) * cell
    variance = (density[:, None] * (grid - mean) ** 2).sum(0) * cell
    n = 20_000
    sample_prior = jax.jit(functools.partial(model.apply, method="sample_prior"), static_argnums=2)
    samples = np.asarray(sample_prior(variables, jax.random.key(3), n), np.float64)
    assert (np.abs(samples.mean(0) - mean) < 5 * np.sqrt(variance / n)).all()
    np.testing.assert_allclose(samples.var(0), variance, rtol=0.05)


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_the_kl_term_is_the_monte_carlo_mean_of_the_log_density_ratio(prior):
    model, variables, x = two_latent_model(prior)
    k = 4000
    out = model.apply(variables, x, jax.random.key(4), None, k)
    ratio = np.asarray(out.log_posterior - out.log_prior, np.float64)  # (K, B)
    stderr = ratio.std(0) / np.sqrt(k)
    assert (np.abs(ratio.mean(0) - np.asarray(out.kl, np.float64)) < 5 * stderr + 1e-5).all()
    if PRIORS[prior].analytic_kl:  # Then the per-latent terms are that KL's parts.
        np.testing.assert_allclose(np.asarray(out.kl_per_latent).sum(-1), out.kl, rtol=1e-5)
