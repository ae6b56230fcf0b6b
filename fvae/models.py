"""Pure functional Flax linen encoders, decoders and the VAE that composes them.

Every module is usable alone with `.init` / `.apply`. Randomness is explicit: the VAE
takes a PRNG key argument for the reparameterization trick; no module holds RNG state.

Images enter flattened, (B, 784) in [0, 1]; the conv modules reshape to (B, 28, 28, 1)
themselves. Decoders return per-pixel likelihood parameters (B, 784, P), P set by the
likelihood (fvae.likelihoods). Conditional models take labels (B,) int and see them
one-hot: the encoder next to the image features, the decoder next to z.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from fvae.data import IMAGE_SHAPE, NUM_CLASSES
from fvae.likelihoods import Bernoulli, Likelihood, build_likelihood
from fvae.losses import LOG_2PI, kl_per_dimension, log_normal_diag, log_standard_normal

NUM_PIXELS = math.prod(IMAGE_SHAPE)


def _with_condition(h: jax.Array, condition: jax.Array | None) -> jax.Array:
    return h if condition is None else jnp.concatenate([h, condition.astype(h.dtype)], axis=-1)


def _hidden_layers(h: jax.Array, widths: Sequence[int], dtype: Any) -> jax.Array:
    """ReLU dense layers "hidden_0", "hidden_1", ... of the calling (compact) module."""
    for i, width in enumerate(widths):
        h = nn.relu(nn.Dense(width, dtype=dtype, name=f"hidden_{i}")(h))
    return h


class Encoder(nn.Module):
    """MLP q(z|x): images (B, ...) -> posterior mean and log-variance, each (B, latents).

    dtype: the compute dtype of the layers (e.g. bfloat16); parameters and outputs stay float32.
    """

    hidden: Sequence[int] = (500,)
    latents: int = 20
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        h = _with_condition(x.reshape(x.shape[0], -1), condition)  # (B, 784 [+ classes])
        h = _hidden_layers(h, self.hidden, self.dtype)
        mean = nn.Dense(self.latents, dtype=self.dtype, name="mean")(h)
        logvar = nn.Dense(self.latents, dtype=self.dtype, name="logvar")(h)
        return mean.astype(jnp.float32), logvar.astype(jnp.float32)


class Decoder(nn.Module):
    """MLP p(x|z): latents (B, latents) -> pixel parameters (B, *output_shape, P), float32."""

    hidden: Sequence[int] = (500,)
    output_shape: Sequence[int] = (NUM_PIXELS,)
    params_per_pixel: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
        h = _with_condition(z, condition)
        h = _hidden_layers(h, self.hidden, self.dtype)
        out = nn.Dense(math.prod(self.output_shape) * self.params_per_pixel, dtype=self.dtype, name="logits")(h)
        return out.astype(jnp.float32).reshape(z.shape[0], *self.output_shape, self.params_per_pixel)


class ConvEncoder(nn.Module):
    """Conv q(z|x): stride-2 3x3 convs (28 -> 14 -> 7 ...), then dense layers -> (mean, logvar)."""

    channels: Sequence[int] = (32, 64)
    hidden: Sequence[int] = (16,)
    latents: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        h = x.reshape(x.shape[0], *IMAGE_SHAPE)  # (B, 28, 28, 1)
        for i, width in enumerate(self.channels):
            h = nn.relu(nn.Conv(width, (3, 3), strides=2, padding="SAME", dtype=self.dtype, name=f"conv_{i}")(h))
        h = _with_condition(h.reshape(h.shape[0], -1), condition)  # (B, 7 * 7 * C [+ classes])
        h = _hidden_layers(h, self.hidden, self.dtype)
        mean = nn.Dense(self.latents, dtype=self.dtype, name="mean")(h)
        logvar = nn.Dense(self.latents, dtype=self.dtype, name="logvar")(h)
        return mean.astype(jnp.float32), logvar.astype(jnp.float32)


def pixel_shuffle(h: jax.Array, factor: int) -> jax.Array:
    """Sub-pixel upsampling (depth to space): (B, H, W, C * f^2) -> (B, H * f, W * f, C)."""
    b, height, width, channels = h.shape
    c = channels // (factor * factor)
    h = h.reshape(b, height, width, factor, factor, c)
    return h.transpose(0, 1, 3, 2, 4, 5).reshape(b, height * factor, width * factor, c)


UPSAMPLING = ("pixel_shuffle", "transpose")


class ConvDecoder(nn.Module):
    """Conv p(x|z): dense layers -> (7, 7, channels[0]), stride-2 upsampling blocks to 28x28,
    a final 3x3 conv to P channels -> pixel parameters (B, 784, P).

    upsample: "transpose" (3x3 stride-2 transposed convs, as in Chollet's Keras VAE) or
    "pixel_shuffle" (a 3x3 conv to 4x the channels, then depth-to-space): the same
    resolution and receptive field, and on CPU a much cheaper gradient (benchmarks/).
    """

    channels: Sequence[int] = (64, 32)
    hidden: Sequence[int] = ()
    params_per_pixel: int = 1
    upsample: str = "pixel_shuffle"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
        h = _with_condition(z, condition)
        h = _hidden_layers(h, self.hidden, self.dtype)
        side = IMAGE_SHAPE[0] // 2 ** len(self.channels)  # 7 for two upsampling blocks
        h = nn.relu(nn.Dense(side * side * self.channels[0], dtype=self.dtype, name="project")(h))
        h = h.reshape(z.shape[0], side, side, self.channels[0])
        for i, width in enumerate(self.channels):
            if self.upsample == "transpose":
                h = nn.ConvTranspose(width, (3, 3), strides=(2, 2), padding="SAME", dtype=self.dtype,
                                     name=f"upsample_{i}")(h)
            else:
                h = pixel_shuffle(nn.Conv(4 * width, (3, 3), padding="SAME", dtype=self.dtype,
                                          name=f"upsample_{i}")(h), 2)
            h = nn.relu(h)
        out = nn.Conv(self.params_per_pixel, (3, 3), padding="SAME", dtype=self.dtype, name="logits")(h)
        return out.astype(jnp.float32).reshape(z.shape[0], NUM_PIXELS, self.params_per_pixel)


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array, num_samples: int | None = None
                   ) -> jax.Array:
    """z = mean + sigma * eps with eps ~ N(0, I): differentiable in mean and logvar.

    With num_samples=K, K independent samples: (K, *mean.shape).
    """
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    eps = jax.random.normal(key, shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


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
    kl_per_latent: jax.Array      # (B, D) each latent's KL to N(0, 1) (free bits, diagnostics)
    codes: jax.Array              # (B, D) posterior means: the representation for probes and pictures
    z: jax.Array                  # (K, B, D) the posterior samples
    likelihood_params: jax.Array  # (K, B, 784, P) parameters of p(x | z_k)

    @property
    def log_weights(self) -> jax.Array:
        """Log importance weights log p(x|z_k) + log p(z_k) - log q(z_k|x): (K, B)."""
        return self.log_likelihood + self.log_prior - self.log_posterior


class VAE(nn.Module):
    """Encoder + decoder + likelihood + prior (+ label conditioning).

    prior_components: 0 for the N(0, I) prior; K > 0 for the VampPrior, the mixture
    (1/K) sum_k q(z | u_k) of the encoder's posteriors at K learned pseudo-inputs u_k.
    num_classes: > 0 makes encoder and decoder conditional on a label (B,) int.
    """

    encoder: nn.Module
    decoder: nn.Module
    likelihood: Likelihood = Bernoulli()
    prior_components: int = 0
    num_classes: int = 0

    def setup(self):
        if self.prior_components:  # Unconstrained; sigmoid maps them into [0, 1] like images.
            self.pseudo_inputs = self.param("pseudo_inputs", nn.initializers.normal(1.0),
                                            (self.prior_components, NUM_PIXELS))
        if self.likelihood.global_scale:
            self.global_log_scale = self.param("global_log_scale", nn.initializers.zeros, ())

    @property
    def latents(self) -> int:
        return self.encoder.latents

    def _condition(self, labels: jax.Array | None) -> jax.Array | None:
        if not self.num_classes:
            return None
        if labels is None:
            raise ValueError(f"this VAE is conditional on {self.num_classes} classes: pass labels")
        return jax.nn.one_hot(labels, self.num_classes)

    def __call__(self, x: jax.Array, key: jax.Array, labels: jax.Array | None = None, num_samples: int = 1,
                 training: bool = False) -> VAEOutput:
        """K posterior samples per image and everything a bound needs (a VAEOutput; the KL
        is analytic for the N(0, I) prior, Monte Carlo over the K samples for the VampPrior).

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
        kl = jnp.mean(log_posterior - log_prior, axis=0) if self.prior_components else jnp.sum(per_latent, axis=-1)
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
        return self.encoder(nn.sigmoid(self.pseudo_inputs))

    def _log_top_prior(self, z: jax.Array) -> jax.Array:
        """log of N(0, I) or of the VampPrior (at `_pseudo_posteriors`) summed over latents: (..., D) -> (...)."""
        if not self.prior_components:
            return log_standard_normal(z)
        means, logvars = self._pseudo_posteriors()  # (K, D) each
        return log_mixture_of_diagonal_normals(z, means, logvars)

    def _sample_top_prior(self, key: jax.Array, num: int, latents: int) -> jax.Array:
        """`num` draws (num, latents) from N(0, I) or from the VampPrior mixture."""
        if not self.prior_components:
            return jax.random.normal(key, (num, latents))
        means, logvars = self._pseudo_posteriors()
        pick_key, noise_key = jax.random.split(key)
        component = jax.random.randint(pick_key, (num,), 0, self.prior_components)
        return reparameterize(noise_key, means[component], logvars[component])

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(z) summed over latents: z (..., D) -> (...)."""
        return self._log_top_prior(z)

    def sample_prior(self, key: jax.Array, num: int) -> jax.Array:
        """`num` latents from the prior: (num, D)."""
        return self._sample_top_prior(key, num, self.latents)

    def generate(self, key: jax.Array, num: int, labels: jax.Array | None = None) -> jax.Array:
        """Pixel means (B, 784) of `num` samples from the prior (given labels if conditional)."""
        return self.pixel_means(self.likelihood_params(self.sample_prior(key, num), labels))


class HierarchicalVAE(VAE):
    """A VAE with two stochastic layers (the two-level model of Tomczak and Welling, 2018):
    generative p(z2) p(z1 | z2) p(x | z1, z2), inference q(z1 | x) q(z2 | z1, x), all MLPs.

    The code of an image is both layers concatenated, z = [z1, z2] (D = latents of
    `encoder` + latents of `top_encoder`): `encode`, `likelihood_params`, `log_prior`,
    `sample_prior` and VAEOutput.z all use it, so every evaluation works unchanged. The
    prior on the top layer is N(0, I), or the VampPrior (prior_components > 0) at the
    pseudo-inputs' q(z2 | E[z1 | u], u). Its KL has no closed form: VAEOutput.kl is the
    Monte Carlo mean over the samples. Not conditional (num_classes must be 0).

    encoder: q(z1 | x); top_encoder: q(z2 | z1, x) (an Encoder reading x with z1 beside it);
    prior_net: p(z1 | z2) (an Encoder reading z2); decoder: p(x | z1, z2) on [z1, z2].
    """

    top_encoder: nn.Module = None
    prior_net: nn.Module = None

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


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ARCHITECTURES = ("mlp", "conv", "hierarchical")


def build_model(config) -> VAE:
    """The VAE a full config describes (sections model, likelihood, prior)."""
    m = config.model
    dtype = COMPUTE_DTYPES[m.compute_dtype]
    likelihood = build_likelihood(config.likelihood)
    per_pixel = likelihood.params_per_pixel - int(likelihood.global_scale)  # Decoder channels per pixel.
    prior_components = config.prior.components if config.prior.name == "vamp" else 0
    if m.architecture == "hierarchical":
        return HierarchicalVAE(Encoder(tuple(m.encoder_hidden), m.latents, dtype),
                               Decoder(tuple(m.decoder_hidden), (NUM_PIXELS,), per_pixel, dtype), likelihood,
                               prior_components, top_encoder=Encoder(tuple(m.encoder_hidden), m.top_latents, dtype),
                               prior_net=Encoder(tuple(m.decoder_hidden), m.latents, dtype))
    if m.architecture == "conv":
        encoder = ConvEncoder(tuple(m.conv_channels), tuple(m.encoder_hidden), m.latents, dtype)
        decoder = ConvDecoder(tuple(reversed(m.conv_channels)), tuple(m.decoder_hidden), per_pixel, m.upsample,
                              dtype)
    else:
        encoder = Encoder(tuple(m.encoder_hidden), m.latents, dtype)
        decoder = Decoder(tuple(m.decoder_hidden), (NUM_PIXELS,), per_pixel, dtype)
    return VAE(encoder, decoder, likelihood, prior_components, NUM_CLASSES if m.conditional else 0)
