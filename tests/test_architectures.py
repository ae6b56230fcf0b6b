"""The registry contract of architectures and priors (fvae.models.architectures, fvae.models.priors): every
valid pair builds from its config alone and gives finite gradients for every objective it
allows, an IWAE bound at least its ELBO, and a one-sample IWAE bound equal to the ELBO in
expectation. A newly registered class is covered here without new test code."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvae.models import build_model
from fvae.models.architectures import ARCHITECTURES
from fvae.models.losses import Objective, iwae_bound
from fvae.models.priors import PRIORS
from fvae.run.config import defaults, validate

# Every architecture with the first prior, and mlp with every prior, in the fast tier (so
# `pytest -m "not slow" -k NEW` checks a new architecture or prior); the other pairs are slow.
FIRST_PRIOR = next(iter(PRIORS))
PAIRS = [pytest.param(a, p, id=f"{a}-{p}", marks=() if a == "mlp" or p == FIRST_PRIOR else pytest.mark.slow)
         for a in ARCHITECTURES for p in PRIORS]


def small_config(architecture: str, prior: str):
    """A small model of this architecture and prior; their own fields keep their defaults
    except sizes (conv channels, hierarchical layers, pseudo-inputs) scaled down."""
    config = defaults()
    config.model.architecture, config.prior.name = architecture, prior
    config.model.encoder_hidden, config.model.decoder_hidden, config.model.latents = (16,), (16,), 3
    config.model.top_latents, config.model.conv_channels, config.prior.components = 2, (4, 8), 3
    config.model.middle_latents = (2,)  # Three stochastic layers: the general case of hierarchical.
    config.model.width, config.model.cell_hidden, config.model.groups = 16, 16, 3  # top_down
    validate(config)
    return config


def model_and_variables(architecture, prior, images=8):
    model = build_model(small_config(architecture, prior))
    x = jax.random.uniform(jax.random.key(0), (images, 784))
    return model, model.init(jax.random.key(1), x, jax.random.key(2)), x


@pytest.mark.parametrize("architecture, prior", PAIRS)
def test_every_pair_has_finite_gradients_for_every_objective_it_allows(architecture, prior):
    model, variables, x = model_and_variables(architecture, prior)
    objectives = [Objective(), Objective(beta=4.0, warmup_steps=10), Objective(iwae_samples=3)]
    if ARCHITECTURES[architecture].analytic_kl and PRIORS[prior].analytic_kl:
        objectives.append(Objective(free_bits=0.5))

    def loss(params, objective):
        out = model.apply({**variables, "params": params}, x, jax.random.key(3), None, objective.iwae_samples,
                          training=True)
        return objective.loss(out, jnp.asarray(5))["loss"]

    # All objectives in one compiled program: one compile a pair instead of one an objective.
    every = jax.jit(lambda params: [jax.value_and_grad(loss)(params, o) for o in objectives])(variables["params"])
    for objective, (value, grads) in zip(objectives, every):
        assert np.isfinite(value), objective
        assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads)), objective
        assert any(np.abs(g).sum() > 0 for g in jax.tree.leaves(grads)), objective


@pytest.mark.parametrize("architecture, prior", PAIRS)
def test_iwae_bound_is_at_least_the_elbo_and_one_sample_is_the_elbo_in_expectation(architecture, prior):
    model, variables, x = model_and_variables(architecture, prior)
    apply = jax.jit(model.apply, static_argnums=(3, 4))
    many = apply(variables, x, jax.random.key(4), None, 50)
    iwae, elbo = np.asarray(iwae_bound(many.log_weights)), np.asarray(many.log_weights.mean(0))
    assert (iwae - elbo >= -1e-4).all() and (iwae - elbo).mean() > 0  # Jensen, for the same samples.

    # K = 1: each log weight is one draw of the IWAE bound; their mean over 4000 independent
    # draws is the ELBO, E log p(x|z) - KL, with the model's own KL (analytic or Monte Carlo).
    k = 4000
    out = apply(variables, x, jax.random.key(5), None, k)
    one_sample = np.asarray(out.log_weights, np.float64)  # (K, B)
    elbo = np.asarray(out.log_likelihood, np.float64).mean(0) - np.asarray(out.kl, np.float64)
    stderr = (one_sample - np.asarray(out.log_likelihood, np.float64)).std(0) / np.sqrt(k)
    assert (np.abs(one_sample.mean(0) - elbo) < 5 * stderr + 1e-4 * np.abs(elbo)).all()


@pytest.mark.parametrize("architecture, prior", PAIRS)
def test_every_pair_gives_consistent_codes_samples_and_pictures(architecture, prior):
    model, variables, x = model_and_variables(architecture, prior)
    out = model.apply(variables, x, jax.random.key(3), None, 2)
    d = out.codes.shape[-1]
    assert out.z.shape == (2, 8, d) and out.kl.shape == (8,) and out.kl_per_latent.shape == (8, d)
    assert out.likelihood_params.shape[:3] == (2, 8, 784)
    for field in (out.log_likelihood, out.log_prior, out.log_posterior):
        assert field.shape == (2, 8) and np.isfinite(field).all()
    samples = model.apply(variables, jax.random.key(6), 5, method="sample_prior")
    assert samples.shape == (5, d) and np.isfinite(samples).all()
    pictures = model.apply(variables, jax.random.key(6), 5, method="generate")
    assert pictures.shape == (5, 784) and 0.0 <= float(pictures.min()) and float(pictures.max()) <= 1.0
    dense = ARCHITECTURES[architecture].from_config(small_config(architecture, prior).model).dense_layers(
        small_config(architecture, prior).model)
    if dense:  # The benchmark's matmul ceiling: the parameters are exactly these dense stacks.
        sizes = sum((a + 1) * b for a, b in dense)
        own = sum(v.size for path, v in jax.tree_util.tree_leaves_with_path(variables["params"])
                  if "pseudo_inputs" not in jax.tree_util.keystr(path))
        assert own == sizes


@pytest.mark.parametrize("architecture, prior", PAIRS)
def test_codes_completed_from_the_prior_top_layer_are_the_prior_samples(architecture, prior):
    """What a latent sampler draws is completed the way the prior's own draws are: given the top
    layer of prior samples and the same key, complete_codes returns those samples (for a
    hierarchical model, the lower layers drawn through p(z_l | z_{l+1})); posterior draws of
    the top layer are the top part of the posterior samples."""
    model, variables, x = model_and_variables(architecture, prior)
    samples = model.apply(variables, jax.random.key(6), 5, method="sample_prior")
    top = model.apply(variables, samples, method="top_layer")
    assert top.shape == (5, model.top_latents) and model.top_latents <= samples.shape[-1]
    completed = model.apply(variables, jax.random.key(6), top, method="complete_codes")
    assert jnp.array_equal(completed, samples)
    other = model.apply(variables, jax.random.key(7), top, method="complete_codes")
    assert jnp.array_equal(other[:, -model.top_latents:], top)
    assert jnp.array_equal(other, samples) == (model.top_latents == samples.shape[-1])
