"""The top-down hierarchical VAE (fvae.models.top_down) against independent computations: each
group's KL against a numpy Monte Carlo estimate, the whole hierarchy's log importance weights
against a float64 numpy re-implementation at the same latent samples, sampling at a
temperature, the per-group report, and an interrupted run resumed bit for bit. The registry
contracts (tests/test_architectures.py) cover it as every other architecture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import top_down
from fvae.models import build_model
from fvae.run import rundir
from fvae.run.config import defaults, validate
from fvae.run.report import group_metrics
from fvae.run.trainer import train_and_evaluate
from tests.helpers import params_equal
from tests.test_runner import final_state, small_config, without_timing

BOUNDS = (-6.0, 1.5)


def tiny(prior="standard_normal", posterior="residual", gated=False, cell="mlp", norm=False):
    """A tiny top-down model with random (not zero-initialized) parameters, and binary images."""
    config = defaults()
    config.model.architecture, config.model.cell, config.model.posterior = "top_down", cell, posterior
    config.model.groups, config.model.latents, config.model.width, config.model.cell_hidden = 3, 2, 6, 5
    config.model.gated, config.model.logvar_range, config.model.layer_norm = gated, BOUNDS, norm
    config.prior.name, config.prior.components = prior, 3
    validate(config)
    model = build_model(config)
    x = (jax.random.uniform(jax.random.key(0), (4, 784)) < 0.4).astype(jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(1), x, jax.random.key(2))  # Only the shapes are kept.
    leaves, tree = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    leaves = [0.4 * jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)]
    return model, jax.tree.unflatten(tree, leaves), x


# ---- the float64 re-implementation (numpy only) ------------------------------------------

def _dense(p, x):
    return x @ np.asarray(p["kernel"], np.float64) + (np.asarray(p["bias"], np.float64) if "bias" in p else 0.0)


def _act(y, gated):
    if gated:
        values, gates = np.split(y, 2, axis=-1)
        return values / (1.0 + np.exp(-gates))
    return y / (1.0 + np.exp(-y))


def _norm(p, x):
    """Flax's LayerNorm over the last axis (epsilon 1e-6), where the module has one."""
    if p is None:
        return x
    centered = x - x.mean(-1, keepdims=True)
    return centered / np.sqrt((centered ** 2).mean(-1, keepdims=True) + 1e-6) * p["scale"] + p["bias"]


def _cell(p, h, gated, extra=None):
    y = _norm(p.get("norm"), h)
    y = y if extra is None else np.concatenate([y, extra], -1)
    return h + _dense(p["out"], _act(_dense(p["in"], y), gated))


