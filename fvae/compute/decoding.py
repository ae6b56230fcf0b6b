"""New images from a trained model: decoded prior samples, and the posterior draws of the top
latent layer that a sampler fitted after training (fvae.analysis.samplers) learns from, and
the decoding of its draws. Pure and jitted, like fvae.compute.bounds."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fvae.compute.bounds import _apply, _map_images, decode_pixel_means
from fvae.compute.state import TrainState
from fvae.data import Dataset, as_dataset, to_unit_interval


@functools.partial(jax.jit, static_argnames=("num",))
def generate(state: TrainState, key: jax.Array, num: int, labels: jax.Array | None = None,
             temperature: float = 1.0) -> jax.Array:
    """Pixel means of `num` decoded samples from the model's prior (of class `labels` if
    conditional), every latent layer's noise scaled by `temperature` (1: the prior itself)."""
    return _apply(state, key, num, labels, temperature, method="generate")


def generate_many(state: TrainState, key: jax.Array, num: int, labels: jax.Array | np.ndarray | None = None,
                  batch_size: int = 1000, temperature: float = 1.0) -> jax.Array:
    """Pixel means (num, 784) of `num` prior samples, decoded batch_size at a time (bounded
    memory; batch i uses fold_in(key, i)). labels (num,): the classes of a conditional model."""
    parts = []
    for i, start in enumerate(range(0, num, batch_size)):
        size = min(batch_size, num - start)
        parts.append(generate(state, jax.random.fold_in(key, i), size,
                              None if labels is None else labels[start:start + size], temperature))
    return jnp.concatenate(parts)


@functools.partial(jax.jit, static_argnames=("batch_size",))
def posterior_top_samples(state: TrainState, dataset: Dataset | jax.Array, key: jax.Array,
                          batch_size: int = 1000) -> jax.Array:
    """One draw of the top latent layer from the posterior for every image: (N, top_latents).

    z ~ q(z | x) (every layer in turn for a hierarchical model; the top one is kept): draws
    of the aggregate posterior, what the decoder was trained on. Image i draws with
    fold_in(key, i), so the draws do not depend on batch_size (beyond float32 rounding).
    """
    images, labels = as_dataset(dataset)

    def per_batch(batch):
        batch_images, batch_labels, indices = batch
        x = to_unit_interval(batch_images).reshape(batch_images.shape[0], -1)
        draw = jax.vmap(lambda xi, li, i: _apply(state, xi[None], jax.random.fold_in(key, i),
                                                 None if li is None else li[None]).z[0, 0])
        return _apply(state, draw(x, batch_labels, indices), method="top_layer")

    return _map_images(per_batch, (images, labels, jnp.arange(images.shape[0])), batch_size)


@jax.jit
def decode_top_samples(state: TrainState, key: jax.Array, top: jax.Array, temperature: float = 1.0) -> jax.Array:
    """Pixel means (B, 784) of top-layer draws `top` (B, top_latents), the layers below drawn
    from the model given them at `temperature` (p(z1 | z2) for the two-layer model; nothing
    for one layer)."""
    return decode_pixel_means(state, _apply(state, key, top, temperature, method="complete_codes"))
