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
from fvae.models import conv, hierarchical, mlp, vae
from fvae.models.conv_layers import CONV_IMPLS
from fvae.models.registry import Component, registry


class Architecture(Component):
    """What every architecture declares; `build` makes the Flax VAE."""

    conditional = True   # Can be conditional on the class label (model.conditional).
    analytic_kl = True   # One Gaussian latent layer: per-latent KL in closed form (with such a prior).

    def build(self, model, likelihood, prior):
        """The VAE (an fvae.models.VAE) for config section `model` with this likelihood and prior."""
        raise NotImplementedError

    def dense_layers(self, model) -> list[tuple[int, int]] | None:
        """(fan_in, fan_out) of every Dense layer the model is made of, for the benchmark's
        matmul ceiling; None when it has other layers."""
        return None


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
    """Two stochastic layers (Tomczak and Welling, 2018): z1 of `latents`, z2 of `top_latents`;
    q(z1|x) and q(z2|z1,x) use encoder_hidden, p(z1|z2) and p(x|z1,z2) decoder_hidden."""

    top_latents: int = 40
    name = "hierarchical"
    conditional = False
    analytic_kl = False

    @classmethod
    def check(cls, section) -> list[str]:
        return [] if section.top_latents >= 1 else [f"model.top_latents must be >= 1, got {section.top_latents!r}"]

    def build(self, model, likelihood, prior):
        dtype, channels, _ = _common(model, likelihood)
        return hierarchical.HierarchicalVAE(
            mlp.Encoder(tuple(model.encoder_hidden), model.latents, dtype, model.gated),
            mlp.Decoder(tuple(model.decoder_hidden), (mlp.NUM_PIXELS,), channels, dtype, model.gated),
            likelihood, prior,
            top_encoder=mlp.Encoder(tuple(model.encoder_hidden), self.top_latents, dtype, model.gated),
            prior_net=mlp.Encoder(tuple(model.decoder_hidden), model.latents, dtype, model.gated))

    def dense_layers(self, model) -> list[tuple[int, int]]:
        d1, d2 = model.latents, self.top_latents
        return _dense_stacks(model, [[784, *model.encoder_hidden, 2 * d1], [784 + d1, *model.encoder_hidden, 2 * d2],
                                     [d2, *model.decoder_hidden, 2 * d1], [d1 + d2, *model.decoder_hidden, 784]])


ARCHITECTURES = registry(MLP, Conv, Hierarchical)
