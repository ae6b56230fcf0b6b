"""Evaluation: negative ELBO and IWAE likelihood over whole splits, latent diagnostics,
reconstructions and prior samples. Everything here is pure and jitted."""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from fvae.losses import (bernoulli_reconstruction, kl_per_dimension, kl_standard_normal, log_normal_diag,
                         log_standard_normal)
from fvae.train import Metrics, TrainState, as_unit_interval


def _per_image_terms(state: TrainState, batch: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reconstruction and KL per image (B,) with one posterior sample per image."""
    x = as_unit_interval(batch)
    logits, mean, logvar = state.apply_fn({"params": state.params}, x, key)
    return bernoulli_reconstruction(logits, x), kl_standard_normal(mean, logvar)


def _padded_batches(images: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Images padded to whole batches: (num_batches, B, ...) and a mask (num_batches, B) of real images."""
    n = images.shape[0]
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)
    padded = jnp.concatenate([images, jnp.zeros((num_batches * batch_size - n, *images.shape[1:]), images.dtype)])
    mask = jnp.arange(num_batches * batch_size) < n
    return (padded.reshape(num_batches, batch_size, *images.shape[1:]),
            mask.reshape(num_batches, batch_size))


@jax.jit
def eval_step(state: TrainState, batch: jax.Array, key: jax.Array) -> Metrics:
    """Batch means of {"loss", "reconstruction", "kl"} (no parameter update)."""
    reconstruction, kl = _per_image_terms(state, batch, key)
    return {"loss": jnp.mean(reconstruction + kl), "reconstruction": jnp.mean(reconstruction),
            "kl": jnp.mean(kl)}


@functools.partial(jax.jit, static_argnames=("batch_size", "batch_sharding"))
def evaluate_elbo(state: TrainState, images: jax.Array, key: jax.Array, batch_size: int = 1000,
             batch_sharding: jax.sharding.Sharding | None = None) -> Metrics:
    """Mean negative ELBO, reconstruction and KL (nats per image) over all `images`.

    Runs as one compiled call: images are padded to whole batches and the padding is
    masked out, so every image counts exactly once whatever the split size. Batch i uses
    fold_in(key, i), so the estimate is deterministic for a given key. batch_size must be
    a multiple of the device count when batch_sharding is given.
    """
    n = images.shape[0]
    batches, mask = _padded_batches(images, batch_size)

    def body(totals, inputs):
        i, batch, valid = inputs
        if batch_sharding is not None:  # Data parallel: each device takes a slice of the batch.
            batch, valid = (jax.lax.with_sharding_constraint(a, batch_sharding) for a in (batch, valid))
        reconstruction, kl = _per_image_terms(state, batch, jax.random.fold_in(key, i))
        sums = (jnp.sum(reconstruction * valid), jnp.sum(kl * valid))
        return jax.tree.map(jnp.add, totals, sums), None

    zero = jnp.zeros((), jnp.float32)
    (reconstruction, kl), _ = jax.lax.scan(body, (zero, zero), (jnp.arange(len(batches)), batches, mask))
    return {"loss": (reconstruction + kl) / n, "reconstruction": reconstruction / n, "kl": kl / n}


@jax.jit
def reconstruct(state: TrainState, batch: jax.Array) -> jax.Array:
    """Pixel means sigmoid(decoder(posterior mean)) for a batch, in the batch's shape."""
    mean, _ = state.apply_fn({"params": state.params}, as_unit_interval(batch), method="encode")
    return nn.sigmoid(state.apply_fn({"params": state.params}, mean, method="decode"))


@jax.jit
def decode(state: TrainState, z: jax.Array) -> jax.Array:
    """Pixel means sigmoid(decoder(z)) for latents z (B, latents)."""
    return nn.sigmoid(state.apply_fn({"params": state.params}, z, method="decode"))


@functools.partial(jax.jit, static_argnames=("num",))
def generate(state: TrainState, key: jax.Array, num: int) -> jax.Array:
    """Pixel means of `num` decoded samples from the N(0, I) prior."""
    return state.apply_fn({"params": state.params}, key, num, method="generate")


