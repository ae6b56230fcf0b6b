"""The hierarchical VAE with L >= 2 stochastic layers (the "hierarchical" architecture)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from fvae.models.gaussians import kl_per_dimension, log_normal_diag, reparameterize
from fvae.models.vae import VAE, VAEOutput


class HierarchicalVAE(VAE):
    """A VAE with stochastic layers z1 .. zL (Tomczak and Welling's two-level model, made deeper):
    generative p(zL) p(z_{L-1} | zL) ... p(z1 | z2) p(x | z1, ..., zL), inference q(z1 | x)
    q(z2 | z1, x) ... q(zL | z_{L-1}, x), all MLPs.

    The code of an image is every layer concatenated, z = [z1, ..., zL]: `encode`,
    `likelihood_params`, `log_prior`, `sample_prior` and VAEOutput.z all use it, so every
    evaluation works unchanged. The prior on the top layer is `prior`: N(0, I), or the
    VampPrior at the pseudo-inputs' q(zL | E[z_{L-1} | u], u). Its KL has no closed form:
    VAEOutput.kl is the Monte Carlo mean over the samples. Not conditional.

    encoder: q(z1 | x); middle_encoders: q(zl | z_{l-1}, x) for l = 2 .. L-1; top_encoder:
    q(zL | z_{L-1}, x) (Encoders reading x with the layer below beside it); middle_prior_nets:
    p(zl | z_{l+1}) for l = 2 .. L-1; prior_net: p(z1 | z2); decoder: p(x | z1, ..., zL). With
    no middle layers it is the two-layer model, parameter for parameter and number for number.
    """

    top_encoder: nn.Module = None  # type: ignore[assignment]  # required: set by the architecture
    prior_net: nn.Module = None  # type: ignore[assignment]  # required: set by the architecture
    middle_encoders: Sequence[nn.Module] = ()
    middle_prior_nets: Sequence[nn.Module] = ()

    @property
    def layer_encoders(self) -> list[nn.Module]:
        """q(zl | ...) for l = 1 .. L."""
        return [self.encoder, *self.middle_encoders, self.top_encoder]

    @property
    def latents(self) -> int:
        return sum(e.latents for e in self.layer_encoders)

    @property
    def top_latents(self) -> int:
        return self.top_encoder.latents

    @property
    def group_sizes(self) -> tuple[int, ...]:
        return tuple(e.latents for e in self.layer_encoders)

    def _split(self, z: jax.Array) -> list[jax.Array]:
        """[z1, ..., zL] of codes z (..., D)."""
        ends = [0]
        for encoder in self.layer_encoders:
            ends.append(ends[-1] + encoder.latents)
        return [z[..., a:b] for a, b in zip(ends[:-1], ends[1:], strict=True)]

    def _mean_chain(self, x: jax.Array) -> tuple[list[jax.Array], list[jax.Array]]:
        """Means and log-variances of each layer, each from the layer below's mean and x."""
        mean, logvar = self.encoder(x)
        means, logvars = [mean], [logvar]
        for encoder in [*self.middle_encoders, self.top_encoder]:
            mean, logvar = encoder(x, means[-1])
            means.append(mean)
            logvars.append(logvar)
        return means, logvars

    def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """Means and log-variances of [z1, ..., zL]: q(z1 | x), then each q(zl | E[z_{l-1}], x): (B, D)."""
        means, logvars = self._mean_chain(x.reshape(x.shape[0], -1))
        return jnp.concatenate(means, -1), jnp.concatenate(logvars, -1)

    def __call__(self, x: jax.Array, key: jax.Array, labels: jax.Array | None = None, num_samples: int = 1,
                 training: bool = False) -> VAEOutput:
        """K samples z1 ~ q(z1 | x), zl ~ q(zl | z_{l-1}, x) per image and their densities (a VAEOutput).
        Layer l >= 2 draws with fold_in(key, l)."""
        x = x.reshape(x.shape[0], -1)
        if training:
            x = self.likelihood.training_pixels(jax.random.fold_in(key, 1), x)
        mean1, logvar1 = self.encoder(x)
        z1 = reparameterize(key, mean1, logvar1, num_samples)  # (K, B, D1)
        k, b = z1.shape[:2]
        x_tiled = jnp.tile(x, (k, 1))  # (K * B, 784), sample-major like z1.reshape
        below = z1.reshape(k * b, -1)
        upper, log_posterior = [], log_normal_diag(z1, mean1, logvar1)
        for layer, encoder in enumerate([*self.middle_encoders, self.top_encoder], start=2):
            mean, logvar = encoder(x, below)  # x's share of its first layer once per image (mlp.Encoder)
            below = reparameterize(jax.random.fold_in(key, layer), mean, logvar)  # (K * B, Dl)
            upper.append(below.reshape(k, b, -1))
            log_posterior = log_posterior + log_normal_diag(below, mean, logvar).reshape(k, b)
        z = jnp.concatenate([z1, *upper], -1)  # (K, B, D)
        params = self.likelihood_params(z.reshape(k * b, -1))  # (K * B, 784, P)
        log_likelihood = self.likelihood.log_prob(params, x_tiled).reshape(k, b)
        log_prior = self.log_prior(z)
        # The codes: q(z1 | x), then each layer at the mean of the one below.
        code_means, code_logvars = [mean1], [logvar1]
        for encoder in [*self.middle_encoders, self.top_encoder]:
            mean, logvar = encoder(x, code_means[-1])
            code_means.append(mean)
            code_logvars.append(logvar)
        codes, code_logvar = jnp.concatenate(code_means, -1), jnp.concatenate(code_logvars, -1)
        return VAEOutput(log_likelihood=log_likelihood, log_prior=log_prior, log_posterior=log_posterior,
                         kl=jnp.mean(log_posterior - log_prior, axis=0),
                         kl_per_latent=kl_per_dimension(codes, code_logvar), codes=codes, z=z,
                         likelihood_params=params.reshape(k, b, *params.shape[1:]))

    def _pseudo_posteriors(self) -> tuple[jax.Array, jax.Array]:
        """q(zL | E[z_{L-1} | u], u) at the pseudo-inputs u: the components of the top layer's VampPrior."""
        means, logvars = self._mean_chain(nn.sigmoid(self.pseudo_inputs))
        return means[-1], logvars[-1]

    def _conditional_priors(self) -> list[nn.Module]:
        """p(zl | z_{l+1}) for l = 1 .. L-1."""
        return [self.prior_net, *self.middle_prior_nets]

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(zL) + the sum over l < L of log p(zl | z_{l+1}), for z = [z1, ..., zL] (..., D) -> (...)."""
        layers = self._split(z)
        conditional = []  # log p(zl | z_{l+1}), l = 1 .. L-1: computed before the top prior, as before L > 2.
        for below, above, net in zip(layers[:-1], layers[1:], self._conditional_priors(), strict=True):
            mean, logvar = net(above.reshape(-1, above.shape[-1]))
            log_density = log_normal_diag(below.reshape(-1, below.shape[-1]), mean, logvar)
            conditional.append(log_density.reshape(below.shape[:-1]))
        total = self._log_top_prior(layers[-1])
        for term in reversed(conditional):
            total = total + term
        return total

    def sample_prior(self, key: jax.Array, num: int, temperature: float = 1.0) -> jax.Array:
        """`num` codes [z1, ..., zL] from the prior: zL ~ p(zL), then each layer given the one above,
        every layer's noise scaled by `temperature`: (num, D).
        Keys: split(key, L); the top layer draws with the first, z1 with the second."""
        keys = jax.random.split(key, len(self.layer_encoders))
        top = self._sample_top_prior(keys[0], num, self.top_encoder.latents, temperature)
        return self._layers_below(keys, top, temperature)

    def complete_codes(self, key: jax.Array, top: jax.Array, temperature: float = 1.0) -> jax.Array:
        """[z1, ..., zL] for top-layer draws zL (B, D_L): z_{L-1} ~ p(z_{L-1} | zL) down to z1 at
        `temperature` (the keys of sample_prior's, so the prior's own draws give its samples)."""
        return self._layers_below(jax.random.split(key, len(self.layer_encoders)), top, temperature)

    def _layers_below(self, keys: jax.Array, top: jax.Array, temperature: float) -> jax.Array:
        layers = [top]
        nets = self._conditional_priors()
        for index in range(len(nets) - 1, -1, -1):  # z_{L-1} down to z1.
            mean, logvar = nets[index](layers[0])
            layer_key = keys[1] if index == 0 else keys[1 + index]
            layers.insert(0, reparameterize(layer_key, mean, logvar + 2.0 * jnp.log(temperature)))
        return jnp.concatenate(layers, -1)
