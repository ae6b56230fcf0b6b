"""Conv encoder and decoder (the "conv" architecture): stride-2 3x3 convolutions down to
7x7 and back up, by transposed convolutions (Chollet's Keras VAE) or pixel shuffle.

The convolutions are fvae.models.conv_layers': matmuls on the CPU, the backend's own
convolution elsewhere (`conv_impl`), with nn.Conv's and nn.ConvTranspose's parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fvae.data import IMAGE_SHAPE
from fvae.models.conv_layers import Conv3x3, ConvTranspose3x3
from fvae.models.mlp import NUM_PIXELS, hidden_layers, with_condition


class ConvEncoder(nn.Module):
    """Conv q(z|x): stride-2 3x3 convs (28 -> 14 -> 7 ...), then dense layers -> (mean, logvar)."""

    channels: Sequence[int] = (32, 64)
    hidden: Sequence[int] = (16,)
    latents: int = 2
    dtype: Any = jnp.float32
    conv_impl: str = "auto"
    gated: bool = False  # Gated dense layers (fvae.models.mlp.hidden_layers).

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        h = x.reshape(x.shape[0], *IMAGE_SHAPE)  # (B, 28, 28, 1)
        for i, width in enumerate(self.channels):
            h = nn.relu(Conv3x3(width, 2, self.conv_impl, self.dtype, name=f"conv_{i}")(h))
        h = with_condition(h.reshape(h.shape[0], -1), condition)  # (B, 7 * 7 * C [+ classes])
        h = hidden_layers(h, self.hidden, self.dtype, self.gated)
        mean = nn.Dense(self.latents, dtype=self.dtype, name="mean")(h)
        logvar = nn.Dense(self.latents, dtype=self.dtype, name="logvar")(h)
        return mean.astype(jnp.float32), logvar.astype(jnp.float32)


def pixel_shuffle(h: jax.Array, factor: int) -> jax.Array:
    """Sub-pixel upsampling (depth to space): (B, H, W, C * f^2) -> (B, H * f, W * f, C)."""
    b, height, width, channels = h.shape
    c = channels // (factor * factor)
    h = h.reshape(b, height, width, factor, factor, c)
    return h.transpose(0, 1, 3, 2, 4, 5).reshape(b, height * factor, width * factor, c)


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
    conv_impl: str = "auto"
    gated: bool = False  # Gated dense layers (fvae.models.mlp.hidden_layers).

    @nn.compact
    def __call__(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
        h = with_condition(z, condition)
        h = hidden_layers(h, self.hidden, self.dtype, self.gated)
        side = IMAGE_SHAPE[0] // 2 ** len(self.channels)  # 7 for two upsampling blocks
        h = nn.relu(nn.Dense(side * side * self.channels[0], dtype=self.dtype, name="project")(h))
        h = h.reshape(z.shape[0], side, side, self.channels[0])
        for i, width in enumerate(self.channels):
            if self.upsample == "transpose":
                h = ConvTranspose3x3(width, self.conv_impl, dtype=self.dtype, name=f"upsample_{i}")(h)
            else:
                h = pixel_shuffle(Conv3x3(4 * width, 1, self.conv_impl, self.dtype, name=f"upsample_{i}")(h), 2)
            h = nn.relu(h)
        out = Conv3x3(self.params_per_pixel, 1, self.conv_impl, self.dtype, name="logits")(h)
        return out.astype(jnp.float32).reshape(z.shape[0], NUM_PIXELS, self.params_per_pixel)
