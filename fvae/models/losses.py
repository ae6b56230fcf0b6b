"""The negative ELBO, the IWAE bound and the training objectives, in nats per image."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp


def iwae_bound(log_weights: jax.Array) -> jax.Array:
    """log (1/K) sum_k w_k per image (B,): a lower bound on log p(x) that tightens with K."""
    return jax.nn.logsumexp(log_weights, axis=0) - math.log(log_weights.shape[0])


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the optimizer minimizes (frozen: a static field of the train state).

    beta: weight of the KL term (beta-VAE); warmup_steps: beta rises linearly from 0 over
    that many steps (KL warm-up); free_bits: each latent's KL counts as at least this
    many nats (Kingma et al., 2016); iwae_samples: K > 1 trains on the IWAE bound with K
    samples instead of the ELBO. The defaults are the plain negative ELBO.
    """

    beta: float = 1.0
    warmup_steps: int = 0
    free_bits: float = 0.0
    iwae_samples: int = 1

    def kl_weight(self, step: jax.Array) -> jax.Array:
        if not self.warmup_steps:
            return jnp.asarray(self.beta, jnp.float32)
        return self.beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / self.warmup_steps)

    def loss(self, out, step: jax.Array) -> dict[str, jax.Array]:
        """Batch means: "loss" (minimized), and the true "reconstruction" and "kl" terms.

        out: the VAE's VAEOutput with K = iwae_samples samples per image (fvae.models).
        """
        reconstruction = -jnp.mean(out.log_likelihood, axis=0)  # (B,)
        kl = out.kl
        if self.iwae_samples > 1:
            loss = -jnp.mean(iwae_bound(out.log_weights))
        else:
            kl_term = jnp.mean(kl)
            if self.free_bits > 0:  # Per latent, averaged over the batch, floored at free_bits.
                per_dim = jnp.mean(out.kl_per_latent, axis=0)
                kl_term = jnp.sum(jnp.maximum(per_dim, self.free_bits))
            loss = jnp.mean(reconstruction) + self.kl_weight(step) * kl_term
        return {"loss": loss, "reconstruction": jnp.mean(reconstruction), "kl": jnp.mean(kl)}
