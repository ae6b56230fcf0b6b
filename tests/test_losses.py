import jax
import jax.numpy as jnp
import numpy as np

from fvae.models import VAEOutput
from fvae.models.gaussians import kl_per_dimension, kl_standard_normal, log_normal_diag, log_standard_normal
from fvae.models.losses import Objective, iwae_bound


def test_kl_matches_monte_carlo_estimate():
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(3, 4))
    logvar = rng.normal(scale=0.5, size=(3, 4))
    std = np.exp(0.5 * logvar)
    z = mean + std * rng.standard_normal(size=(400_000, 3, 4))
    log_q = -0.5 * (((z - mean) / std) ** 2 + logvar + np.log(2 * np.pi))
    log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
    monte_carlo = (log_q - log_p).sum(axis=-1).mean(axis=0)
    got = kl_standard_normal(jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32))
    np.testing.assert_allclose(got, monte_carlo, atol=0.02)


def test_kl_is_zero_at_the_prior():
    assert float(jnp.abs(kl_standard_normal(jnp.zeros((2, 7)), jnp.zeros((2, 7)))).max()) == 0.0


def model_output(k=1, seed=0, mean=None):
    """A VAEOutput with random values (K samples, batch 8, 6 latents), its fields computed here
    from a posterior mean and log-variance."""
    keys = jax.random.split(jax.random.key(seed), 4)
    random_mean, logvar = jax.random.normal(keys[0], (2, 8, 6))
    mean = random_mean if mean is None else mean
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(keys[1], (k, 8, 6))
    return VAEOutput(log_likelihood=-200 + 10 * jax.random.normal(keys[2], (k, 8)), log_prior=log_standard_normal(z),
                     log_posterior=log_normal_diag(z, mean, logvar), kl=kl_standard_normal(mean, logvar),
                     kl_per_latent=kl_per_dimension(mean, logvar), codes=mean, z=z,
                     likelihood_params=jnp.zeros((k, 8, 784, 1)))


def test_plain_objective_is_the_negative_elbo():
    out = model_output()
    terms = Objective().loss(out, jnp.asarray(0))
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + terms["kl"], rtol=1e-6)
    np.testing.assert_allclose(terms["reconstruction"], -out.log_likelihood.mean(), rtol=1e-6)
    np.testing.assert_allclose(terms["kl"], out.kl.mean(), rtol=1e-6)


def test_beta_and_warmup_weight_the_kl_and_report_the_true_terms():
    out = model_output()
    plain = Objective().loss(out, jnp.asarray(0))
    beta = Objective(beta=4.0).loss(out, jnp.asarray(0))
    np.testing.assert_allclose(beta["loss"], plain["reconstruction"] + 4.0 * plain["kl"], rtol=1e-6)
    assert float(beta["kl"]) == float(plain["kl"])
    warmup = Objective(beta=2.0, warmup_steps=100)
    for step, weight in ((0, 0.0), (25, 0.5), (100, 2.0), (1000, 2.0)):
        np.testing.assert_allclose(warmup.loss(out, jnp.asarray(step))["loss"],
                                   plain["reconstruction"] + weight * plain["kl"], rtol=1e-6)


def test_free_bits_floor_each_latents_batch_mean_kl():
    out = model_output()
    per_dim = np.asarray(out.kl_per_latent).mean(axis=0)
    floor = float(np.median(per_dim))
    terms = Objective(free_bits=floor).loss(out, jnp.asarray(0))
    expected = -float(out.log_likelihood.mean()) + np.maximum(per_dim, floor).sum()
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-6)
    # Latents below the floor get no gradient from the KL term.
    grad = jax.grad(lambda m: Objective(free_bits=floor).loss(model_output(mean=m), jnp.asarray(0))["loss"])(out.codes)
    below = per_dim < floor
    assert float(jnp.abs(grad[:, below]).max()) == 0.0 and float(jnp.abs(grad[:, ~below]).max()) > 0


def test_iwae_objective_is_the_log_mean_weight_and_bounds_the_elbo():
    out = model_output(k=50)
    log_w = np.asarray(out.log_likelihood + out.log_prior - out.log_posterior, np.float64)
    expected = -np.mean(np.log(np.mean(np.exp(log_w - log_w.max(0)), axis=0)) + log_w.max(0))
    terms = Objective(iwae_samples=50).loss(out, jnp.asarray(0))
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(iwae_bound(jnp.asarray(log_w[:1])), log_w[0], rtol=1e-6)  # K=1: the ELBO integrand
    assert float(terms["loss"]) <= -float(np.mean(log_w)) + 1e-4  # Jensen: the IWAE bound is at least the ELBO.
