"""Training steps: the jitted train step, an epoch as compiled scans or as a host loop.

Randomness is explicit. The caller passes one key; each step derives its own key as
`fold_in(key, state.step)` inside the compiled step, and each epoch's shuffle is
`fold_in(shuffle_key, epoch)`. A run is therefore a pure function of (config, seed),
and resuming from a checkpoint continues the very same random stream.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fvae.compute.state import Batch, Metrics, TrainState
from fvae.data import Dataset, as_dataset, to_unit_interval


def train_step_unjitted(state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, Metrics]:
    """One Adam step on the state's objective (the negative ELBO by default) for `batch`
    (skipped, with metrics "grad_norm" and "skipped", where the state's skip_grad_norm says).

    batch: a Dataset of images (uint8 or [0,1] floats) with labels for conditional models, or bare images.
    All randomness (reparameterization noise, dynamic binarization) comes from
    fold_in(key, state.step): pass the same run key every step. Returns the new state and
    the batch's {"loss" (the objective), "reconstruction", "kl" (the true, unweighted terms)}.
    """
    images, labels = as_dataset(batch)
    x = to_unit_interval(images)
    step_key = jax.random.fold_in(key, state.step)

    def loss_fn(params):
        out = state.apply_fn({"params": params}, x, step_key, labels, state.objective.iwae_samples, training=True)
        terms = state.objective.loss(out, state.step)
        return terms["loss"], terms

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    if not state.skip_grad_norm:
        return state.apply_gradients(grads=grads), metrics
    # VDVAE's guard: a step with an extreme (or non-finite) gradient leaves params and Adam's moments as they were.
    norm = optax.tree.norm(grads)
    keep = norm < state.skip_grad_norm
    updated = state.apply_gradients(grads=grads)
    params, opt_state = jax.tree.map(lambda new, old: jnp.where(keep, new, old),
                                     (updated.params, updated.opt_state), (state.params, state.opt_state))
    metrics = {**metrics, "grad_norm": norm, "skipped": 1.0 - keep.astype(jnp.float32)}
    return updated.replace(params=params, opt_state=opt_state), metrics


# The train step, compiled once; the input state's buffers are donated to the output.
train_step = jax.jit(train_step_unjitted, donate_argnums=0)


@functools.partial(jax.jit, static_argnames=("num_examples", "batch_size"))
def epoch_batches(shuffle_key: jax.Array, epoch: int | jax.Array, num_examples: int,
                  batch_size: int) -> jax.Array:
    """Indices of one epoch's shuffled batches, drawn on device: (num_examples // batch_size, B).

    The remainder of num_examples % batch_size images (a different set each epoch) is dropped.
    """
    perm = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), num_examples)
    steps = num_examples // batch_size
    return perm[: steps * batch_size].reshape(steps, batch_size)


@functools.partial(jax.jit, donate_argnums=0, static_argnames=("batch_sharding",))
def train_block(state: TrainState, dataset: Dataset | jax.Array, batch_indices: jax.Array, key: jax.Array,
               batch_sharding: jax.sharding.Sharding | None = None) -> tuple[TrainState, Metrics]:
    """Runs len(batch_indices) train steps as one compiled call (lax.scan).

    dataset: the device-resident training set, uint8 images (N, ...) with labels (N,) for
    conditional models (a Dataset), or bare images; batch_indices: (S, B).
    batch_sharding: for data parallelism, how each gathered batch is split over devices
    (see fvae.compute.placement); each device then gathers only its own slice.
    Returns the new state and the per-metric sums over the S steps, plus
    "nonfinite_step": the global step number of the first step whose loss was NaN/Inf
    (-1 if none), so a failure can be named exactly.
    """
    images, labels = as_dataset(dataset)

    def body(state, indices):
        batch = Dataset(images[indices], None if labels is None else labels[indices])
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return train_step_unjitted(state, batch, key)

    first_step = state.step
    state, metrics = jax.lax.scan(body, state, batch_indices)
    sums = jax.tree.map(jnp.sum, metrics)
    finite = jnp.isfinite(metrics["loss"])
    sums["nonfinite_step"] = jnp.where(finite.all(), -1, first_step + 1 + jnp.argmin(finite))
    return state, sums


def _mean_metrics(totals: Metrics, steps: int) -> Metrics:
    """Sums over an epoch -> means; keeps the first non-finite step as it is."""
    means = {k: v / steps for k, v in totals.items() if k != "nonfinite_step"}
    means["nonfinite_step"] = totals["nonfinite_step"]
    return means


def _accumulate(totals: Metrics | None, new: Metrics) -> Metrics:
    """Adds metric sums; keeps the earliest non-finite step (-1 means none so far)."""
    if totals is None:
        return new
    earlier, later = totals["nonfinite_step"], new["nonfinite_step"]
    summed = {k: totals[k] + new[k] for k in totals if k != "nonfinite_step"}
    summed["nonfinite_step"] = jnp.where(earlier >= 0, earlier, later)
    return summed


def first_nonfinite_step(metrics: Metrics) -> int:
    """The global step whose loss was first NaN/Inf (-1 if none); waits for the device."""
    return int(np.asarray(metrics["nonfinite_step"].addressable_data(0)))


@dataclasses.dataclass(frozen=True)
class EpochOptions:
    """How an epoch runs: its batch size; steps per compiled call (0: the whole epoch in one
    call; `train_epoch` only); how each batch is split over devices for data parallelism
    (see fvae.compute.placement); whether to wait after each block (or step) and return
    early if a loss was NaN/Inf (False dispatches everything without waiting); and a
    callback with the number of steps dispatched (a progress bar)."""

    batch_size: int
    steps_per_call: int = 0
    batch_sharding: jax.sharding.Sharding | None = None
    stop_on_nonfinite: bool = True
    on_progress: Callable[[int], None] | None = None


def train_epoch(state: TrainState, dataset: Dataset | jax.Array, key: jax.Array, shuffle_key: jax.Array,
                epoch: int, options: EpochOptions) -> tuple[TrainState, Metrics]:
    """One epoch on device, in compiled blocks of `options.steps_per_call` steps.

    dataset: device arrays, images with labels (a Dataset, for conditional models) or bare
    images. Returns the state and the mean metrics of the steps run (device arrays), with
    "nonfinite_step" as in `train_block`.
    """
    batch_size, batch_sharding = options.batch_size, options.batch_sharding
    dataset = as_dataset(dataset)
    indices = epoch_batches(shuffle_key, epoch, dataset.num_examples, batch_size)
    steps = indices.shape[0]
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {dataset.num_examples} training images")
    block = options.steps_per_call or steps
    totals, done = None, 0
    for start in range(0, steps, block):
        state, sums = train_block(state, dataset, indices[start:start + block], key, batch_sharding)
        totals, done = _accumulate(totals, sums), min(start + block, steps)
        if options.on_progress is not None:
            options.on_progress(done - start)
        if options.stop_on_nonfinite and first_nonfinite_step(sums) >= 0:
            break
    assert totals is not None  # At least one block ran (steps > 0).
    return state, _mean_metrics(totals, done)


def train_epoch_stepwise(state: TrainState, dataset: Dataset | np.ndarray, key: jax.Array,
                         shuffle_key: jax.Array, epoch: int, options: EpochOptions) -> tuple[TrainState, Metrics]:
    """The per-step host loop for data that stays on the host: same batches, same results.

    Each batch is gathered from host memory and fed to the jitted `train_step`. With
    `options.batch_sharding` (data parallelism, many processes) each process gathers only
    the rows of every batch that its own devices hold. Metrics as in `train_epoch`.
    """
    batch_size, batch_sharding = options.batch_size, options.batch_sharding
    images, labels = as_dataset(dataset)
    indices = epoch_batches(shuffle_key, epoch, images.shape[0], batch_size)
    indices = np.asarray(indices.addressable_data(0))  # Same on every process.
    rows = _process_rows(batch_sharding, batch_size)
    totals, done = None, 0
    for row in indices:
        batch = Dataset(images[row[rows]], None if labels is None else labels[row[rows]])
        if batch_sharding is not None:
            batch = jax.tree.map(lambda a: jax.make_array_from_process_local_data(batch_sharding, a), batch)
        step = state.step + 1
        state, metrics = train_step(state, batch, key)
        metrics["nonfinite_step"] = jnp.where(jnp.isfinite(metrics["loss"]), -1, step)
        totals, done = _accumulate(totals, metrics), done + 1
        if options.on_progress is not None:
            options.on_progress(1)
        if options.stop_on_nonfinite and first_nonfinite_step(metrics) >= 0:
            break
    if totals is None:
        raise ValueError(f"batch_size {batch_size} exceeds the {images.shape[0]} training images")
    return state, _mean_metrics(totals, done)


def _process_rows(batch_sharding: jax.sharding.Sharding | None, batch_size: int) -> slice:
    """The contiguous rows of a global batch held by this process's devices."""
    if batch_sharding is None:
        return slice(None)
    index_map = batch_sharding.addressable_devices_indices_map((batch_size,))
    rows = [index[0] for index in index_map.values() if index is not None]
    starts = [row.start or 0 for row in rows]
    stops = [batch_size if row.stop is None else row.stop for row in rows]
    return slice(min(starts), max(stops))
