"""The top-down hierarchical VAE (Ladder VAE, NVAE, VDVAE): the "top_down" architecture.

One bottom-up pass turns an image into features h_1 .. h_L (h_l for group l; l = L is the
top), once per image however many importance samples are drawn. One top-down path is shared
by the generative model and the posterior: a state s starts as a learned constant; for each
group from the top, p(z_l | z_>l) is read off s, q(z_l | x, z_>l) combines s with h_l, z_l
is drawn, and s absorbs it through a residual cell. The pixels are read off the final s.

q combines with p in one of two ways (`posterior`): "residual", NVAE's residual Normal
(q's mean and log-variance are p's plus a correction computed from [s, h_l]), or "merge",
the Ladder VAE's precision-weighted product of p with a Gaussian read off h_l alone.

Cells are MLP residual blocks (vectors; `gated` units or swish) or convolutional residual
blocks (feature maps), so groups sit at one or more resolutions (e.g. 1x1, 7x7, 14x14).
Every log-variance is bounded softly to a range (lo, hi) (soft_bound). The codes of an image are all groups
concatenated bottom first, z = [z_1, ..., z_L] (the top group last, as in the bottom-up
hierarchical VAE), so every evaluation, sampler and picture works unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fvae.models.conv import pixel_shuffle
from fvae.models.conv_layers import Conv3x3
from fvae.models.gaussians import log_normal_diag
from fvae.models.mlp import NUM_PIXELS, activation
from fvae.models.vae import VAE, VAEOutput

POSTERIORS = ("residual", "merge")
IMAGE_SIDE = 28


def soft_bound(logvar: jax.Array, bounds: tuple[float, float]) -> jax.Array:
    """lo tanh(v / lo) for v < 0, hi tanh(v / hi) above, for bounds (lo, hi), lo < 0 < hi: the
    identity near 0 (slope 1 from both sides), never beyond lo or hi."""
    lo, hi = bounds
    return jnp.where(logvar < 0, lo * jnp.tanh(logvar / lo), hi * jnp.tanh(logvar / hi))


def gaussian_kl(q_mean, q_logvar, p_mean, p_logvar) -> jax.Array:
    """KL(N(q_mean, e^q_logvar) || N(p_mean, e^p_logvar)) per latent, elementwise."""
    return 0.5 * (p_logvar - q_logvar + (jnp.exp(q_logvar) + jnp.square(q_mean - p_mean)) * jnp.exp(-p_logvar) - 1.0)


class Cell(nn.Module):
    """A residual block h + f([h, extra]): f is Dense -> act -> Dense (vectors) or
    1x1 -> act -> 3x3 -> act -> 1x1 (feature maps). The last layer starts small (scaled by
    `out_scale`, VDVAE's 1/sqrt(depth)) so a deep stack starts near the identity. norm: f
    reads h through a LayerNorm (pre-norm), so f's input stays bounded however far h goes."""

    width: int
    hidden: int
    conv: bool = False
    gated: bool = False
    out_scale: float = 1.0
    conv_impl: str = "auto"
    dtype: Any = jnp.float32
    norm: bool = False

    @nn.compact
    def __call__(self, h: jax.Array, extra: jax.Array | None = None) -> jax.Array:
        y = nn.LayerNorm(name="norm")(h) if self.norm else h
        y = y if extra is None else jnp.concatenate([y, extra.astype(h.dtype)], -1)
        units = 2 * self.hidden if self.gated else self.hidden
        y = self._act(nn.Dense(units, dtype=self.dtype, name="in")(y))
        if self.conv:
            y = self._act(Conv3x3(units, impl=self.conv_impl, dtype=self.dtype, name="mid")(y))
        init = nn.initializers.variance_scaling(self.out_scale ** 2, "fan_in", "truncated_normal")
        return h + nn.Dense(self.width, dtype=self.dtype, kernel_init=init, name="out")(y).astype(h.dtype)

    def _act(self, y: jax.Array) -> jax.Array:
        return activation(y, True) if self.gated else nn.swish(y)


class Head(nn.Module):
    """Gaussian parameters (mean, bounded log-variance) of `latents` per position, from one
    hidden layer over its inputs. The inputs' first-layer products are summed, so an input
    of B rows adds to one of K * B rows (sample-major) without being repeated."""

    latents: int
    hidden: int
    bounds: tuple[float, float]
    gated: bool = False
    dtype: Any = jnp.float32
    norm: bool = False  # Each input through a LayerNorm first

    @nn.compact
    def __call__(self, *inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        units = 2 * self.hidden if self.gated else self.hidden
        rows = max(x.shape[0] for x in inputs)
        parts = []
        for i, x in enumerate(inputs):
            x = nn.LayerNorm(name=f"norm_{i}")(x) if self.norm else x
            y = nn.Dense(units, dtype=self.dtype, use_bias=i == 0, name=f"in_{i}")(x)
            if y.shape[0] != rows:  # Per image: add to each of the K samples.
                y = jnp.broadcast_to(y, (rows // y.shape[0], *y.shape)).reshape(rows, *y.shape[1:])
            parts.append(y)
        h = sum(parts[1:], parts[0])
        h = activation(h, True) if self.gated else nn.swish(h)
        out = nn.Dense(2 * self.latents, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="out")(h)
        mean, logvar = jnp.split(out.astype(jnp.float32), 2, axis=-1)
        return mean, soft_bound(logvar, self.bounds)


class BottomUp(nn.Module):
    """x (B, 784) -> features of each group, top group first: (B, width) for vector groups,
    (B, r, r, width) for a group at resolution r. Each group adds one cell."""

    plan: Sequence[tuple[int, int]]  # (resolution, latents) per group, top first; resolution 0: a vector
    width: int
    hidden: int
    gated: bool = False
    conv_impl: str = "auto"
    dtype: Any = jnp.float32
    norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        conv = self.plan[0][0] > 0
        scale = 1.0 / np.sqrt(len(self.plan))
        if conv:
            h = x.reshape(x.shape[0], IMAGE_SIDE, IMAGE_SIDE, 1)
            h = Conv3x3(self.width, strides=2, impl=self.conv_impl, dtype=self.dtype, name="stem")(h)
        else:
            h = nn.Dense(self.width, dtype=self.dtype, name="stem")(x.reshape(x.shape[0], -1))
        features = []
        for index, (resolution, _) in enumerate(reversed(self.plan)):
            if conv and h.shape[1] != resolution:
                h = _downsample(h, resolution)
            h = Cell(self.width, self.hidden, conv, self.gated, scale, self.conv_impl, self.dtype, self.norm,
                     name=f"cell_{index}")(h)
            features.append(h)
        return features[::-1]


def _downsample(h: jax.Array, resolution: int) -> jax.Array:
    """Average pooling of (B, r, r, C) to (B, resolution, resolution, C); resolution divides r."""
    b, r, _, c = h.shape
    f = r // resolution
    return h.reshape(b, resolution, f, resolution, f, c).mean(axis=(2, 4))


def _upsample(s: jax.Array, resolution: int) -> jax.Array:
    """Nearest-neighbour upsampling of (N, r, r, C) to (N, resolution, resolution, C)."""
    f = resolution // s.shape[1]
    return jnp.repeat(jnp.repeat(s, f, axis=1), f, axis=2)


class TopDownPath(nn.Module):
    """The shared top-down path: per group a prior head (but the top group's, whose prior is
    the model's), a posterior head and a merge cell; the pixels from the final state."""

    plan: Sequence[tuple[int, int]]
    width: int
    hidden: int
    channels: int  # likelihood parameters per pixel
    bounds: tuple[float, float]  # of every log-variance (soft_bound)
    posterior: str = "residual"
    gated: bool = False
    conv_impl: str = "auto"
    dtype: Any = jnp.float32
    norm: bool = False  # LayerNorms before every cell's and head's layers and the pixels

    def setup(self):
        conv, (first, _) = self.plan[0][0] > 0, self.plan[0]
        # A LayerNorm of a constant vector has no scale (its gradient is 1/sqrt(epsilon)): with norms
        # the learned start is drawn from N(0, 1), else it starts at 0.
        init = nn.initializers.normal(1.0) if self.norm else nn.initializers.zeros
        self.start = self.param("start", init, (first, first, self.width) if conv else (self.width,))
        scale = 1.0 / np.sqrt(len(self.plan))
        head = dict(hidden=self.hidden, bounds=self.bounds, gated=self.gated, dtype=self.dtype, norm=self.norm)
        self.prior_heads = [None] + [Head(latents, name=f"prior_{i}", **head)
                                     for i, (_, latents) in enumerate(self.plan) if i > 0]
        self.posterior_heads = [Head(latents, name=f"posterior_{i}", **head)
                                for i, (_, latents) in enumerate(self.plan)]
        self.cells = [Cell(self.width, self.hidden, conv, self.gated, scale, self.conv_impl, self.dtype, self.norm,
                           name=f"cell_{i}") for i in range(len(self.plan))]
        last = self.plan[-1][0]
        factor = IMAGE_SIDE // last if conv else 1
        self.out_cell = Cell(self.width, self.hidden, conv, self.gated, scale, self.conv_impl, self.dtype, self.norm)
        self.out_norm = nn.LayerNorm() if self.norm else None
        self.out = nn.Dense(factor * factor * self.channels if conv else NUM_PIXELS * self.channels, dtype=self.dtype)

    def initial_state(self, rows: int) -> jax.Array:
        return jnp.broadcast_to(self.start, (rows, *self.start.shape))

    def prior(self, index: int, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        """p(z_l | z_>l) of group `index` (top first, > 0) from state s: (mean, logvar), flattened (N, D_l)."""
        mean, logvar = self.prior_heads[index](s)
        return mean.reshape(s.shape[0], -1), logvar.reshape(s.shape[0], -1)

    def posterior_params(self, index: int, s: jax.Array, features: jax.Array,
                         prior: tuple[jax.Array, jax.Array] | None) -> tuple[jax.Array, jax.Array]:
        """q(z_l | x, z_>l) of group `index` (flattened (N, D_l)) from state s (N = K * B rows)
        and the group's bottom-up features (B rows), given p's (mean, logvar) (None: the top
        group under the model's prior, which is then left out of q)."""
        head = self.posterior_heads[index]
        if self.posterior == "merge":
            mean, logvar = head(features)
            mean, logvar = mean.reshape(features.shape[0], -1), logvar.reshape(features.shape[0], -1)
            repeat = s.shape[0] // features.shape[0]
            mean, logvar = jnp.tile(mean, (repeat, 1)), jnp.tile(logvar, (repeat, 1))
            if prior is None:
                return mean, logvar
            p_precision, q_precision = jnp.exp(-prior[1]), jnp.exp(-logvar)
            precision = p_precision + q_precision
            return (prior[0] * p_precision + mean * q_precision) / precision, -jnp.log(precision)
        mean, logvar = head(s, features)
        mean, logvar = mean.reshape(s.shape[0], -1), logvar.reshape(s.shape[0], -1)
        if prior is None:
            return mean, logvar
        return prior[0] + mean, soft_bound(prior[1] + logvar, self.bounds)

    def absorb(self, index: int, s: jax.Array, z: jax.Array) -> jax.Array:
        """The state after group `index` drew z (N, D_l); moves to the next group's resolution."""
        resolution = self.plan[index][0]
        z = z.reshape(s.shape[0], resolution, resolution, -1) if resolution else z
        s = self.cells[index](s, z)
        if index + 1 < len(self.plan) and resolution and self.plan[index + 1][0] != resolution:
            s = _upsample(s, self.plan[index + 1][0])
        return s

    def pixels(self, s: jax.Array) -> jax.Array:
        """Likelihood parameters (N, 784, P) from the final state."""
        s = self.out_cell(s)
        out = self.out(self.out_norm(s) if self.out_norm is not None else s).astype(jnp.float32)
        if s.ndim == 4:
            out = pixel_shuffle(out, IMAGE_SIDE // s.shape[1])
        return out.reshape(s.shape[0], NUM_PIXELS, self.channels)


class TopDownVAE(VAE):
    """The top-down hierarchical VAE (module docstring). `encoder` is the BottomUp pass and
    `decoder` the TopDownPath; `prior` is the top group's prior (N(0, I) or the VampPrior,
    whose components are q(z_L | u) at the pseudo-inputs u). Not conditional.

    VAEOutput.kl is the sum over groups of KL(q(z_l | x, z_>l) || p(z_l | z_>l)), in closed form
    at each sample of the groups above, averaged over the K samples (the top group's is Monte
    Carlo under the VampPrior); kl_per_latent holds each latent's share (the top group's KL to
    N(0, 1) under the VampPrior), so free bits and the per-group report read it."""

    encoder: BottomUp = None  # type: ignore[assignment]
    decoder: TopDownPath = None  # type: ignore[assignment]

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Latents of each group, bottom first (the order of the codes)."""
        return tuple(max(r, 1) ** 2 * d for r, d in reversed(self.encoder.plan))

    @property
    def latents(self) -> int:
        return sum(self.group_sizes)

    @property
    def top_latents(self) -> int:
        return self.group_sizes[-1]

    def _groups(self, z: jax.Array) -> list[jax.Array]:
        """[z_L, ..., z_1] (top first) of codes z (..., D)."""
        ends = np.cumsum((0, *self.group_sizes))
        return [z[..., a:b] for a, b in zip(ends[:-1], ends[1:], strict=True)][::-1]

    def _walk(self, rows: int, key: jax.Array | None, features: list[jax.Array] | None = None,
              given: list[jax.Array] | None = None, top: jax.Array | None = None,
              temperature: float = 1.0) -> tuple[list[dict], jax.Array]:
        """The top-down path over `rows` states. Each group's z is `given` (top first), else a draw
        `top` for the top group, else a draw from q (with `features`: the bottom-up pass of
        rows / K images) or from p at `temperature`
        (noise fold_in(key, l) for group l, counted from 1 at the top); key None with features:
        the posterior means. Returns per group {"z", "p": (mean, logvar) or None, "q"} and the
        final state."""
        path = self.decoder
        s, groups = path.initial_state(rows), []
        for index in range(len(self.encoder.plan)):
            prior = path.prior(index, s) if index else None
            q = None if features is None else path.posterior_params(index, s, features[index], prior)
            if given is not None:
                z = given[index].reshape(rows, -1)
            elif index == 0 and top is not None:
                z = top
            elif q is not None:
                z = q[0] if key is None else _draw(jax.random.fold_in(key, index + 1), *q)
            elif prior is None or key is None:
                raise ValueError("the generative path needs the top group (`top`) or `given`, and a key")
            else:
                z = _draw(jax.random.fold_in(key, index + 1), prior[0], prior[1] + 2.0 * jnp.log(temperature))
            groups.append({"z": z, "p": prior, "q": q})
            s = path.absorb(index, s, z)
        return groups, s

    def __call__(self, x: jax.Array, key: jax.Array, labels: jax.Array | None = None, num_samples: int = 1,
                 training: bool = False) -> VAEOutput:
        """K draws of every group down the top-down path and their densities (a VAEOutput)."""
        x = x.reshape(x.shape[0], -1)
        if training:
            x = self.likelihood.training_pixels(jax.random.fold_in(key, 1), x)
        b, k = x.shape[0], num_samples
        features = self.encoder(x)  # Once per image.
        groups, s = self._walk(k * b, key, features)
        params = self._with_global_scale(self.decoder.pixels(s))
        log_likelihood = self.likelihood.log_prob(params, jnp.tile(x, (k, 1))).reshape(k, b)
        log_posterior, log_prior, kl_parts = jnp.zeros((k, b)), jnp.zeros((k, b)), []
        for group in groups:
            z, (q_mean, q_logvar), prior = group["z"], group["q"], group["p"]
            log_posterior = log_posterior + log_normal_diag(z, q_mean, q_logvar).reshape(k, b)
            if prior is None:
                log_p = self._log_top_prior(z).reshape(k, b)
                per_latent = gaussian_kl(q_mean, q_logvar, 0.0, 0.0).reshape(k, b, -1)
                if not self.prior.analytic_kl:  # The top group's KL by Monte Carlo; per latent: to N(0, 1).
                    top_kl = log_normal_diag(z, q_mean, q_logvar).reshape(k, b) - log_p
            else:
                log_p = log_normal_diag(z, *prior).reshape(k, b)
                per_latent = gaussian_kl(q_mean, q_logvar, *prior).reshape(k, b, -1)
            log_prior = log_prior + log_p
            kl_parts.append(jnp.mean(per_latent, axis=0))
        kl_per_latent = jnp.concatenate(kl_parts[::-1], -1)  # Bottom first, like the codes.
        kl = jnp.sum(kl_per_latent, -1)
        if not self.prior.analytic_kl:
            kl = kl - jnp.sum(kl_parts[0], -1) + jnp.mean(top_kl, axis=0)
        codes, _ = self._mean_codes(features, b)
        z = jnp.concatenate([g["z"] for g in groups[::-1]], -1).reshape(k, b, -1)
        return VAEOutput(log_likelihood=log_likelihood, log_prior=log_prior, log_posterior=log_posterior, kl=kl,
                         kl_per_latent=kl_per_latent, codes=codes, z=z,
                         likelihood_params=params.reshape(k, b, *params.shape[1:]))

    def _mean_codes(self, features: list[jax.Array], rows: int) -> tuple[jax.Array, jax.Array]:
        """Each group's posterior mean and log-variance along the path of the means above: (B, D) each."""
        groups, _ = self._walk(rows, None, features)
        return (jnp.concatenate([g["q"][0] for g in groups[::-1]], -1),
                jnp.concatenate([g["q"][1] for g in groups[::-1]], -1))

    def encode(self, x: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """Posterior means and log-variances of [z_1, ..., z_L], each group at the means above: (B, D)."""
        x = x.reshape(x.shape[0], -1)
        return self._mean_codes(self.encoder(x), x.shape[0])

    def _with_global_scale(self, params: jax.Array) -> jax.Array:
        if self.likelihood.global_scale:
            params = jnp.concatenate([params, jnp.broadcast_to(self.global_log_scale, params.shape)], axis=-1)
        return params

    def likelihood_params(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Pixel parameters (B, 784, P) of p(x | z_1, ..., z_L): the top-down path at the given groups."""
        _, s = self._walk(z.shape[0], None, given=self._groups(z))
        return self._with_global_scale(self.decoder.pixels(s))

    def log_prior(self, z: jax.Array) -> jax.Array:
        """log p(z_L) + sum over l < L of log p(z_l | z_>l): codes (..., D) -> (...)."""
        flat = z.reshape(-1, z.shape[-1])
        groups, _ = self._walk(flat.shape[0], None, given=self._groups(flat))
        total = self._log_top_prior(groups[0]["z"])
        for group in groups[1:]:
            total = total + log_normal_diag(group["z"], *group["p"])
        return total.reshape(z.shape[:-1])

    def _pseudo_posteriors(self) -> tuple[jax.Array, jax.Array]:
        """q(z_L | u) at the pseudo-inputs u: the components of the top group's VampPrior."""
        u = nn.sigmoid(self.pseudo_inputs)
        top_features = self.encoder(u)[0]
        return self.decoder.posterior_params(0, self.decoder.initial_state(u.shape[0]), top_features, None)

    def sample_prior(self, key: jax.Array, num: int, temperature: float = 1.0) -> jax.Array:
        """`num` codes from the prior, each group's noise scaled by `temperature`: (num, D).
        The top group draws with split(key)[0]; the rest as complete_codes."""
        top = self._sample_top_prior(jax.random.split(key)[0], num, self.top_latents, temperature)
        return self.complete_codes(key, top, temperature)

    def complete_codes(self, key: jax.Array, top: jax.Array, temperature: float = 1.0) -> jax.Array:
        """[z_1, ..., z_L] for top-group draws z_L (B, D_L): each group below drawn from
        p(z_l | z_>l) at `temperature` down the top-down path (keys as sample_prior's)."""
        groups, _ = self._walk(top.shape[0], jax.random.split(key)[1], top=top, temperature=temperature)
        return jnp.concatenate([g["z"] for g in groups[::-1]], -1)


def _draw(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
