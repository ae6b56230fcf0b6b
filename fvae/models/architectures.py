"""Architectures chosen by `model.architecture` from `ARCHITECTURES`: how the encoder,
decoder and any further stochastic layers of a VAE are built from the `model` section.

An architecture's dataclass fields are its own `model.*` config keys (fvae.models.registry); the
keys every architecture reads are in fvae.run.config (encoder_hidden, decoder_hidden, latents,
conditional, compute_dtype); its Flax modules are the other modules of fvae.models.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from fvae.data import NUM_CLASSES
from fvae.models import conv, hierarchical, mlp, top_down, vae
from fvae.models.conv_layers import CONV_IMPLS
from fvae.models.registry import Architecture, registry


def _dense_stacks(model, stacks: list[list[int]]) -> list[tuple[int, int]]:
    """The Dense layers' (fan_in, fan_out) of MLP stacks (input, hidden..., output)."""
    return [shape for widths in stacks for shape in mlp.dense_shapes(widths, model.gated)]


def _common(model, likelihood) -> tuple:
    """(compute dtype, decoder channels per pixel, number of classes or 0) of a model section."""
    channels = likelihood.params_per_pixel - int(likelihood.global_scale)  # The VAE adds the global one.
    return jnp.dtype(model.compute_dtype), channels, NUM_CLASSES if model.conditional else 0


@dataclasses.dataclass(frozen=True)
class MLP(Architecture):
    """Dense encoder 784 -> encoder_hidden -> (mean, logvar) and decoder latents -> decoder_hidden -> 784 x P."""

    name = "mlp"

    def build(self, model, likelihood, prior):
        dtype, channels, classes = _common(model, likelihood)
        return vae.VAE(mlp.Encoder(tuple(model.encoder_hidden), model.latents, dtype, model.gated),
                       mlp.Decoder(tuple(model.decoder_hidden), (mlp.NUM_PIXELS,), channels, dtype, model.gated),
                       likelihood, prior, classes)

    def dense_layers(self, model) -> list[tuple[int, int]]:
        return _dense_stacks(model, [[784, *model.encoder_hidden, 2 * model.latents],
                                     [model.latents, *model.decoder_hidden, 784]])


@dataclasses.dataclass(frozen=True)
class Conv(Architecture):
    """Stride-2 3x3 convs (28 -> 14 -> 7) then dense layers; the decoder mirrors them, upsampling
    by `upsample`: "transpose" (ConvTranspose, Chollet's Keras VAE) or "pixel_shuffle"."""

    conv_channels: tuple = (32, 64)  # Encoder channels per stride-2 conv; the decoder mirrors them.
    upsample: str = "pixel_shuffle"
    conv_impl: str = "auto"  # "matmul" (XLA:CPU's fast form), "xla" (the backend's conv), "auto": matmul on CPU
    name = "conv"
    upsamplings = ("pixel_shuffle", "transpose")
    conv_impls = CONV_IMPLS

    @classmethod
    def check(cls, section) -> list[str]:
        problems = []
        if section.upsample not in cls.upsamplings:
            problems.append(f"model.upsample must be one of {cls.upsamplings}, got {section.upsample!r}")
        channels = tuple(section.conv_channels)
        if not 1 <= len(channels) <= 2 or any(not isinstance(c, int) or c < 1 for c in channels):
            problems.append(f"model.conv_channels must be 1 or 2 positive integers (28 = 7 * 2 * 2), got {channels}")
        if section.conv_impl not in cls.conv_impls:
            problems.append(f"model.conv_impl must be one of {cls.conv_impls}, got {section.conv_impl!r}")
        return problems

    def build(self, model, likelihood, prior):
        dtype, channels, classes = _common(model, likelihood)
        return vae.VAE(conv.ConvEncoder(tuple(self.conv_channels), tuple(model.encoder_hidden), model.latents, dtype,
                                        self.conv_impl, model.gated),
                       conv.ConvDecoder(tuple(reversed(self.conv_channels)), tuple(model.decoder_hidden), channels,
                                        self.upsample, dtype, self.conv_impl, model.gated),
                       likelihood, prior, classes)


