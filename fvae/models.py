"""Pure functional Flax linen encoder, decoder and the VAE that composes them.

Every module is usable alone with `.init` / `.apply`. Randomness is explicit: the VAE
takes a PRNG key argument for the reparameterization trick; no module holds RNG state.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class Encoder(nn.Module):
    """MLP q(z|x): images (B, ...) -> posterior mean and log-variance, each (B, latents).

    dtype: the compute dtype of the layers (e.g. bfloat16); parameters and outputs stay float32.
    """

    hidden: Sequence[int] = (500,)
    latents: int = 20
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x.reshape(x.shape[0], -1)  # (B, 784)
        for i, width in enumerate(self.hidden):
            h = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"hidden_{i}")(h))
        mean = nn.Dense(self.latents, dtype=self.dtype, name="mean")(h)
        logvar = nn.Dense(self.latents, dtype=self.dtype, name="logvar")(h)
        return mean.astype(jnp.float32), logvar.astype(jnp.float32)


class Decoder(nn.Module):
    """MLP p(x|z): latents (B, latents) -> pixel logits (B, *output_shape), float32."""

    hidden: Sequence[int] = (500,)
    output_shape: Sequence[int] = (784,)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = z
        for i, width in enumerate(self.hidden):
            h = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"hidden_{i}")(h))
        logits = nn.Dense(math.prod(self.output_shape), dtype=self.dtype, name="logits")(h)
        return logits.astype(jnp.float32).reshape(z.shape[0], *self.output_shape)


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """z = mean + sigma * eps with eps ~ N(0, I): differentiable in mean and logvar."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


class VAE(nn.Module):
    """Composes an encoder and a decoder. Call with (x, key) -> (logits, mean, logvar)."""

    encoder: nn.Module
    decoder: nn.Module

    def __call__(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, logvar = self.encoder(x)
        z = reparameterize(key, mean, logvar)
        return self.decoder(z), mean, logvar

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def generate(self, key: jax.Array, num: int) -> jax.Array:
        """Pixel means (sigmoid of logits) of `num` samples from the N(0, I) prior."""
        z = jax.random.normal(key, (num, self.encoder.latents))
        return nn.sigmoid(self.decoder(z))


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(model_config) -> VAE:
    """VAE from a config with fields: encoder_hidden, decoder_hidden, latents, compute_dtype."""
    dtype = COMPUTE_DTYPES[model_config.compute_dtype]
    return VAE(
        encoder=Encoder(hidden=tuple(model_config.encoder_hidden), latents=model_config.latents, dtype=dtype),
        decoder=Decoder(hidden=tuple(model_config.decoder_hidden), output_shape=(784,), dtype=dtype),
    )
