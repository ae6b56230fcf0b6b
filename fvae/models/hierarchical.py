"""The two-layer hierarchical VAE (the "hierarchical" architecture)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from fvae.models.gaussians import kl_per_dimension, log_normal_diag, reparameterize
from fvae.models.vae import VAE, VAEOutput


class HierarchicalVAE(VAE):
    """A VAE with two stochastic layers (the two-level model of Tomczak and Welling, 2018):
    generative p(z2) p(z1 | z2) p(x | z1, z2), inference q(z1 | x) q(z2 | z1, x), all MLPs.

    The code of an image is both layers concatenated, z = [z1, z2] (D = latents of
    `encoder` + latents of `top_encoder`): `encode`, `likelihood_params`, `log_prior`,
    `sample_prior` and VAEOutput.z all use it, so every evaluation works unchanged. The
    prior on the top layer is `prior`: N(0, I), or the VampPrior at the
    pseudo-inputs' q(z2 | E[z1 | u], u). Its KL has no closed form: VAEOutput.kl is the
    Monte Carlo mean over the samples. Not conditional (num_classes must be 0).

    encoder: q(z1 | x); top_encoder: q(z2 | z1, x) (an Encoder reading x with z1 beside it);
    prior_net: p(z1 | z2) (an Encoder reading z2); decoder: p(x | z1, z2) on [z1, z2].
    """

    top_encoder: nn.Module = None  # type: ignore[assignment]  # required: set by the architecture
    prior_net: nn.Module = None  # type: ignore[assignment]  # required: set by the architecture

    @property
    def latents(self) -> int:
        return self.encoder.latents + self.top_encoder.latents

    def _split(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        return z[..., :self.encoder.latents], z[..., self.encoder.latents:]

    def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """Means and log-variances of [z1, z2]: q(z1 | x), then q(z2 | z1 = E[z1 | x], x): each (B, D)."""
        x = x.reshape(x.shape[0], -1)
        mean1, logvar1 = self.encoder(x)
        mean2, logvar2 = self.top_encoder(x, mean1)
        return jnp.concatenate([mean1, mean2], -1), jnp.concatenate([logvar1, logvar2], -1)

    def __call__(self, x: jax.Array, key: jax.Array, labels: jax.Array | None = None, num_samples: int = 1,
                 training: bool = False) -> VAEOutput:
        """K samples z1 ~ q(z1 | x), z2 ~ q(z2 | z1, x) per image and their densities (a VAEOutput)."""
        x = x.reshape(x.shape[0], -1)
        if training:
            x = self.likelihood.training_pixels(jax.random.fold_in(key, 1), x)
        mean1, logvar1 = self.encoder(x)
        z1 = reparameterize(key, mean1, logvar1, num_samples)  # (K, B, D1)
        k, b = z1.shape[:2]
        x_tiled = jnp.tile(x, (k, 1))  # (K * B, 784), sample-major like z1.reshape
        mean2, logvar2 = self.top_encoder(x_tiled, z1.reshape(k * b, -1))
        z2 = reparameterize(jax.random.fold_in(key, 2), mean2, logvar2)  # (K * B, D2)
        z = jnp.concatenate([z1, z2.reshape(k, b, -1)], -1)  # (K, B, D)
        params = self.likelihood_params(z.reshape(k * b, -1))  # (K * B, 784, P)
        log_likelihood = self.likelihood.log_prob(params, x_tiled).reshape(k, b)
        log_posterior = log_normal_diag(z1, mean1, logvar1) + log_normal_diag(z2, mean2, logvar2).reshape(k, b)
        log_prior = self.log_prior(z)
        code_mean2, code_logvar2 = self.top_encoder(x, mean1)  # q(z2 | E[z1 | x], x): the codes' top layer
        codes = jnp.concatenate([mean1, code_mean2], -1)
        code_logvars = jnp.concatenate([logvar1, code_logvar2], -1)
        return VAEOutput(log_likelihood=log_likelihood, log_prior=log_prior, log_posterior=log_posterior,
                         kl=jnp.mean(log_posterior - log_prior, axis=0),
                         kl_per_latent=kl_per_dimension(codes, code_logvars), codes=codes, z=z,
                         likelihood_params=params.reshape(k, b, *params.shape[1:]))

    def _pseudo_posteriors(self) -> tuple[jax.Array, jax.Array]:
        """q(z2 | E[z1 | u], u) at the pseudo-inputs u: the components of the top layer's VampPrior."""
        u = nn.sigmoid(self.pseudo_inputs)
        return self.top_encoder(u, self.encoder(u)[0])

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(z2) + log p(z1 | z2) for z = [z1, z2] (..., D) -> (...)."""
        z1, z2 = self._split(z)
        mean1, logvar1 = self.prior_net(z2.reshape(-1, z2.shape[-1]))
        shape = z1.shape
        log_bottom = log_normal_diag(z1.reshape(-1, shape[-1]), mean1, logvar1).reshape(shape[:-1])
        return self._log_top_prior(z2) + log_bottom

    def sample_prior(self, key: jax.Array, num: int) -> jax.Array:
        """`num` codes [z1, z2] from the prior: z2 ~ p(z2), then z1 ~ p(z1 | z2): (num, D)."""
        top_key, bottom_key = jax.random.split(key)
        z2 = self._sample_top_prior(top_key, num, self.top_encoder.latents)
        mean1, logvar1 = self.prior_net(z2)
        return jnp.concatenate([reparameterize(bottom_key, mean1, logvar1), z2], -1)
