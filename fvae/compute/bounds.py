"""Evaluation: negative ELBO and IWAE likelihood over whole splits, latent diagnostics and
reconstructions. Everything here is pure and jitted (drawing new images: fvae.compute.decoding)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import overload

import jax
import jax.numpy as jnp

from fvae.compute.state import Batch, Metrics, TrainState
from fvae.data import Dataset, as_dataset, to_unit_interval
from fvae.models import VAEOutput
from fvae.models.losses import iwae_bound


def _apply(state: TrainState, *args, **kwargs):
    return state.apply_fn({"params": state.params}, *args, **kwargs)


def _per_image_terms(state: TrainState, images: jax.Array, labels: jax.Array | None, key: jax.Array,
                     num_samples: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per image (B,): -log-likelihood (averaged over the samples), KL, and the negative
    bound: the ELBO with one sample, the IWAE bound with K > 1. No weighting: beta,
    warm-up and free bits never enter evaluation."""
    out = _apply(state, to_unit_interval(images), key, labels, num_samples)
    reconstruction = -jnp.mean(out.log_likelihood, axis=0)
    if num_samples == 1:
        return reconstruction, out.kl, reconstruction + out.kl
    return reconstruction, out.kl, -iwae_bound(out.log_weights)


@overload
def _padded_batches(images: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]: ...
@overload
def _padded_batches(images: None, batch_size: int) -> tuple[None, None]: ...
def _padded_batches(images: jax.Array | None, batch_size: int) -> tuple[jax.Array | None, jax.Array | None]:
    """Images padded to whole batches: (num_batches, B, ...) and a mask (num_batches, B) of real images."""
    if images is None:
        return None, None
    n = images.shape[0]
    batch_size = min(batch_size, n)
    num_batches = -(-n // batch_size)
    padded = jnp.concatenate([images, jnp.zeros((num_batches * batch_size - n, *images.shape[1:]), images.dtype)])
    mask = jnp.arange(num_batches * batch_size) < n
    return (padded.reshape(num_batches, batch_size, *images.shape[1:]),
            mask.reshape(num_batches, batch_size))


@jax.jit
def eval_step(state: TrainState, batch: Batch, key: jax.Array) -> Metrics:
    """Batch means of the true {"loss" (negative ELBO), "reconstruction", "kl"} (no update)."""
    images, labels = as_dataset(batch)
    reconstruction, kl, loss = _per_image_terms(state, images, labels, key)
    return {"loss": jnp.mean(loss), "reconstruction": jnp.mean(reconstruction), "kl": jnp.mean(kl)}


@functools.partial(jax.jit, static_argnames=("batch_size", "batch_sharding", "num_samples"))
def evaluate_bound(state: TrainState, dataset: Dataset | jax.Array, key: jax.Array, batch_size: int = 1000,
                   batch_sharding: jax.sharding.Sharding | None = None,
                   num_samples: int = 1) -> Metrics:
    """Mean negative ELBO (K = 1) or IWAE bound (K > 1), reconstruction and KL (nats per
    image) over a whole split.

    With num_samples=K > 1, "loss" is the negative IWAE bound with K samples instead
    (what early stopping should watch when training on that bound). Runs as one compiled
    call: images are padded to whole batches and the padding is masked out, so every
    image counts exactly once whatever the split size. Batch i uses fold_in(key, i), so
    the estimate is deterministic for a given key. batch_size must be a multiple of the
    device count when batch_sharding is given. dataset: images, or a Dataset whose labels
    (N,) a conditional model reads.
    """
    images, labels = as_dataset(dataset)
    n = images.shape[0]
    batches, mask = _padded_batches(images, batch_size)
    label_batches = None if labels is None else _padded_batches(labels, batch_size)[0]

    def body(totals, inputs):
        i, batch, batch_labels, valid = inputs
        if batch_sharding is not None:  # Data parallel: each device takes a slice of the batch.
            batch, batch_labels, valid = jax.lax.with_sharding_constraint((batch, batch_labels, valid),
                                                                          batch_sharding)
        terms = _per_image_terms(state, batch, batch_labels, jax.random.fold_in(key, i), num_samples)
        return jax.tree.map(lambda total, t: total + jnp.sum(t * valid), totals, terms), None

    zero = jnp.zeros((), jnp.float32)
    (reconstruction, kl, loss), _ = jax.lax.scan(body, (zero, zero, zero),
                                                 (jnp.arange(len(batches)), batches, label_batches, mask))
    return {"loss": loss / n, "reconstruction": reconstruction / n, "kl": kl / n}


def _output(state: TrainState, x: jax.Array, labels: jax.Array | None) -> VAEOutput:
    """The model's VAEOutput for images x in [0, 1], one sample each. Its codes and per-latent
    KL, all that the functions below read of it, do not depend on the sample's key."""
    return _apply(state, x.reshape(x.shape[0], -1), jax.random.key(0), labels)


@jax.jit
def reconstruct(state: TrainState, batch: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """Pixel means E[x | z = the image's code] for a batch: (B, 784) in [0, 1]."""
    return decode_pixel_means(state, _output(state, to_unit_interval(batch), labels).codes, labels)


@jax.jit
def decode_pixel_means(state: TrainState, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
    """Pixel means E[x|z] for latents z (B, latents): (B, 784) in [0, 1]."""
    return _apply(state, _apply(state, z, labels, method="likelihood_params"), method="pixel_means")


def importance_weighted_log_likelihood(key: jax.Array, log_weights: Callable[[jax.Array, int], jax.Array],
                                       num_samples: int, sample_chunk: int) -> jax.Array:
    """IWAE estimate of log p(x) per image: (B,), log (1/K) sum_k w_k with K = num_samples.

    log_weights(chunk_key, C) draws C samples per image and returns their log importance
    weights (C, B) (for a VAE: `VAEOutput.log_weights`). Chunk i uses fold_in(key, i); the
    chunks (sample_chunk must divide num_samples) are folded into a running log-sum-exp, so
    memory is bounded by one chunk. With K=1 this is the single-sample ELBO estimate.
    """
    if num_samples % sample_chunk:
        raise ValueError(f"sample_chunk {sample_chunk} must divide num_samples {num_samples}")

    def body(running, i):
        return jnp.logaddexp(running, jax.nn.logsumexp(log_weights(jax.random.fold_in(key, i), sample_chunk),
                                                      axis=0)), None

    batch = jax.eval_shape(lambda k: log_weights(k, sample_chunk), key).shape[1:]
    total, _ = jax.lax.scan(body, jnp.full(batch, -jnp.inf), jnp.arange(num_samples // sample_chunk))
    return total - jnp.log(num_samples)


def _batch_log_likelihoods(state: TrainState, batch: jax.Array, labels: jax.Array | None, key: jax.Array,
                           num_samples: int, sample_chunk: int) -> jax.Array:
    """IWAE estimates of log p(x) for one batch of images: (B,)."""
    x = to_unit_interval(batch).reshape(batch.shape[0], -1)
    return importance_weighted_log_likelihood(
        key, lambda chunk_key, chunk: _apply(state, x, chunk_key, labels, chunk).log_weights, num_samples,
        sample_chunk)


# XLA:CPU gives the pixel sums of the IWAE's (images x samples, 784) log-likelihoods to
# XNNPACK's reduction, which took 12% of the evaluation's time; with XNNPACK kept to the
# matrix products, XLA's own loops sum them and K=5000 takes about 15% less (docs/performance.md).
_CPU_IWAE_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def _compiled_batch_log_likelihoods(backend: str) -> Callable:
    """_batch_log_likelihoods jitted for `backend` (with _CPU_IWAE_OPTIONS on the CPU)."""
    return jax.jit(_batch_log_likelihoods, static_argnames=("num_samples", "sample_chunk"),
                   compiler_options=_CPU_IWAE_OPTIONS if backend == "cpu" else None)


# How the IWAE estimate is computed by default: images per compiled call, samples per chunk
# (at most; a chunk must divide K). Memory holds one call's images x one chunk of decoder outputs.
IWAE_IMAGES_PER_CALL = 100
IWAE_SAMPLES_PER_CHUNK = 100


def iwae_chunk(num_samples: int) -> int:
    """The default chunk of samples for K = num_samples: the largest divisor of K up to IWAE_SAMPLES_PER_CHUNK."""
    return max(c for c in range(1, min(num_samples, IWAE_SAMPLES_PER_CHUNK) + 1) if num_samples % c == 0)


def iwae_log_likelihoods(state: TrainState, dataset: Dataset | jax.Array, key: jax.Array, num_samples: int = 1000,
                         batch_size: int = IWAE_IMAGES_PER_CALL, sample_chunk: int = 0) -> jax.Array:
    """Per-image IWAE estimates of log p(x) in nats: (N,) (lower bounds on log p(x) in expectation).

    Uses the model's own likelihood and prior (N(0, I) or VampPrior). One compiled call
    per batch of images, dispatched without waiting (batch i uses fold_in(key, i)); memory
    is bounded by batch_size * sample_chunk decoder outputs; the last batch is padded and
    the padding dropped. dataset: images, or a Dataset whose labels (N,) a conditional
    model reads (then it is log p(x | label)). sample_chunk 0: iwae_chunk(num_samples).
    """
    sample_chunk = sample_chunk or iwae_chunk(num_samples)
    images, labels = as_dataset(dataset)
    batches, _ = _padded_batches(images, batch_size)
    label_batches = None if labels is None else _padded_batches(labels, batch_size)[0]
    batch_log_likelihoods = _compiled_batch_log_likelihoods(jax.default_backend())
    parts = [batch_log_likelihoods(state, batches[i], None if label_batches is None else label_batches[i],
                                   jax.random.fold_in(key, i), num_samples, sample_chunk)
             for i in range(len(batches))]
    return jnp.concatenate(parts)[:images.shape[0]]


def iwae_nll(state: TrainState, dataset: Dataset | jax.Array, key: jax.Array, num_samples: int = 1000,
             batch_size: int = IWAE_IMAGES_PER_CALL, sample_chunk: int = 0) -> jax.Array:
    """Mean IWAE estimate of -log p(x) in nats per image over a split (see iwae_log_likelihoods)."""
    return -jnp.mean(iwae_log_likelihoods(state, dataset, key, num_samples, batch_size, sample_chunk))


def _map_images(fn: Callable, images, batch_size: int):
    """fn over padded batches of images (a pytree of (N, ...) arrays or None; a scan,
    bounded memory); per-image outputs (N, ...)."""
    n = jax.tree.leaves(images)[0].shape[0]
    batches = jax.tree.map(lambda a: _padded_batches(a, batch_size)[0], images)
    _, outputs = jax.lax.scan(lambda carry, batch: (carry, fn(batch)), None, batches)
    return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:n], outputs)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def dataset_codes(state: TrainState, dataset: Dataset | jax.Array, batch_size: int = 1000) -> jax.Array:
    """The code (VAEOutput.codes, the posterior means) of every image: (N, D)."""
    return _map_images(lambda batch: _output(state, to_unit_interval(batch[0]), batch[1]).codes,
                       tuple(as_dataset(dataset)), batch_size)


ACTIVE_THRESHOLD = 0.01  # A latent is active where its posterior mean's variance over the data exceeds this.


def active_units(posterior_means: jax.Array, threshold: float = ACTIVE_THRESHOLD) -> jax.Array:
    """Number of latent dimensions whose posterior mean varies over the data: Cov_x(E_q[z_d]) > threshold.

    The criterion of Burda et al. (2016), with the variance taken over the images given.
    """
    return jnp.sum(jnp.var(posterior_means, axis=0) > threshold)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def latent_statistics(state: TrainState, dataset: Dataset | jax.Array, batch_size: int = 1000) -> dict[str, jax.Array]:
    """Per-dimension KL (D,) (VAEOutput.kl_per_latent), active units of the codes, each code
    dimension's variance over the images (D,) (active where > 0.01),
    and reconstruction MSE on [0, 1] pixels (per pixel). With a VampPrior the per-dimension
    KL is still measured against N(0, 1): it shows which latents carry information, not the
    model's KL term."""
    def per_image(batch):
        images, batch_labels = batch
        x = to_unit_interval(images).reshape(images.shape[0], -1)
        out = _output(state, x, batch_labels)
        recon = decode_pixel_means(state, out.codes, batch_labels)
        return out.codes, out.kl_per_latent, jnp.mean(jnp.square(recon - x), axis=-1)

    mean, kl, squared_error = _map_images(per_image, tuple(as_dataset(dataset)), batch_size)
    return {"kl_per_dimension": jnp.mean(kl, axis=0), "active_units": active_units(mean),
            "code_variance": jnp.var(mean, axis=0), "reconstruction_mse": jnp.mean(squared_error)}
