import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from fvae.models.likelihoods import (
    LIKELIHOODS,
    NUM_LEVELS,
    Bernoulli,
    ContinuousBernoulli,
    DiscretizedLogistic,
    Gaussian,
    binarize,
    bits_per_dim,
    build_likelihood,
)
from fvae.run.config import defaults


def one_pixel(params, x):
    """Log density of single pixels: params (N, P), x (N,) -> (N,)."""
    return params[:, None, :], jnp.asarray(x, jnp.float32)[:, None]


def test_bernoulli_sums_to_one_over_binary_pixels():
    logits = jnp.array([[-30.0], [-2.0], [0.0], [0.7], [30.0]])
    total = sum(jnp.exp(Bernoulli().log_prob(*one_pixel(logits, np.full(5, v)))) for v in (0.0, 1.0))
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)


def test_bernoulli_matches_the_direct_formula_and_is_stable():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(5, 784, 1))
    x = rng.uniform(size=(5, 784))
    x[:, :10], x[:, 10:20] = 0.0, 1.0
    p = 1.0 / (1.0 + np.exp(-logits[..., 0]))
    direct = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)
    got = Bernoulli().log_prob(jnp.asarray(logits, jnp.float32), jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, direct, rtol=1e-5)
    edges = Bernoulli().log_prob(jnp.array([[[80.0], [-80.0]]]), jnp.array([[0.0, 1.0]]))
    np.testing.assert_allclose(edges, [-160.0], rtol=1e-5)


LOGITS = np.array([-12.0, -3.0, -0.5, -1e-3, 0.0, 1e-6, 2e-3, 0.9, 4.0, 12.0], np.float32)
GRID = np.linspace(0.0, 1.0, 200_001)


def continuous_bernoulli_density_on_grid() -> np.ndarray:
    """The density of each logit in LOGITS on GRID: (len(LOGITS), len(GRID)), float64."""
    params = jnp.broadcast_to(jnp.asarray(LOGITS)[:, None, None], (len(LOGITS), len(GRID), 1))
    x = jnp.broadcast_to(jnp.asarray(GRID, jnp.float32), (len(LOGITS), len(GRID)))
    per_pixel = jax.vmap(lambda p, v: ContinuousBernoulli().log_prob(p[:, None, :], v[:, None]))(params, x)
    return np.exp(np.asarray(per_pixel, np.float64))


def test_continuous_bernoulli_integrates_to_one():
    totals = integrate.simpson(continuous_bernoulli_density_on_grid(), x=GRID, axis=1)
    np.testing.assert_allclose(totals, 1.0, rtol=1e-4)


def test_continuous_bernoulli_mean_matches_numerical_integration():
    expected = integrate.simpson(GRID * continuous_bernoulli_density_on_grid(), x=GRID, axis=1)
    got = ContinuousBernoulli().mean(jnp.asarray(LOGITS)[:, None, None])[:, 0]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_continuous_bernoulli_matches_the_paper_formula_at_random_points():
    rng = np.random.default_rng(1)
    lam = rng.uniform(0.02, 0.98, 200)
    lam = lam[np.abs(lam - 0.5) > 0.05]  # The direct formula is 0/0 at 1/2.
    x = rng.uniform(0, 1, len(lam))
    normalizer = 2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam)
    expected = x * np.log(lam) + (1 - x) * np.log(1 - lam) + np.log(normalizer)
    logits = np.log(lam) - np.log1p(-lam)
    got = ContinuousBernoulli().log_prob(*one_pixel(jnp.asarray(logits, jnp.float32)[:, None], x))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_continuous_bernoulli_is_finite_and_smooth_at_one_half_and_the_edges():
    likelihood = ContinuousBernoulli()
    logits = jnp.array([-1e-2 - 1e-6, -1e-2 + 1e-6, 0.0, 1e-2 - 1e-6, 1e-2 + 1e-6, -40.0, 40.0])
    for x in (0.0, 0.5, 1.0):
        values = likelihood.log_prob(*one_pixel(logits[:, None], np.full(len(logits), x)))
        assert np.isfinite(values).all()
        # Both sides of the switch to the Taylor series agree, and lambda = 1/2 is uniform (log 1 = 0).
        np.testing.assert_allclose(values[0], values[1], atol=1e-5)
        np.testing.assert_allclose(values[3], values[4], atol=1e-5)
        np.testing.assert_allclose(values[2], 0.0, atol=1e-6)
    grads = jax.grad(lambda l: likelihood.log_prob(l[:, None, None], jnp.full((len(l), 1), 0.3)).sum())(logits)
    assert np.isfinite(grads).all()


