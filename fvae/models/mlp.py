"""MLP encoder q(z|x) and decoder p(x|z): the layers of the "mlp" and "hierarchical" architectures.

Images enter flattened, (B, 784) in [0, 1]. Decoders return per-pixel likelihood
parameters (B, 784, P), P set by the likelihood. A condition (B, classes) one-hot, if
given, joins the input of the first layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fvae.data import IMAGE_SHAPE

NUM_PIXELS = math.prod(IMAGE_SHAPE)


def with_condition(h: jax.Array, condition: jax.Array | None) -> jax.Array:
    return h if condition is None else jnp.concatenate([h, condition.astype(h.dtype)], axis=-1)


def activation(h: jax.Array, gated: bool) -> jax.Array:
    """ReLU, or for a gated layer's 2 * width outputs (values, then gates) values * sigmoid(gates)."""
    if gated:
        values, gates = jnp.split(h, 2, axis=-1)
        return values * nn.sigmoid(gates)
    return nn.relu(h)


def hidden_layers(h: jax.Array, widths: Sequence[int], dtype: Any, gated: bool = False, first: int = 0) -> jax.Array:
    """Dense layers "hidden_{first}", "hidden_{first + 1}", ... of the calling (compact) module:
    ReLU, or with gated=True the gated units of the VampPrior paper (Tomczak and Welling, 2018),
    linear values times sigmoid gates, h = (x W + b) * sigmoid(x V + c). A gated layer is one
    Dense of 2 * width outputs (values, then gates): one matmul instead of two."""
    for i, width in enumerate(widths, start=first):
        h = activation(nn.Dense(2 * width if gated else width, dtype=dtype, name=f"hidden_{i}")(h), gated)
    return h


def dense_shapes(widths: Sequence[int], gated: bool = False) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each Dense layer of a stack input -> hidden... -> output whose
    hidden layers are made by `hidden_layers` (a gated layer has twice the outputs)."""
    return [(a, 2 * b if gated and i < len(widths) - 2 else b) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]


class Encoder(nn.Module):
    """MLP q(z|x): images (B, ...) -> posterior mean and log-variance, each (B, latents).

    dtype: the compute dtype of the layers (e.g. bfloat16); parameters and outputs stay float32.
    gated: gated hidden units instead of ReLU (see hidden_layers).
    """

    hidden: Sequence[int] = (500,)
    latents: int = 20
    dtype: Any = jnp.float32
    gated: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """condition: (B, C) beside x's B images, or (K * B, C), K samples of it per image
        (sample-major): then x's share of the first layer is computed once per image."""
        x = x.reshape(x.shape[0], -1)
        if condition is not None and condition.shape[0] != x.shape[0] and self.hidden:
            h = self._first_layer_once_per_image(x, condition)
            h = hidden_layers(h, self.hidden[1:], self.dtype, self.gated, first=1)
        else:
            h = hidden_layers(with_condition(x, condition), self.hidden, self.dtype, self.gated)
        mean = nn.Dense(self.latents, dtype=self.dtype, name="mean")(h)
        logvar = nn.Dense(self.latents, dtype=self.dtype, name="logvar")(h)
        return mean.astype(jnp.float32), logvar.astype(jnp.float32)

    def _first_layer_once_per_image(self, x: jax.Array, condition: jax.Array) -> jax.Array:
        """The first hidden layer for K conditions per image: x W_x + b once per image (the
        layer applied to x with a zero condition, so the parameters are the same), plus
        condition W_c per sample. (K * B, width)."""
        dense = nn.Dense(2 * self.hidden[0] if self.gated else self.hidden[0], dtype=self.dtype, name="hidden_0")
        per_image = dense(with_condition(x, jnp.zeros((x.shape[0], condition.shape[1]), x.dtype)))  # (B, H)
        kernel = dense.variables["params"]["kernel"][x.shape[1]:]  # W_c: (C, H)
        per_sample = jnp.dot(condition.astype(self.dtype), kernel.astype(self.dtype))  # (K * B, H)
        h = (per_sample.reshape(-1, *per_image.shape) + per_image).reshape(condition.shape[0], -1)
        return activation(h, self.gated)


class Decoder(nn.Module):
    """MLP p(x|z): latents (B, latents) -> pixel parameters (B, *output_shape, P), float32."""

    hidden: Sequence[int] = (500,)
    output_shape: Sequence[int] = (NUM_PIXELS,)
    params_per_pixel: int = 1
    dtype: Any = jnp.float32
    gated: bool = False

    @nn.compact
    def __call__(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
        h = with_condition(z, condition)
        h = hidden_layers(h, self.hidden, self.dtype, self.gated)
        out = nn.Dense(math.prod(self.output_shape) * self.params_per_pixel, dtype=self.dtype, name="logits")(h)
        return out.astype(jnp.float32).reshape(z.shape[0], *self.output_shape, self.params_per_pixel)
