"""Priors p(z) on a VAE's (top) latent layer, chosen by `prior.name` from `PRIORS`.

A prior gives log p(z) and samples. A prior that is built from the model itself, like the
VampPrior (the mixture of the encoder's posteriors at learned pseudo-inputs), says how
many pseudo-inputs the VAE must hold (`pseudo_inputs`) and receives the posteriors at
them through `pseudo_posteriors`, a function returning (means, logvars), each (K, D).
Each class's dataclass fields are its config keys (fvae.models.registry).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fvae.models import gaussians
from fvae.models.registry import Prior, PseudoPosteriors, lookup, registry


@dataclasses.dataclass(frozen=True)
class StandardNormal(Prior):
    """p(z) = N(0, I): the KL of a diagonal Gaussian posterior to it is analytic."""

    name = "standard_normal"
    analytic_kl = True
    description = "the prior N(0, I)"

    def log_prob(self, z: jax.Array, pseudo_posteriors: PseudoPosteriors) -> jax.Array:
        return gaussians.log_standard_normal(z)

    def sample(self, key: jax.Array, num: int, latents: int, pseudo_posteriors: PseudoPosteriors,
               temperature: float = 1.0) -> jax.Array:
        return temperature * jax.random.normal(key, (num, latents))


@dataclasses.dataclass(frozen=True)
class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k), the encoder's posteriors at K = `components` learned
    pseudo-inputs u_k (Tomczak and Welling, 2018). Pseudo-inputs have no label, so it is
    not for conditional VAEs; its KL is estimated by Monte Carlo."""

    components: int = 500
    name = "vamp"
    conditional = False
    description = "the VampPrior"

    @classmethod
    def check(cls, section) -> list[str]:
        return [] if section.components >= 1 else [f"prior.components must be >= 1, got {section.components!r}"]

    @property
    def pseudo_inputs(self) -> int:  # type: ignore[override]  # a class constant elsewhere
        return self.components

    def log_prob(self, z: jax.Array, pseudo_posteriors: PseudoPosteriors) -> jax.Array:
        return gaussians.log_mixture_of_diagonal_normals(z, *pseudo_posteriors())

    def sample(self, key: jax.Array, num: int, latents: int, pseudo_posteriors: PseudoPosteriors,
               temperature: float = 1.0) -> jax.Array:
        means, logvars = pseudo_posteriors()  # (K, D) each
        pick_key, noise_key = jax.random.split(key)
        component = jax.random.randint(pick_key, (num,), 0, self.components)
        return gaussians.reparameterize(noise_key, means[component], logvars[component] + 2.0 * jnp.log(temperature))


PRIORS = registry(StandardNormal, VampPrior)


def build_prior(prior_config) -> Prior:
    """The prior a config's prior section names, with its own fields from the section."""
    return lookup(PRIORS, prior_config.name, "prior.name").from_config(prior_config)