@pytest.mark.parametrize("mixtures", [1, 3])
def test_discretized_logistic_sums_to_one_over_256_levels(mixtures):
    rng = np.random.default_rng(2)
    likelihood = DiscretizedLogistic(mixtures)
    params = rng.normal(size=(6, 3 * mixtures)).astype(np.float32)
    params[:, mixtures:2 * mixtures] = rng.uniform(-1.2, 1.2, size=(6, mixtures))  # means, some beyond the range
    params[:, 2 * mixtures:] = rng.choice([-6.0, -3.0, -1.0, 0.5], size=(6, mixtures))  # narrow to wide
    levels = np.arange(NUM_LEVELS) / 255.0
    for row in params:
        tiled = jnp.asarray(np.repeat(row[None], NUM_LEVELS, axis=0))
        log_mass = likelihood.log_prob(*one_pixel(tiled, levels))
        assert np.isfinite(log_mass).all()
        np.testing.assert_allclose(float(jnp.sum(jnp.exp(log_mass))), 1.0, rtol=1e-5)


def test_discretized_logistic_matches_the_logistic_cdf_at_random_points():
    rng = np.random.default_rng(3)
    n = 300
    means, log_scales = rng.uniform(-1, 1, n), rng.uniform(-5, 0, n)
    levels = rng.integers(0, 256, n)
    levels[:5], levels[5:10] = 0, 255
    centre = levels / 127.5 - 1.0
    dist = stats.logistic(loc=means, scale=np.exp(log_scales))
    below = (np.where(levels == 255, 1.0, dist.cdf(centre + 1 / 255))
             - np.where(levels == 0, 0.0, dist.cdf(centre - 1 / 255)))
    # Above the mean, the survival function keeps float64 precision in the far tail.
    above = (np.where(levels == 0, 1.0, dist.sf(centre - 1 / 255))
             - np.where(levels == 255, 0.0, dist.sf(centre + 1 / 255)))
    expected = np.log(np.where(centre > means, above, below))
    params = jnp.asarray(np.stack([np.zeros(n), means, log_scales], axis=1), jnp.float32)
    got = DiscretizedLogistic(1).log_prob(*one_pixel(params, levels / 255.0))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_discretized_logistic_mixture_is_the_weighted_sum_of_its_components():
    rng = np.random.default_rng(4)
    params = rng.normal(size=(50, 9)).astype(np.float32)
    x = rng.integers(0, 256, 50) / 255.0
    weights = np.exp(params[:, :3]) / np.exp(params[:, :3]).sum(axis=1, keepdims=True)
    single = [np.exp(DiscretizedLogistic(1).log_prob(*one_pixel(
        jnp.asarray(np.stack([np.zeros(50), params[:, 3 + k], params[:, 6 + k]], 1), jnp.float32), x)))
        for k in range(3)]
    expected = np.log(sum(weights[:, k] * single[k] for k in range(3)))
    np.testing.assert_allclose(DiscretizedLogistic(3).log_prob(*one_pixel(jnp.asarray(params), x)), expected,
                               rtol=1e-4, atol=1e-5)


def test_gaussian_matches_scipy_and_floors_the_scale():
    rng = np.random.default_rng(5)
    mean, log_scale, x = rng.uniform(0, 1, 100), rng.uniform(-3, 1, 100), rng.uniform(0, 1, 100)
    params = jnp.asarray(np.stack([mean, log_scale], 1), jnp.float32)
    expected = stats.norm.logpdf(x, mean, np.exp(log_scale))
    np.testing.assert_allclose(Gaussian().log_prob(*one_pixel(params, x)), expected, rtol=1e-5, atol=1e-5)
    collapsed = Gaussian().log_prob(jnp.array([[[0.0, -50.0]]]), jnp.array([[0.0]]))
    np.testing.assert_allclose(collapsed, stats.norm.logpdf(0.0, 0.0, np.exp(Gaussian.min_log_scale)), rtol=1e-5)