def importance_weighted_log_likelihood(key: jax.Array, mean: jax.Array, logvar: jax.Array,
                                       log_likelihood: Callable[[jax.Array], jax.Array],
                                       num_samples: int, sample_chunk: int) -> jax.Array:
    """IWAE estimate of log p(x) per image: (B,), log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x).

    mean, logvar: q(z|x), (B, D). log_likelihood(z): log p(x|z) for z of shape (C, B, D),
    returning (C, B). Samples are drawn in chunks of `sample_chunk` (which must divide
    num_samples) and folded into a running log-sum-exp, so memory is bounded by one chunk.
    Every density is normalized. With K=1 this is the single-sample ELBO estimate.
    """
    if num_samples % sample_chunk:
        raise ValueError(f"sample_chunk {sample_chunk} must divide num_samples {num_samples}")

    def body(running, i):
        eps = jax.random.normal(jax.random.fold_in(key, i), (sample_chunk, *mean.shape))
        z = mean + jnp.exp(0.5 * logvar) * eps  # (C, B, D)
        log_w = log_likelihood(z) + log_standard_normal(z) - log_normal_diag(z, mean, logvar)
        return jnp.logaddexp(running, jax.nn.logsumexp(log_w, axis=0)), None

    start = jnp.full(mean.shape[:1], -jnp.inf)
    total, _ = jax.lax.scan(body, start, jnp.arange(num_samples // sample_chunk))
    return total - jnp.log(num_samples)


def _bernoulli_log_likelihood(state: TrainState, x: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """log p(x|z) of the VAE's Bernoulli decoder, for z of shape (C, B, D) -> (C, B)."""
    def log_likelihood(z):
        chunk, batch = z.shape[:2]
        logits = state.apply_fn({"params": state.params}, z.reshape(chunk * batch, -1), method="decode")
        x_tiled = jnp.broadcast_to(x, (chunk, *x.shape)).reshape(chunk * batch, -1)
        return -bernoulli_reconstruction(logits, x_tiled).reshape(chunk, batch)
    return log_likelihood


@functools.partial(jax.jit, static_argnames=("num_samples", "batch_size", "sample_chunk"))
def iwae_nll(state: TrainState, images: jax.Array, key: jax.Array, num_samples: int = 1000,
             batch_size: int = 100, sample_chunk: int = 100) -> jax.Array:
    """Mean IWAE estimate of -log p(x) in nats per image over `images` (one compiled call).

    Memory is bounded by batch_size * sample_chunk decoder outputs; images are padded to
    whole batches and the padding masked out.
    """
    n = images.shape[0]
    batches, mask = _padded_batches(images, batch_size)

    def body(total, inputs):
        i, batch, valid = inputs
        x = as_unit_interval(batch).reshape(batch.shape[0], -1)
        mean, logvar = state.apply_fn({"params": state.params}, x, method="encode")
        log_px = importance_weighted_log_likelihood(jax.random.fold_in(key, i), mean, logvar,
                                                    _bernoulli_log_likelihood(state, x), num_samples, sample_chunk)
        return total + jnp.sum(jnp.where(valid, -log_px, 0.0)), None

    total, _ = jax.lax.scan(body, jnp.zeros(()), (jnp.arange(len(batches)), batches, mask))
    return total / n


def _map_images(fn: Callable, images: jax.Array, batch_size: int):
    """fn over padded batches of images (lax.map, bounded memory); per-image outputs (N, ...)."""
    batches, _ = _padded_batches(images, batch_size)
    outputs = jax.lax.map(fn, batches)
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:images.shape[0]], outputs)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def encode_dataset(state: TrainState, images: jax.Array, batch_size: int = 1000) -> tuple[jax.Array, jax.Array]:
    """Posterior means and log-variances of every image: each (N, latents)."""
    return _map_images(
        lambda batch: state.apply_fn({"params": state.params}, as_unit_interval(batch), method="encode"),
        images, batch_size)


def active_units(posterior_means: jax.Array, threshold: float = 0.01) -> jax.Array:
    """Number of latent dimensions whose posterior mean varies over the data: Cov_x(E_q[z_d]) > threshold.

    The criterion of Burda et al. (2016), with the variance taken over the images given.
    """
    return jnp.sum(jnp.var(posterior_means, axis=0) > threshold)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def latent_statistics(state: TrainState, images: jax.Array, batch_size: int = 1000) -> dict[str, jax.Array]:
    """Per-dimension KL (D,), active units, and reconstruction MSE on [0, 1] pixels (per pixel)."""
    def per_image(batch):
        x = as_unit_interval(batch).reshape(batch.shape[0], -1)
        mean, logvar = state.apply_fn({"params": state.params}, x, method="encode")
        recon = nn.sigmoid(state.apply_fn({"params": state.params}, mean, method="decode"))
        return mean, kl_per_dimension(mean, logvar), jnp.mean(jnp.square(recon - x), axis=-1)

    mean, kl, squared_error = _map_images(per_image, images, batch_size)
    return {"kl_per_dimension": jnp.mean(kl, axis=0), "active_units": active_units(mean),
            "reconstruction_mse": jnp.mean(squared_error)}
