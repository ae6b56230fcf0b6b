"""Evaluation: the negative ELBO over whole splits, reconstructions and prior samples."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from fvae.losses import bernoulli_reconstruction, kl_standard_normal
from fvae.train import Metrics, TrainState, as_unit_interval


def _per_image_terms(state: TrainState, batch: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reconstruction and KL per image (B,) with one posterior sample per image."""
    x = as_unit_interval(batch)
    logits, mean, logvar = state.apply_fn({"params": state.params}, x, key)
    return bernoulli_reconstruction(logits, x), kl_standard_normal(mean, logvar)


@jax.jit
def eval_step(state: TrainState, batch: jax.Array, key: jax.Array) -> Metrics:
    """Batch means of {"loss", "reconstruction", "kl"} (no parameter update)."""
    reconstruction, kl = _per_image_terms(state, batch, key)
    return {"loss": jnp.mean(reconstruction + kl), "reconstruction": jnp.mean(reconstruction),
            "kl": jnp.mean(kl)}


@functools.partial(jax.jit, static_argnames=("batch_size", "batch_sharding"))
def evaluate(state: TrainState, images: jax.Array, key: jax.Array, batch_size: int = 1000,
             batch_sharding: jax.sharding.Sharding | None = None) -> Metrics:
    """Mean negative ELBO, reconstruction and KL (nats per image) over all `images`.

    Runs as one compiled call: images are padded to whole batches and the padding is
    masked out, so every image counts exactly once whatever the split size. Batch i uses
    fold_in(key, i), so the estimate is deterministic for a given key. batch_size must be
    a multiple of the device count when batch_sharding is given.
    """
    n = images.shape[0]
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)
    pad = num_batches * batch_size - n
    padded = jnp.concatenate([images, jnp.zeros((pad, *images.shape[1:]), images.dtype)])
    batches = padded.reshape(num_batches, batch_size, *images.shape[1:])
    mask = (jnp.arange(num_batches * batch_size) < n).reshape(num_batches, batch_size)

    def body(totals, inputs):
        i, batch, valid = inputs
        if batch_sharding is not None:  # Data parallel: each device takes a slice of the batch.
            batch, valid = (jax.lax.with_sharding_constraint(a, batch_sharding) for a in (batch, valid))
        reconstruction, kl = _per_image_terms(state, batch, jax.random.fold_in(key, i))
        sums = (jnp.sum(reconstruction * valid), jnp.sum(kl * valid))
        return jax.tree.map(jnp.add, totals, sums), None

    zero = jnp.zeros((), jnp.float32)
    (reconstruction, kl), _ = jax.lax.scan(body, (zero, zero), (jnp.arange(num_batches), batches, mask))
    return {"loss": (reconstruction + kl) / n, "reconstruction": reconstruction / n, "kl": kl / n}


@jax.jit
def reconstruct(state: TrainState, batch: jax.Array) -> jax.Array:
    """Pixel means sigmoid(decoder(posterior mean)) for a batch, in the batch's shape."""
    mean, _ = state.apply_fn({"params": state.params}, as_unit_interval(batch), method="encode")
    return nn.sigmoid(state.apply_fn({"params": state.params}, mean, method="decode"))


@functools.partial(jax.jit, static_argnames=("num",))
def generate(state: TrainState, key: jax.Array, num: int) -> jax.Array:
    """Pixel means of `num` decoded samples from the N(0, I) prior."""
    return state.apply_fn({"params": state.params}, key, num, method="generate")
