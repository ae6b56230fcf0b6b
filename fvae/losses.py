"""The negative ELBO and its parts, in nats per image."""

from __future__ import annotations

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
    return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar, axis=-1)


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
