"""The negative ELBO and its parts, in nats per image."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def bernoulli_reconstruction(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Binary cross-entropy with logits against [0,1] intensities, summed over pixels: (B,).

    For binary x this is -log Bernoulli(x | sigmoid(logits)); for grey pixels it is the
    usual (unnormalized) reconstruction term of the Flax/PyTorch VAE examples.
    """
    bce = optax.sigmoid_binary_cross_entropy(logits, x)
    return bce.reshape(bce.shape[0], -1).sum(axis=-1)


def kl_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Analytic KL(N(mean, exp(logvar)) || N(0, I)) summed over latents: (B,)."""
    return jnp.sum(kl_per_dimension(mean, logvar), axis=-1)


def negative_elbo(logits: jax.Array, x: jax.Array, mean: jax.Array, logvar: jax.Array
                  ) -> dict[str, jax.Array]:
    """Batch means of the negative ELBO and its two parts: {"loss", "reconstruction", "kl"}."""
    reconstruction = bernoulli_reconstruction(logits, x)
    kl = kl_standard_normal(mean, logvar)
    return {
        "loss": jnp.mean(reconstruction + kl),
        "reconstruction": jnp.mean(reconstruction),
        "kl": jnp.mean(kl),
    }


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