def registered(name: str, **fields):
    """The likelihood registered as `name`, built from a default config section (plus fields)."""
    config = defaults().likelihood
    config.update({"name": name, **fields})
    return build_likelihood(config)


def density_over_support(likelihood, p: np.ndarray, real_range: tuple[float, float, int]):
    """(x, p(x)) for one pixel with parameters p, over the likelihood's whole support: every
    value of a discrete one, a fine grid of a continuous one (`real_range` for the real line)."""
    grids = {"binary": np.array([0.0, 1.0]), "levels": np.arange(NUM_LEVELS) / (NUM_LEVELS - 1),
             "unit_interval": np.linspace(0.0, 1.0, 4001), "real": np.linspace(*real_range)}
    x = grids[likelihood.support]
    params_at_x = jnp.broadcast_to(jnp.asarray(p, jnp.float32), (len(x), 1, len(p)))
    log_density = likelihood.log_prob(params_at_x, jnp.asarray(x[:, None], jnp.float32))
    return x, np.exp(np.asarray(log_density, np.float64))


def expectation(likelihood, x: np.ndarray, values: np.ndarray) -> float:
    """Sum over a discrete support, Simpson's rule over a continuous one."""
    return float(values.sum() if likelihood.support in ("binary", "levels") else integrate.simpson(values, x=x))


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_likelihood_sums_or_integrates_to_one_over_its_support(name):
    """The registry's contract, for random parameters of one pixel: the mass summed over a
    discrete support, or the density integrated (Simpson) over a continuous one, is one."""
    likelihood = registered(name, mixtures=2)
    params = np.random.default_rng(0).uniform(-1.0, 1.0, (5, likelihood.params_per_pixel))
    for p in params:
        x, density = density_over_support(likelihood, p, (-12.0, 13.0, 20001))
        total = expectation(likelihood, x, density)
        np.testing.assert_allclose(total, 1.0, atol=2e-4, err_msg=f"{name} at params {p}")


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_likelihood_is_finite_with_finite_gradients_at_the_edges(name):
    x = jnp.array([[0.0, 0.5, 1.0, 127 / 255]])
    likelihood = registered(name)
    for scale in (0.0, 1.0, 30.0, -30.0):
        params = scale * jnp.ones((1, 4, likelihood.params_per_pixel))
        value, grad = jax.value_and_grad(lambda p: likelihood.log_prob(p, x).sum())(params)
        assert np.isfinite(value) and np.isfinite(grad).all(), (name, scale)
        means = likelihood.mean(params)
        assert means.shape == (1, 4) and 0.0 <= float(means.min()) and float(means.max()) <= 1.0


def test_dynamic_binarization_has_the_pixel_intensities_as_means():
    x = jnp.array([0.0, 0.1, 0.5, 0.9, 1.0])
    draws = binarize(jax.random.key(0), jnp.broadcast_to(x, (4000, 5)))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(axis=0), x, atol=0.025)


