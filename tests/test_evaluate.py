import jax
import jax.numpy as jnp
import numpy as np

from fvae.compute import bounds
from fvae.compute.bounds import (
    active_units,
    dataset_codes,
    eval_step,
    evaluate_bound,
    importance_weighted_log_likelihood,
    iwae_nll,
    latent_statistics,
    reconstruct,
)
from fvae.compute.decoding import decode_top_samples, generate, posterior_top_samples
from fvae.models.gaussians import reparameterize
from tests.helpers import fake_images, new_state


def test_evaluate_counts_every_image_once_despite_padding():
    state, images, key = new_state(), jnp.asarray(fake_images(250)), jax.random.key(5)
    got = evaluate_bound(state, images, key, batch_size=100)
    # Independent computation: batch i (with key fold_in(key, i)) weighted by its size.
    sizes = [100, 100, 50]
    parts = [eval_step(state, images[i * 100:i * 100 + s], jax.random.fold_in(key, i)) for i, s in enumerate(sizes)]
    for name in ("loss", "reconstruction", "kl"):
        expected = sum(float(p[name]) * s for p, s in zip(parts, sizes)) / 250
        np.testing.assert_allclose(float(got[name]), expected, rtol=1e-5)


def test_evaluate_is_deterministic_for_a_key():
    state, images = new_state(), jnp.asarray(fake_images(300))
    a = evaluate_bound(state, images, jax.random.key(0), batch_size=128)
    b = evaluate_bound(state, images, jax.random.key(0), batch_size=128)
    assert float(a["loss"]) == float(b["loss"])