def _head(p, inputs, gated, rows):
    h = sum(np.tile(_dense(p[f"in_{i}"], _norm(p.get(f"norm_{i}"), x)), (rows // x.shape[0], 1))
            for i, x in enumerate(inputs))
    mean, logvar = np.split(_dense(p["out"], _act(h, gated)), 2, axis=-1)
    return mean, _bounded(logvar)


def _bounded(logvar):
    lo, hi = BOUNDS
    return np.where(logvar < 0, lo * np.tanh(logvar / lo), hi * np.tanh(logvar / hi))


def _log_normal(z, mean, logvar):
    return -0.5 * np.sum((z - mean) ** 2 / np.exp(logvar) + logvar + np.log(2 * np.pi), -1)


def _bottom_up(params, x, groups, gated):
    h, features = _dense(params["encoder"]["stem"], x), []
    for i in range(groups):
        h = _cell(params["encoder"][f"cell_{i}"], h, gated)
        features.append(h)
    return features[::-1]  # Top first.


def _posterior(dec, index, s, feature, prior, posterior, gated):
    rows = s.shape[0]
    if posterior == "merge":
        mean, logvar = _head(dec[f"posterior_{index}"], [feature], gated, rows)
        if prior is None:
            return mean, logvar
        pp, qp = np.exp(-prior[1]), np.exp(-logvar)
        return (prior[0] * pp + mean * qp) / (pp + qp), -np.log(pp + qp)
    mean, logvar = _head(dec[f"posterior_{index}"], [s, feature], gated, rows)
    if prior is None:
        return mean, logvar
    return prior[0] + mean, _bounded(prior[1] + logvar)


def reference_log_weights(params, x, z, groups, prior_name, posterior, gated):
    """log p(x | z) + log p(z) - log q(z | x) per sample (K, B), in float64, for codes z (K, B, D)
    of a top-down model with MLP cells and a Bernoulli likelihood."""
    params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    k, b, _ = z.shape
    x = np.asarray(x, np.float64)
    z = np.asarray(z, np.float64).reshape(k * b, -1)
    sizes = z.shape[1] // groups
    layers = [z[:, i * sizes:(i + 1) * sizes] for i in range(groups)][::-1]  # Top first.
    dec, features = params["decoder"], _bottom_up(params, x, groups, gated)
    s = np.tile(dec["start"], (k * b, 1))
    log_q = log_p = 0.0
    for index in range(groups):
        prior = _head(dec[f"prior_{index}"], [s], gated, k * b) if index else None
        q = _posterior(dec, index, s, features[index], prior, posterior, gated)
        log_q = log_q + _log_normal(layers[index], *q)
        if prior is not None:
            log_p = log_p + _log_normal(layers[index], *prior)
        elif prior_name == "standard_normal":
            log_p = log_p + _log_normal(layers[index], 0.0, 0.0)
        else:  # The VampPrior: the mixture of q(z_L | u) at the pseudo-inputs.
            u = 1.0 / (1.0 + np.exp(-params["pseudo_inputs"]))
            top = _bottom_up(params, u, groups, gated)[0]
            means, logvars = _posterior(dec, 0, np.tile(dec["start"], (len(u), 1)), top, None, posterior, gated)
            per = np.stack([_log_normal(layers[index], m, lv) for m, lv in zip(means, logvars)], -1)
            log_p = log_p + np.logaddexp.reduce(per, axis=-1) - np.log(len(u))
        s = _cell(dec[f"cell_{index}"], s, gated, layers[index])
    logits = _dense(dec["out"], _norm(dec.get("out_norm"), _cell(dec["out_cell"], s, gated)))
    xt = np.tile(x, (k, 1))
    log_likelihood = np.sum(xt * logits - np.logaddexp(0.0, logits), -1)
    return (log_likelihood + log_p - log_q).reshape(k, b)


@pytest.mark.parametrize("prior, posterior, gated, norm", [("standard_normal", "residual", False, False),
                                                           ("standard_normal", "merge", True, True),
                                                           ("vamp", "residual", True, False),
                                                           ("vamp", "merge", False, True)])
def test_log_importance_weights_match_a_float64_reimplementation(prior, posterior, gated, norm):
    model, variables, x = tiny(prior, posterior, gated, norm=norm)
    out = model.apply(variables, x, jax.random.key(5), None, 3)
    expected = reference_log_weights(variables["params"], x, out.z, 3, prior, posterior, gated)
    np.testing.assert_allclose(np.asarray(out.log_weights, np.float64), expected, rtol=2e-5, atol=2e-3)


@pytest.mark.parametrize("posterior", ["residual", "merge"])
def test_each_groups_kl_matches_a_numpy_monte_carlo_estimate(posterior):
    """The model's closed-form KL of each group at each sample of the groups above (kl_per_latent,
    summed over the group) against log q - log p of fresh numpy draws from q's parameters."""
    model, variables, x = tiny(posterior=posterior)
    k = 8
    out = model.apply(variables, x, jax.random.key(5), None, k)
    walk = model.apply(variables, x.shape[0] * k, jax.random.key(5),
                       model.apply(variables, x, method=lambda m, x: m.encoder(x)),
                       method=lambda m, *a: m._walk(*a))[0]
    per_group = np.asarray(out.kl_per_latent, np.float64).reshape(x.shape[0], 3, 2)[:, ::-1].sum(-1)  # top first
    rng = np.random.default_rng(0)
    for index, group in enumerate(walk):
        q_mean, q_logvar = (np.asarray(a, np.float64) for a in group["q"])
        p_mean, p_logvar = (0.0, 0.0) if group["p"] is None else (np.asarray(a, np.float64) for a in group["p"])
        draws = q_mean + np.exp(0.5 * q_logvar) * rng.standard_normal((20_000, *q_mean.shape))
        ratio = _log_normal(draws, q_mean, q_logvar) - _log_normal(draws, p_mean, p_logvar)  # (M, K * B)
        per_image = ratio.reshape(ratio.shape[0], k, x.shape[0]).mean(1)  # Over the K paths, like the model.
        stderr = per_image.std(0) / np.sqrt(ratio.shape[0])
        assert (np.abs(per_image.mean(0) - per_group[:, index]) < 5 * stderr + 1e-4).all(), index
        assert per_group[:, index].min() > 0.01  # Random parameters: q differs from p in every group.


def test_sampling_temperature_scales_the_noise_of_every_group():
    model, variables, _ = tiny()
    sample = jax.jit(lambda v, t: model.apply(v, jax.random.key(7), 20_000, t, method="sample_prior"))
    cold, warm = np.asarray(sample(variables, 0.5)), np.asarray(sample(variables, 1.0))
    np.testing.assert_allclose(cold[:, -2:].std(0), 0.5, rtol=0.03)  # The top group: N(0, T^2 I).
    np.testing.assert_allclose(warm[:, -2:].std(0), 1.0, rtol=0.03)
    zero = np.asarray(sample(variables, 1e-6))  # T -> 0: every group at its prior mean given those above.
    assert zero.std(0).max() < 1e-4
    assert (cold.std(0) < warm.std(0)).all()


def test_conv_cells_give_groups_at_each_resolution():
    model, variables, x = tiny(cell="conv")
    # Compiled, as the library runs it (eager op-by-op dispatch of this model took 3x as long).
    out = jax.jit(lambda v, x: model.apply(v, x, jax.random.key(5), None, 2))(variables, x)
    assert model.group_sizes == (2 * 14 * 14,) * 3 + (2 * 7 * 7,) * 3 + (2,) * 3
    assert out.z.shape == (2, 4, sum(model.group_sizes)) and np.isfinite(np.asarray(out.log_weights)).all()
    # The codes decode and score the same way the K samples did (to float32 rounding: separate programs).
    params = jax.jit(lambda v, z: model.apply(v, z, method="likelihood_params"))(variables, out.z.reshape(8, -1))
    np.testing.assert_allclose(np.asarray(params), np.asarray(out.likelihood_params).reshape(8, 784, -1),
                               rtol=1e-5, atol=1e-5)
    log_prior = jax.jit(lambda v, z: model.apply(v, z, method="log_prior"))(variables, out.z)
    np.testing.assert_allclose(np.asarray(log_prior), np.asarray(out.log_prior), rtol=1e-5)


def test_the_report_gives_each_groups_kl_and_active_units():
    stats = {"kl_per_dimension": np.array([1.0, 2.0, 0.0, 0.0, 0.5]),
             "code_variance": np.array([0.5, 0.02, 0.0, 0.001, 3.0])}
    assert group_metrics((2, 2, 1), stats) == {"kl_per_group": [3.0, 0.0, 0.5], "active_units_per_group": [2, 0, 1],
                                               "latents_per_group": [2, 2, 1]}
    assert group_metrics((5,), stats) == {}


@pytest.mark.slow
def test_an_interrupted_top_down_run_resumes_bit_for_bit(mock_data_dir, tmp_path):
    def config(epochs):
        c = small_config(mock_data_dir, epochs, base=top_down)
        c.model.groups, c.model.width, c.model.cell_hidden, c.model.latents = 3, 32, 32, 4
        c.objective.warmup_epochs, c.train.skip_grad_norm = 2, 300.0  # Warm-up, free bits and the guard all run.
        c.train.lr_schedule = "constant"  # A schedule over max_epochs cannot stop at 2 and resume to 4.
        return c

    quiet = dict(log=lambda _: None, progress=False)
    full = train_and_evaluate(config(4), tmp_path / "full", **quiet)
    train_and_evaluate(config(2), tmp_path / "split", **quiet)
    resumed = train_and_evaluate(config(4), tmp_path / "split", resume=True, **quiet)
    full_state, _ = final_state(config(4), tmp_path / "full")
    split_state, _ = final_state(config(4), tmp_path / "split")
    assert params_equal(split_state.params, full_state.params)
    assert params_equal(split_state.opt_state, full_state.opt_state)
    history = rundir.load_history(tmp_path / "split")
    assert without_timing(history) == without_timing(rundir.load_history(tmp_path / "full"))
    assert all("train_skipped" in r and "train_grad_norm" in r for r in history)
    assert resumed["test_loss"] == full["test_loss"]