def test_bits_per_dim():
    np.testing.assert_allclose(bits_per_dim(784 * np.log(2.0)), 1.0)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_registered_likelihood_declares_its_training_and_evaluation_data(name):
    """The registry's contract: each likelihood says what a train step scores and what it is
    evaluated on; only the binarized Bernoulli changes the pixels (binary, fixed per seed)."""
    likelihood = registered(name, mixtures=2, variance="global")
    config = defaults().likelihood
    config.update({"name": name, "mixtures": 2, "variance": "global"})
    grey = np.random.default_rng(0).integers(0, 256, (6, 784)).astype(np.uint8)
    x = jnp.asarray(grey, jnp.float32) / 255
    evaluated, trained = likelihood.evaluation_images(grey, 1), likelihood.training_pixels(jax.random.key(0), x)
    assert evaluated.shape == grey.shape and evaluated.dtype == np.uint8 and trained.shape == x.shape
    if name == "binarized_bernoulli":
        assert set(np.unique(evaluated)) <= {0, 255} and set(np.unique(np.asarray(trained))) <= {0.0, 1.0}
        np.testing.assert_array_equal(evaluated, likelihood.evaluation_images(grey, 1))
        assert not np.array_equal(evaluated, likelihood.evaluation_images(grey, 2))
        config.eval_binarization_seed = 1
        assert not np.array_equal(evaluated, build_likelihood(config).evaluation_images(grey, 1))
    else:
        assert evaluated is grey and trained is x
    assert likelihood.global_scale == (name == "gaussian")


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_likelihood_mean_is_its_densitys_expectation(name):
    """The registry's contract: `mean` (what pictures and sample scores show) is E[x] of the
    density, summed over a discrete support or integrated (Simpson) over a continuous one,
    clipped to [0, 1] where the support is wider; for random and for sharp parameters."""
    likelihood = registered(name, mixtures=2)
    rng = np.random.default_rng(1)
    params = np.concatenate([rng.uniform(-1.0, 1.0, (4, likelihood.params_per_pixel)),
                             rng.uniform(-4.0, 4.0, (4, likelihood.params_per_pixel))])
    for p in params:
        x, density = density_over_support(likelihood, p, (-30.0, 31.0, 60001))
        expected = expectation(likelihood, x, x * density)
        got = float(likelihood.mean(jnp.asarray(p, jnp.float32)[None, None])[0, 0])
        np.testing.assert_allclose(got, np.clip(expected, 0.0, 1.0), atol=2e-4, err_msg=f"{name} at params {p}")


def fitted_reconstruction(likelihood, steps: int = 300) -> tuple[float, float]:
    """-log p(x|z) per image (mean of the first and of the last 10 of `steps` Adam steps) of a
    VAE's decoder trained alone on the mock images with fixed codes (each image's class,
    one-hot), so only the likelihood's own gradient can lower it."""
    import optax

    from fvae.models import VAE, Decoder, Encoder
    from tests.helpers import class_images

    images, labels = class_images(640, seed=3)
    x = jnp.asarray(images.reshape(640, 784), jnp.float32) / 255
    z = jax.nn.one_hot(jnp.asarray(labels), 10)
    model = VAE(Encoder((8,), 10), Decoder((64,), (784,), likelihood.params_per_pixel - int(likelihood.global_scale)),
                likelihood)
    params = model.init(jax.random.key(0), x[:1], jax.random.key(0), jnp.zeros((1,), jnp.int32))["params"]
    adam = optax.adam(1e-3)

    def loss(p, key):
        pixel_params = model.apply({"params": p}, z, method=VAE.likelihood_params)
        return -jnp.mean(likelihood.log_prob(pixel_params, likelihood.training_pixels(key, x)))

    def step(carry, i):
        p, state = carry
        value, grads = jax.value_and_grad(loss)(p, jax.random.key(i))
        updates, state = adam.update(grads, state)
        return (optax.apply_updates(p, updates), state), value

    _, losses = jax.lax.scan(step, (params, adam.init(params)), jnp.arange(steps))
    losses = np.asarray(losses)
    return float(losses[:10].mean()), float(losses[-10:].mean())


@pytest.mark.slow  # 5-15 s each on 2 cores.
@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_likelihood_trains(name):
    """The registry's contract: a decoder trained alone with this likelihood lowers -log p(x|z)
    by at least 0.1 nats per pixel in 300 steps (the five registered ones: 0.17 to 1.8). A
    likelihood whose gradient is cut (a clipped scale) lowers it by 0 and fails; one that
    diverges fails on non-finite values."""
    first, last = fitted_reconstruction(registered(name, mixtures=2))
    assert np.isfinite([first, last]).all() and first - last >= 0.1 * 784, (name, first, last)


@pytest.mark.slow
def test_the_trainability_check_fails_when_the_gradient_is_cut():
    @dataclasses.dataclass(frozen=True)
    class CutGaussian(Gaussian):
        def log_prob(self, params, x):
            return super().log_prob(jax.lax.stop_gradient(params), x)

    first, last = fitted_reconstruction(CutGaussian(), steps=30)
    assert first - last < 1e-3