def numpy_decoder_means(params, z: np.ndarray) -> np.ndarray:
    """sigmoid of the small model's decoder (one ReLU layer), written out in float64."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["decoder"])
    h = np.maximum(z @ p["hidden_0"]["kernel"] + p["hidden_0"]["bias"], 0)
    return 1 / (1 + np.exp(-(h @ p["logits"]["kernel"] + p["logits"]["bias"])))


def test_reconstruct_and_generate_decode_posterior_means_and_prior_samples():
    state = new_state()
    images = fake_images(5)
    recon = reconstruct(state, images)
    samples = generate(state, jax.random.key(0), 7)
    assert recon.shape == (5, 784) and samples.shape == (7, 784)
    # Independent: the encoder's mean (float64 numpy) decoded; the prior draw N(0, I) with the same key.
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), state.params["encoder"])
    h = np.maximum(images / 255.0 @ p["hidden_0"]["kernel"] + p["hidden_0"]["bias"], 0)
    mean = h @ p["mean"]["kernel"] + p["mean"]["bias"]
    np.testing.assert_allclose(recon, numpy_decoder_means(state.params, mean), rtol=1e-4, atol=1e-6)
    z = np.asarray(jax.random.normal(jax.random.key(0), (7, 8)), np.float64)
    np.testing.assert_allclose(samples, numpy_decoder_means(state.params, z), rtol=1e-4, atol=1e-6)


def test_posterior_draws_and_their_decoding_match_direct_computations():
    """posterior_top_samples: image i's draw is mean + sigma * eps with eps from fold_in(key, i),
    whatever the batch size (up to float32 rounding); decode_top_samples of a one-layer VAE
    decodes the draw itself."""
    state = new_state()
    images = fake_images(7)
    key = jax.random.key(4)
    draws = np.asarray(posterior_top_samples(state, images, key, batch_size=3))
    np.testing.assert_allclose(draws, posterior_top_samples(state, images, key, batch_size=1000), rtol=1e-5, atol=1e-6)
    mean, logvar = state.apply_fn({"params": state.params}, images / 255.0, method="encode")
    eps = np.stack([np.asarray(jax.random.normal(jax.random.fold_in(key, i), (1, 8)))[0] for i in range(7)])
    np.testing.assert_allclose(draws, np.asarray(mean) + np.exp(0.5 * np.asarray(logvar)) * eps, rtol=1e-5, atol=1e-6)
    decoded = decode_top_samples(state, jax.random.key(0), jnp.asarray(draws))
    np.testing.assert_allclose(decoded, numpy_decoder_means(state.params, draws.astype(np.float64)), rtol=1e-4,
                               atol=1e-6)


def test_iwae_with_one_sample_is_the_single_sample_elbo():
    state, images, key = new_state(), jnp.asarray(fake_images(6)), jax.random.key(3)
    x = images.astype(jnp.float32) / 255
    mean, logvar = state.apply_fn({"params": state.params}, x, method="encode")
    got = importance_weighted_log_likelihood(
        key, lambda k, c: state.apply_fn({"params": state.params}, x, k, None, c).log_weights, 1, 1)
    # Independent: the same noise, the ELBO integrand written out with numpy.
    eps = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (1, *mean.shape)))[0]
    mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    z = mean + np.exp(0.5 * logvar) * eps
    logits = np.asarray(state.apply_fn({"params": state.params}, jnp.asarray(z, jnp.float32),
                                       method="likelihood_params"), np.float64)[..., 0]
    xn = np.asarray(x, np.float64)
    log_px = np.sum(xn * -np.logaddexp(0, -logits) + (1 - xn) * -np.logaddexp(0, logits), axis=1)
    log_pz = np.sum(-0.5 * z**2 - 0.5 * np.log(2 * np.pi), axis=1)
    log_qz = np.sum(-0.5 * eps**2 - 0.5 * logvar - 0.5 * np.log(2 * np.pi), axis=1)
    np.testing.assert_allclose(got, log_px + log_pz - log_qz, rtol=1e-5)


def test_the_iwae_compiled_with_the_cpus_options_agrees_with_a_plain_jit():
    """_CPU_IWAE_OPTIONS (XNNPACK kept to the matrix products) may change the summation order only."""
    state, images, key = new_state(), jnp.asarray(fake_images(6)), jax.random.key(3)
    plain = jax.jit(bounds._batch_log_likelihoods, static_argnames=("num_samples", "sample_chunk"))
    tuned = bounds._compiled_batch_log_likelihoods("cpu")
    np.testing.assert_allclose(tuned(state, images, None, key, 50, 10), plain(state, images, None, key, 50, 10),
                               rtol=1e-5)


def test_iwae_bound_does_not_decrease_with_k_on_average():
    state, images = new_state(), jnp.asarray(fake_images(50))
    averages = []
    for k in (1, 10, 100):
        estimates = [float(iwae_nll(state, images, jax.random.key(s), num_samples=k, batch_size=50,
                                    sample_chunk=min(k, 10))) for s in range(8)]
        averages.append(np.mean(estimates))
    assert averages[0] > averages[1] > averages[2]  # -log p(x) bound tightens with K.


def linear_gaussian(seed=0):
    """p(z) = N(0, I_2), p(x|z) = N(Wz + b, s^2 I_3); the exact log p(x) and posterior are known."""
    rng = np.random.default_rng(seed)
    w, b, s = rng.normal(size=(3, 2)), rng.normal(size=3), 0.7
    x = rng.normal(size=(4, 3))
    cov = w @ w.T + s**2 * np.eye(3)
    diff = x - b
    exact = -0.5 * (np.einsum("bi,ij,bj->b", diff, np.linalg.inv(cov), diff) + np.linalg.slogdet(cov)[1]
                    + 3 * np.log(2 * np.pi))
    post_cov = np.linalg.inv(np.eye(2) + w.T @ w / s**2)
    post_mean = diff @ w @ post_cov.T / s**2

    def log_likelihood(z):
        resid = jnp.asarray(x, jnp.float32) - (z @ jnp.asarray(w.T, jnp.float32) + jnp.asarray(b, jnp.float32))
        return -0.5 * jnp.sum(resid**2 / s**2 + jnp.log(2 * jnp.pi * s**2), axis=-1)

    return exact, post_mean, np.diag(post_cov), log_likelihood


def test_iwae_converges_to_the_exact_log_likelihood_of_a_linear_gaussian_model():
    exact, post_mean, post_var, log_likelihood = linear_gaussian()
    # A diagonal, widened q: not the posterior, so only many samples make the bound tight.
    mean = jnp.asarray(post_mean + 0.3, jnp.float32)
    logvar = jnp.asarray(np.log(2.0 * post_var) * np.ones((4, 2)), jnp.float32)
    def log_weights(key, chunk):  # Written out here, independently of fvae.models.VAEOutput.
        z = reparameterize(key, mean, logvar, chunk)
        log_q = -0.5 * jnp.sum(jnp.square(z - mean) * jnp.exp(-logvar) + logvar + jnp.log(2 * jnp.pi), axis=-1)
        log_p = -0.5 * jnp.sum(jnp.square(z) + jnp.log(2 * jnp.pi), axis=-1)
        return log_likelihood(z) + log_p - log_q

    one = importance_weighted_log_likelihood(jax.random.key(0), log_weights, 1, 1)
    many = importance_weighted_log_likelihood(jax.random.key(0), log_weights, 20_000, 1000)
    np.testing.assert_allclose(many, exact, atol=0.02)
    assert float(jnp.mean(exact - one)) > 0.05  # K=1 is visibly loose, so the test could fail.


def test_active_units_on_synthetic_codes():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(5000, 5)) * np.array([1.0, 0.3, 0.05, 0.01, 0.0])  # variances 1, .09, .0025, 1e-4, 0
    assert int(active_units(jnp.asarray(codes))) == 2
    assert int(active_units(jnp.asarray(codes), threshold=0.001)) == 3


def test_latent_statistics_match_direct_computations():
    state, images = new_state(), jnp.asarray(fake_images(120))
    stats = latent_statistics(state, images, batch_size=50)
    elbo = evaluate_bound(state, images, jax.random.key(0), batch_size=50)
    np.testing.assert_allclose(float(jnp.sum(stats["kl_per_dimension"])), float(elbo["kl"]), rtol=1e-5)
    direct_mse = np.mean((np.asarray(reconstruct(state, images)) - np.asarray(images) / 255.0) ** 2)
    np.testing.assert_allclose(float(stats["reconstruction_mse"]), direct_mse, rtol=1e-5)
    means = dataset_codes(state, images, batch_size=50)
    assert means.shape == (120, 8)


def test_the_evaluation_metrics_are_numbers_from_functions_that_write_nothing(tmp_path, monkeypatch):
    """fvae.run.report.likelihood_metrics and probe_metrics: called on a state and arrays, they
    return the report's numbers and create no file; the per-latent KL of the diagnostics sums to
    the ELBO's KL term (both in closed form for one Gaussian layer under N(0, I)), and the probes
    score codes that separate the classes perfectly and random ones near chance."""
    from fvae.run.report import likelihood_metrics, probe_metrics

    monkeypatch.chdir(tmp_path)
    state, images = new_state(), fake_images(64)
    metrics = likelihood_metrics(state, jnp.asarray(images), jax.random.key(0), (1, 4), True, (8,), log=lambda _: None)
    assert list(tmp_path.iterdir()) == []
    assert np.isclose(sum(metrics["kl_per_dimension"]), metrics["elbo_kl"], rtol=1e-4)
    assert metrics["iwae_nll_k4"] <= metrics["iwae_nll_k1"] + 3 * metrics["iwae_nll_k1_minus_k4_stderr"]
    assert {"elbo_bits_per_dim", "active_units", "iwae_nll_k4_stderr"} <= set(metrics)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400)
    separable = np.eye(10)[labels] * 5 + rng.normal(0, 0.1, (400, 10))
    perfect = probe_metrics(separable[:300], labels[:300], separable[300:], labels[300:])
    assert perfect["linear_probe_accuracy"] == perfect["knn5_accuracy"] == 1.0
    chance = probe_metrics(rng.normal(size=(300, 10)), labels[:300], rng.normal(size=(100, 10)), labels[300:])
    assert chance["linear_probe_accuracy"] < 0.3 and chance["knn5_accuracy"] < 0.3
