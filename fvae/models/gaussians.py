"""Diagonal Gaussians, the densities every VAE here is made of: log densities, closed-form
KL to N(0, I), the reparameterized sample, and the mixture that the VampPrior is."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def log_normal_diag(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(logvar))) summed over the last axis, normalizing constant included."""
    return -0.5 * jnp.sum(jnp.square(z - mean) * jnp.exp(-logvar) + logvar + LOG_2PI, axis=-1)


def log_standard_normal(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * jnp.sum(jnp.square(z) + LOG_2PI, axis=-1)


def kl_per_dimension(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(q || N(0, 1)) of each latent dimension: (B, D); sums to kl_standard_normal."""
    return 0.5 * (jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar)


def kl_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Analytic KL(N(mean, exp(logvar)) || N(0, I)) summed over latents: (B,)."""
    return jnp.sum(kl_per_dimension(mean, logvar), axis=-1)


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array, num_samples: int | None = None
                   ) -> jax.Array:
    """z = mean + sigma * eps with eps ~ N(0, I): differentiable in mean and logvar.

    With num_samples=K, K independent samples: (K, *mean.shape).
    """
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    eps = jax.random.normal(key, shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


def log_mixture_of_diagonal_normals(z: jax.Array, means: jax.Array, logvars: jax.Array) -> jax.Array:
    """log (1/K) sum_k N(z; means_k, diag(exp(logvars_k))): z (..., D), means/logvars (K, D) -> (...).

    The squared distances are expanded into matrix products, (z^2) P^T - 2 z (M P)^T +
    sum(M^2 P) with P = exp(-logvars): on CPU this is several times faster than
    materializing the (..., K, D) differences.
    """
    precision = jnp.exp(-logvars)  # (K, D)
    squared = (jnp.square(z) @ precision.T - 2.0 * z @ (means * precision).T
               + jnp.sum(jnp.square(means) * precision, axis=-1))  # (..., K)
    per_component = -0.5 * (squared + jnp.sum(logvars, axis=-1) + means.shape[-1] * LOG_2PI)
    return jax.nn.logsumexp(per_component, axis=-1) - math.log(means.shape[0])