@dataclasses.dataclass(frozen=True)
class Hierarchical(Architecture):
    """Stochastic layers z1 .. zL (Tomczak and Welling's two-level model, made deeper): z1 of
    `latents`, then `middle_latents` (none: two layers), then the top layer of `top_latents`;
    each q(zl|z_{l-1},x) uses encoder_hidden, each p(zl|z_{l+1}) and p(x|z1..zL) decoder_hidden."""

    top_latents: int = 40
    middle_latents: tuple = ()  # Layers between z1 and the top, bottom up, e.g. (30,) for three layers.
    name = "hierarchical"
    conditional = False
    analytic_kl = False

    @classmethod
    def check(cls, section) -> list[str]:
        problems = [] if section.top_latents >= 1 else [f"model.top_latents must be >= 1, got {section.top_latents!r}"]
        if any(not isinstance(d, int) or d < 1 for d in section.middle_latents):
            problems.append(f"model.middle_latents must be positive integers, got {tuple(section.middle_latents)}")
        return problems

    def layers(self, model) -> list[int]:
        """The latents of each stochastic layer, bottom up."""
        return [model.latents, *self.middle_latents, self.top_latents]

    def build(self, model, likelihood, prior):
        dtype, channels, _ = _common(model, likelihood)
        sizes = self.layers(model)

        def encoder(hidden, latents):
            return mlp.Encoder(tuple(hidden), latents, dtype, model.gated)

        return hierarchical.HierarchicalVAE(
            encoder(model.encoder_hidden, sizes[0]),
            mlp.Decoder(tuple(model.decoder_hidden), (mlp.NUM_PIXELS,), channels, dtype, model.gated),
            likelihood, prior,
            top_encoder=encoder(model.encoder_hidden, sizes[-1]),
            prior_net=encoder(model.decoder_hidden, sizes[0]),
            middle_encoders=tuple(encoder(model.encoder_hidden, d) for d in sizes[1:-1]),
            middle_prior_nets=tuple(encoder(model.decoder_hidden, d) for d in sizes[1:-1]))

    def dense_layers(self, model) -> list[tuple[int, int]]:
        sizes = self.layers(model)
        stacks = [[784, *model.encoder_hidden, 2 * sizes[0]]]
        stacks += [[784 + below, *model.encoder_hidden, 2 * d] for below, d in zip(sizes[:-1], sizes[1:], strict=True)]
        stacks += [[above, *model.decoder_hidden, 2 * d] for d, above in zip(sizes[:-1], sizes[1:], strict=True)]
        return _dense_stacks(model, [*stacks, [sum(sizes), *model.decoder_hidden, 784]])


@dataclasses.dataclass(frozen=True)
class TopDown(Architecture):
    """The top-down hierarchical VAE (Ladder VAE, NVAE, VDVAE; fvae.models.top_down): `groups`
    stochastic groups of `latents` each (per position for conv cells), one bottom-up pass and
    one top-down path shared by p and q, residual cells of `width` units (channels) with
    `cell_hidden` inside. cell "mlp": vector groups (`gated` units or swish); "conv": `groups`
    groups at each of `resolutions`, top first. encoder_hidden and decoder_hidden are unused."""

    groups: int = 4
    cell: str = "mlp"
    width: int = 256
    cell_hidden: int = 256
    resolutions: tuple = (1, 7, 14)  # cell "conv": the groups' resolutions, top first; each divides the next and 14
    posterior: str = "residual"  # "residual" (NVAE's residual Normal) or "merge" (the Ladder VAE's precision-weighted)
    logvar_range: tuple = (-8.0, 2.0)  # Every log-variance is softly bounded to it (std e^-4 .. e^1)
    layer_norm: bool = False  # LayerNorms before every cell's and head's layers (pre-norm residual streams)
    conv_impl: str = "auto"
    name = "top_down"
    conditional = False
    cells = ("mlp", "conv")

    @classmethod
    def check(cls, section) -> list[str]:
        problems = []
        for key in ("groups", "width", "cell_hidden"):
            if section[key] < 1:
                problems.append(f"model.{key} must be >= 1, got {section[key]!r}")
        if section.cell not in cls.cells:
            problems.append(f"model.cell must be one of {cls.cells}, got {section.cell!r}")
        if section.posterior not in top_down.POSTERIORS:
            problems.append(f"model.posterior must be one of {top_down.POSTERIORS}, got {section.posterior!r}")
        bounds = tuple(section.logvar_range)
        if len(bounds) != 2 or not all(isinstance(b, (int, float)) for b in bounds) or not bounds[0] < 0 < bounds[1]:
            problems.append(f"model.logvar_range must be (lo, hi) with lo < 0 < hi, got {bounds}")
        sizes = tuple(section.resolutions)
        if section.cell == "conv" and not (
                sizes and all(isinstance(r, int) and r >= 1 and 14 % r == 0 for r in sizes)
                and all(b % a == 0 and b >= a for a, b in zip(sizes[:-1], sizes[1:]))):
            problems.append("model.resolutions must be divisors of 14, top first, each dividing the next "
                            f"(e.g. (1, 7, 14)), got {sizes}")
        if section.conv_impl not in CONV_IMPLS:
            problems.append(f"model.conv_impl must be one of {CONV_IMPLS}, got {section.conv_impl!r}")
        return problems

    def plan(self, model) -> tuple[tuple[int, int], ...]:
        """(resolution, latents) of each group, top first; resolution 0 for a vector group."""
        resolutions = self.resolutions if self.cell == "conv" else (0,)
        return tuple((r, model.latents) for r in resolutions for _ in range(self.groups))

    def build(self, model, likelihood, prior):
        dtype, channels, _ = _common(model, likelihood)
        plan, bounds = self.plan(model), (float(self.logvar_range[0]), float(self.logvar_range[1]))
        return top_down.TopDownVAE(
            top_down.BottomUp(plan, self.width, self.cell_hidden, model.gated, self.conv_impl, dtype, self.layer_norm),
            top_down.TopDownPath(plan, self.width, self.cell_hidden, channels, bounds, self.posterior,
                                 model.gated, self.conv_impl, dtype, self.layer_norm),
            likelihood, prior)


ARCHITECTURES = registry(MLP, Conv, Hierarchical, TopDown)
