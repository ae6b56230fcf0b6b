"""The VAE: an encoder, a decoder, a likelihood and a prior, returning a VAEOutput.

Pure functional Flax linen: usable alone with `.init` / `.apply`. Randomness is explicit:
the VAE takes a PRNG key argument for the reparameterization trick; no module holds RNG
state. Conditional models take labels (B,) int and see them one-hot: the encoder next to
the image features, the decoder next to z.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from fvae.models.gaussians import kl_per_dimension, log_normal_diag, reparameterize
from fvae.models.likelihoods import Bernoulli
from fvae.models.mlp import NUM_PIXELS
from fvae.models.priors import StandardNormal
from fvae.models.registry import Likelihood, Prior


@struct.dataclass
class VAEOutput:
    """What a VAE returns for B images with K posterior samples each: everything a bound,
    an objective, an evaluation or a picture needs. Losses and evaluation only combine these
    fields; the densities are summed over all pixels and all stochastic layers.
    """

    log_likelihood: jax.Array     # (K, B) log p(x | z_k)
    log_prior: jax.Array          # (K, B) log p(z_k)
    log_posterior: jax.Array      # (K, B) log q(z_k | x)
    kl: jax.Array                 # (B,) KL(q(z|x) || p(z)): analytic where the model has it, else
    #                               the Monte Carlo mean over k of log q(z_k|x) - log p(z_k)
    kl_per_latent: jax.Array      # (B, D) each latent's KL (free bits, diagnostics): to N(0, 1), or in
    #                               the top-down VAE to its own conditional prior p(z_l | z_>l)
    codes: jax.Array              # (B, D) posterior means: the representation for probes and pictures
    z: jax.Array                  # (K, B, D) the posterior samples
    likelihood_params: jax.Array  # (K, B, 784, P) parameters of p(x | z_k)

    @property
    def log_weights(self) -> jax.Array:
        """Log importance weights log p(x|z_k) + log p(z_k) - log q(z_k|x): (K, B)."""
        return self.log_likelihood + self.log_prior - self.log_posterior


class VAE(nn.Module):
    """Encoder + decoder + likelihood + prior (+ label conditioning).

    prior: fvae.models.priors (N(0, I), or the VampPrior, whose pseudo-inputs this module holds).
    num_classes: > 0 makes encoder and decoder conditional on a label (B,) int.
    """

    encoder: nn.Module
    decoder: nn.Module
    likelihood: Likelihood = Bernoulli()
    prior: Prior = StandardNormal()
    num_classes: int = 0

    def setup(self):
        if self.prior.pseudo_inputs:  # Unconstrained; sigmoid maps them into [0, 1] like images.
            self.pseudo_inputs = self.param("pseudo_inputs", nn.initializers.normal(1.0),
                                            (self.prior.pseudo_inputs, NUM_PIXELS))
        if self.likelihood.global_scale:
            self.global_log_scale = self.param("global_log_scale", nn.initializers.zeros, ())

    @property
    def latents(self) -> int:
        return self.encoder.latents

    @property
    def top_latents(self) -> int:
        """The size of the layer a prior (or a sampler fitted after training) draws first."""
        return self.latents

    def top_layer(self, z: jax.Array) -> jax.Array:
        """The top layer's part of codes z (..., D): (..., top_latents)."""
        return z[..., self.latents - self.top_latents:]

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Latents of each stochastic layer (group), bottom first: how the codes split."""
        return (self.latents,)

    def complete_codes(self, key: jax.Array, top: jax.Array, temperature: float = 1.0) -> jax.Array:
        """Whole codes (B, D) for top-layer draws `top` (B, top_latents): the layers below drawn
        from the generative model given it, their noise scaled by `temperature` (none in a
        one-layer VAE)."""
        del key, temperature
        return top

    def _condition(self, labels: jax.Array | None) -> jax.Array | None:
        if not self.num_classes:
            return None
        if labels is None:
            raise ValueError(f"this VAE is conditional on {self.num_classes} classes: pass labels")
        return jax.nn.one_hot(labels, self.num_classes)

    def __call__(self, x: jax.Array, key: jax.Array, labels: jax.Array | None = None, num_samples: int = 1,
                 training: bool = False) -> VAEOutput:
        """K posterior samples per image and everything a bound needs (a VAEOutput; the KL
        is analytic where the prior has it (N(0, I)), else Monte Carlo over the K samples).

        x: (B, 784) in [0, 1]. training=True scores likelihood.training_pixels(fold_in(key, 1), x)
        (a fresh binarization for the dynamically binarized Bernoulli).
        """
        x = x.reshape(x.shape[0], -1)
        if training:
            x = self.likelihood.training_pixels(jax.random.fold_in(key, 1), x)
        mean, logvar = self.encode(x, labels)
        z = reparameterize(key, mean, logvar, num_samples)  # (K, B, D)
        k, b = z.shape[:2]
        tiled_labels = None if labels is None else jnp.tile(labels, k)
        params = self.likelihood_params(z.reshape(k * b, -1), tiled_labels)  # (K * B, 784, P)
        log_likelihood = self.likelihood.log_prob(params, jnp.tile(x, (k, 1))).reshape(k, b)
        log_prior, log_posterior = self.log_prior(z), log_normal_diag(z, mean, logvar)
        per_latent = kl_per_dimension(mean, logvar)
        kl = jnp.sum(per_latent, axis=-1) if self.prior.analytic_kl else jnp.mean(log_posterior - log_prior, axis=0)
        return VAEOutput(log_likelihood=log_likelihood, log_prior=log_prior, log_posterior=log_posterior, kl=kl,
                         kl_per_latent=per_latent, codes=mean, z=z,
                         likelihood_params=params.reshape(k, b, *params.shape[1:]))

    def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x, self._condition(labels))

    def likelihood_params(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Pixel parameters (B, 784, P) of p(x|z)."""
        params = self.decoder(z, self._condition(labels))
        if self.likelihood.global_scale:
            params = jnp.concatenate([params, jnp.broadcast_to(self.global_log_scale, params.shape)], axis=-1)
        return params

    def log_likelihood(self, params: jax.Array, x: jax.Array) -> jax.Array:
        """log p(x|z) summed over pixels: params (B, 784, P), x (B, 784) in [0, 1] -> (B,)."""
        return self.likelihood.log_prob(params, x.reshape(x.shape[0], -1))

    def pixel_means(self, params: jax.Array) -> jax.Array:
        """E[x|z] per pixel (B, 784) in [0, 1], for pictures."""
        return self.likelihood.mean(params)

    def _pseudo_posteriors(self) -> tuple[jax.Array, jax.Array]:
        """q(z | u) at the prior's pseudo-inputs u: (means, logvars), each (K, D)."""
        return self.encoder(nn.sigmoid(self.pseudo_inputs))

    def _log_top_prior(self, z: jax.Array) -> jax.Array:
        """log p(z) of the prior on the (top) layer, summed over latents: (..., D) -> (...)."""
        return self.prior.log_prob(z, self._pseudo_posteriors)

    def _sample_top_prior(self, key: jax.Array, num: int, latents: int, temperature: float = 1.0) -> jax.Array:
        """`num` draws (num, latents) from the prior on the (top) layer at `temperature`."""
        return self.prior.sample(key, num, latents, self._pseudo_posteriors, temperature)

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(z) summed over latents: z (..., D) -> (...)."""
        return self._log_top_prior(z)

    def sample_prior(self, key: jax.Array, num: int, temperature: float = 1.0) -> jax.Array:
        """`num` latents from the prior, its noise scaled by `temperature`: (num, D)."""
        return self._sample_top_prior(key, num, self.latents, temperature)

    def generate(self, key: jax.Array, num: int, labels: jax.Array | None = None,
                 temperature: float = 1.0) -> jax.Array:
        """Pixel means (B, 784) of `num` samples from the prior at `temperature` (given labels if conditional)."""
        return self.pixel_means(self.likelihood_params(self.sample_prior(key, num, temperature), labels))
