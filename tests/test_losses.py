import jax
import jax.numpy as jnp
import numpy as np

from fvae.losses import bernoulli_reconstruction, kl_standard_normal, negative_elbo


def test_bernoulli_reconstruction_matches_direct_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(5, 784))
    x = rng.uniform(size=(5, 784))
    x[:, :10] = 0.0
    x[:, 10:20] = 1.0
    p = 1.0 / (1.0 + np.exp(-logits))
    direct = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)
    got = bernoulli_reconstruction(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, direct, rtol=1e-5)


def test_bernoulli_reconstruction_is_stable_for_large_logits():
    logits = jnp.array([[80.0, -80.0]])
    got = bernoulli_reconstruction(logits, jnp.array([[1.0, 0.0]]))
    assert np.isfinite(got).all() and float(got[0]) < 1e-6
    wrong = bernoulli_reconstruction(logits, jnp.array([[0.0, 1.0]]))
    np.testing.assert_allclose(wrong, [160.0], rtol=1e-5)


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


def test_negative_elbo_is_the_mean_of_its_parts():
    key1, key2, key3 = jax.random.split(jax.random.key(0), 3)
    logits = jax.random.normal(key1, (8, 784))
    x = jax.random.uniform(key2, (8, 784))
    mean, logvar = jax.random.normal(key3, (2, 8, 20))
    terms = negative_elbo(logits, x, mean, logvar)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + terms["kl"], rtol=1e-6)
    np.testing.assert_allclose(terms["reconstruction"], bernoulli_reconstruction(logits, x).mean(), rtol=1e-6)
    np.testing.assert_allclose(terms["kl"], kl_standard_normal(mean, logvar).mean(), rtol=1e-6)
