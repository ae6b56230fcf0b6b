"""Decoder likelihoods p(x|z) over the 784 pixels, chosen by `likelihood.name` from `LIKELIHOODS`.

A likelihood reads the decoder's per-pixel parameters (B, D, P) (P = `params_per_pixel`)
and pixels x (B, D) in [0, 1] and returns log p(x|z) summed over pixels, (B,) in nats; it is
a frozen dataclass (hashable: a Flax module or a jitted function holds it as a static field)
whose fields are its config keys. `discrete`: a mass over the data's discrete values, so
-log p(x) converts to bits per dimension.

* Bernoulli: binary cross-entropy; on grey pixels NOT a normalized density (grey values are
  outside its support {0, 1}); on binarized pixels it is.
* BinarizedBernoulli: each training batch binarized afresh; evaluation data binarized once.
* ContinuousBernoulli: the normalized density on [0, 1] (Loaiza-Ganem and Cunningham, 2019).
* DiscretizedLogistic: a mixture of logistics discretized to the 256 pixel levels (PixelCNN++).
* Gaussian: N(x; mean, sigma^2) with sigma per pixel, or one global sigma the VAE learns.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from fvae.data import binarize_fixed
from fvae.models.registry import Likelihood, lookup, registry

NUM_LEVELS = 256


def _sum_pixels(values: jax.Array) -> jax.Array:
    return values.reshape(values.shape[0], -1).sum(axis=-1)


def _bernoulli_terms(logits: jax.Array, x: jax.Array) -> jax.Array:
    """x log sigmoid(l) + (1 - x) log sigmoid(-l) = x l - softplus(l) per pixel, stable for any
    logit: one softplus, not two (docs/performance.md)."""
    return x * logits - jax.nn.softplus(logits)


@dataclasses.dataclass(frozen=True)
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels with probabilities sigmoid(logits) scored on the pixels as
    given (grey: the BCE objective, not normalized); params (B, D, 1)."""

    name = "bernoulli"
    support = "binary"

    def log_prob(self, params: jax.Array, x: jax.Array) -> jax.Array:
        return _sum_pixels(_bernoulli_terms(params[..., 0], x))

    def mean(self, params: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(params[..., 0])


@dataclasses.dataclass(frozen=True)
class BinarizedBernoulli(Bernoulli):
    """The Bernoulli on binary pixels: each training batch binarized afresh (dynamic
    binarization), validation and test binarized once by `eval_binarization_seed`. A
    normalized mass over {0, 1}^784, so bits per dimension are defined."""

    eval_binarization_seed: int = 0
    name = "binarized_bernoulli"
    discrete = True

    def training_pixels(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Dynamic binarization: each training batch resampled as Bernoulli(intensity)."""
        return binarize(key, x)

    def evaluation_images(self, images: np.ndarray, stream: int) -> np.ndarray:
        """One fixed binarization of the split's images by [eval_binarization_seed, stream]."""
        return binarize_fixed(images, [self.eval_binarization_seed, stream])


def _continuous_bernoulli_log_normalizer(logits: jax.Array) -> jax.Array:
    """log C(lambda) for lambda = sigmoid(logits), with C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda).

    In logits, C = logits / tanh(logits / 2): no division by (1 - 2 lambda), and near
    logits = 0 (lambda = 1/2) the Taylor series 2 (1 + l^2/12 - l^4/720) replaces the 0/0.
    """
    near_half = jnp.abs(logits) < 1e-2
    safe = jnp.where(near_half, 1.0, logits)  # Keeps the unused branch's gradient finite.
    exact = jnp.log(jnp.abs(safe)) - jnp.log(jnp.abs(jnp.tanh(0.5 * safe)))
    squared = jnp.square(logits)
    taylor = math.log(2.0) + jnp.log1p(squared / 12.0 - jnp.square(squared) / 720.0)
    return jnp.where(near_half, taylor, exact)


@dataclasses.dataclass(frozen=True)
class ContinuousBernoulli(Likelihood):
    """The continuous Bernoulli density on [0, 1] with parameter sigmoid(logits); params (B, D, 1)."""

    name = "continuous_bernoulli"
    support = "unit_interval"

    def log_prob(self, params: jax.Array, x: jax.Array) -> jax.Array:
        logits = params[..., 0]
        return _sum_pixels(_bernoulli_terms(logits, x) + _continuous_bernoulli_log_normalizer(logits))

    def mean(self, params: jax.Array) -> jax.Array:
        """E[x] = lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)) = 1/(1 - e^-l) - 1/l."""
        logits = params[..., 0]
        near_half = jnp.abs(logits) < 1e-2
        safe = jnp.where(near_half, 1.0, logits)
        exact = -1.0 / jnp.expm1(-safe) - 1.0 / safe
        return jnp.where(near_half, 0.5 + logits / 12.0, exact)


@dataclasses.dataclass(frozen=True)
class DiscretizedLogistic(Likelihood):
    """A mixture of `mixtures` logistics over the 256 pixel levels; params (B, D, 3 * mixtures).

    Channels: mixture logits, means (on the [-1, 1] scale of the levels), log scales.
    Level k in 0..255 sits at k/127.5 - 1 and owns the bin of half-width 1/255 around
    it; the lowest and highest levels own the tails, so the 256 masses sum to one.
    """

    mixtures: int = 1
    discrete = True
    support = "levels"
    name = "discretized_logistic"
    min_log_scale = -7.0

    @classmethod
    def check(cls, section) -> list[str]:
        return [] if section.mixtures >= 1 else [f"likelihood.mixtures must be >= 1, got {section.mixtures!r}"]

    @property
    def params_per_pixel(self) -> int:  # type: ignore[override]  # a class constant elsewhere
        return 3 * self.mixtures

    def _split(self, params: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        k = self.mixtures
        log_weights = jax.nn.log_softmax(params[..., :k], axis=-1)
        means = params[..., k:2 * k]
        log_scales = jnp.maximum(params[..., 2 * k:3 * k], self.min_log_scale)
        return log_weights, means, log_scales

    def log_prob(self, params: jax.Array, x: jax.Array) -> jax.Array:
        log_weights, means, log_scales = self._split(params)
        level = jnp.round(x * (NUM_LEVELS - 1))[..., None]  # (B, D, 1) in 0..255
        centered = level / 127.5 - 1.0 - means
        inv_scale = jnp.exp(-log_scales)
        upper = inv_scale * (centered + 1.0 / 255.0)
        lower = inv_scale * (centered - 1.0 / 255.0)
        # log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log sigmoid(-b) + log(1 - e^(b - a)), a > b.
        log_bin = (jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower)
                   + jnp.log(-jnp.expm1(lower - upper)))
        log_mass = jnp.where(level == 0, jax.nn.log_sigmoid(upper),
                             jnp.where(level == NUM_LEVELS - 1, jax.nn.log_sigmoid(-lower), log_bin))
        return _sum_pixels(jax.nn.logsumexp(log_weights + log_mass, axis=-1))

    def mean(self, params: jax.Array) -> jax.Array:
        """E[level] / 255 exactly: the sum over the 255 bin edges b of P(level above b) / 255,
        each P(x > b) = sigmoid((mean - b) / scale) per component (the edge bins included)."""
        log_weights, means, log_scales = self._split(params)
        inv_scale = jnp.exp(-log_scales)

        def add_edge(j, total):
            edge = (j + 0.5) / 127.5 - 1.0
            return total + jax.nn.sigmoid(inv_scale * (means - edge))

        above = jax.lax.fori_loop(0, NUM_LEVELS - 1, add_edge, jnp.zeros_like(means))
        return jnp.sum(jnp.exp(log_weights) * above, axis=-1) / (NUM_LEVELS - 1)


@dataclasses.dataclass(frozen=True)
class Gaussian(Likelihood):
    """N(x; mean, exp(log_scale)^2) per pixel on continuous intensities; params (B, D, 2).

    `variance`: "per_pixel" (the decoder predicts each pixel's scale) or "global" (one
    learned scale for every pixel and image). Scales are floored at exp(min_log_scale)
    so the density cannot collapse onto the many exactly-black pixels.
    """

    variance: str = "per_pixel"
    params_per_pixel = 2
    name = "gaussian"
    min_log_scale = -6.0
    variances = ("per_pixel", "global")

    @classmethod
    def check(cls, section) -> list[str]:
        return [] if section.variance in cls.variances else [
            f"likelihood.variance must be one of {cls.variances}, got {section.variance!r}"]

    @property
    def global_scale(self) -> bool:  # type: ignore[override]  # a class constant elsewhere
        """With variance "global" the VAE supplies the scale channel: one learned parameter."""
        return self.variance == "global"

    def log_prob(self, params: jax.Array, x: jax.Array) -> jax.Array:
        mean, log_scale = params[..., 0], jnp.maximum(params[..., 1], self.min_log_scale)
        z = (x - mean) * jnp.exp(-log_scale)
        return _sum_pixels(-0.5 * jnp.square(z) - log_scale - 0.5 * math.log(2.0 * math.pi))

    def mean(self, params: jax.Array) -> jax.Array:
        return jnp.clip(params[..., 0], 0.0, 1.0)


LIKELIHOODS = registry(Bernoulli, BinarizedBernoulli, ContinuousBernoulli, DiscretizedLogistic, Gaussian)


def build_likelihood(likelihood_config) -> Likelihood:
    """The likelihood a config's likelihood section names, with its own fields from the section."""
    return lookup(LIKELIHOODS, likelihood_config.name, "likelihood.name").from_config(likelihood_config)


def binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """Bernoulli(x) samples of [0, 1] intensities, as float32 0/1: the dynamic binarization."""
    return jax.random.bernoulli(key, x).astype(jnp.float32)


def bits_per_dim(nats_per_image: float, dims: int = 784) -> float:
    """Nats per image -> bits per dimension (pixel)."""
    return nats_per_image / (dims * math.log(2.0))
