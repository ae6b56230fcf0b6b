"""Training: state creation, the jitted train step, whole-epoch training, early stopping.

Randomness is explicit. The caller passes one key; each step derives its own key as
`fold_in(key, state.step)` inside the compiled step, and each epoch's shuffle is
`fold_in(shuffle_key, epoch)`. A run is therefore a pure function of (config, seed),
and resuming from a checkpoint continues the very same random stream.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state

from fvae.data import Dataset, as_dataset
from fvae.losses import Objective

Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
    """Flax TrainState: step, params, opt_state (the pytree); apply_fn, tx and the
    training objective are static."""

    objective: Objective = struct.field(pytree_node=False, default=Objective())


def create_train_state(model: nn.Module, key: jax.Array, example_batch: jax.Array,
                       learning_rate: float | optax.Schedule, objective: Objective = Objective()) -> TrainState:
    """Initializes parameters from `key` and an Adam optimizer (learning_rate: a constant, or an
    optax schedule of the step, e.g. fvae.config.learning_rate(config))."""
    images = as_unit_interval(example_batch)
    params = model.init(key, images, jax.random.key(0), jnp.zeros(images.shape[:1], jnp.int32))["params"]
    return TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(learning_rate), objective=objective)


Batch = jax.Array | dict[str, jax.Array]


def unpack(batch: Batch) -> tuple[jax.Array, jax.Array | None]:
    """A batch is images (B, ...) or {"image": (B, ...), "label": (B,)} -> (images, labels or None)."""
    if isinstance(batch, dict):
        return batch["image"], batch.get("label")
    return batch, None


def as_unit_interval(batch: jax.Array) -> jax.Array:
    """uint8 pixels -> float32 in [0, 1]; float batches are taken as already in [0, 1]."""
    if jnp.issubdtype(batch.dtype, jnp.integer):
        return batch.astype(jnp.float32) / 255.0
    return batch


def train_step_unjitted(state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, Metrics]:
    """One Adam step on the state's objective (the negative ELBO by default) for `batch`.

    batch: images (uint8 or [0,1] floats), or {"image", "label"} for conditional models.
    All randomness (reparameterization noise, dynamic binarization) comes from
    fold_in(key, state.step): pass the same run key every step. Returns the new state and
    the batch's {"loss" (the objective), "reconstruction", "kl" (the true, unweighted terms)}.
    """
    images, labels = unpack(batch)
    x = as_unit_interval(images)
    step_key = jax.random.fold_in(key, state.step)

    def loss_fn(params):
        out = state.apply_fn({"params": params}, x, step_key, labels, state.objective.iwae_samples, training=True)
        terms = state.objective.loss(out, state.step)
        return terms["loss"], terms

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), metrics


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
    (see fvae.parallel); each device then gathers only its own slice.
    Returns the new state and the per-metric sums over the S steps, plus
    "nonfinite_step": the global step number of the first step whose loss was NaN/Inf
    (-1 if none), so a failure can be named exactly.
    """
    images, labels = as_dataset(dataset)

    def body(state, indices):
        batch = images[indices] if labels is None else {"image": images[indices], "label": labels[indices]}
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


def train_epoch(state: TrainState, dataset: Dataset | jax.Array, key: jax.Array, shuffle_key: jax.Array,
                epoch: int, batch_size: int, steps_per_call: int = 0,
                on_progress: Callable[[int], None] | None = None,
                batch_sharding: jax.sharding.Sharding | None = None,
                stop_on_nonfinite: bool = True) -> tuple[TrainState, Metrics]:
    """One epoch on device in blocks of `steps_per_call` steps (0: the whole epoch in one call).

    dataset: device arrays, images with labels (a Dataset, for conditional models) or bare
    images.
    `on_progress(steps_done_in_block)` is called after each block is dispatched (for a
    progress bar). Returns the state and the mean metrics of the steps run (device
    arrays), with "nonfinite_step" as in `train_block`. stop_on_nonfinite: after each
    block, wait for it and return early if a loss was NaN/Inf (no later block runs);
    False dispatches all blocks without waiting.
    """
    dataset = as_dataset(dataset)
    indices = epoch_batches(shuffle_key, epoch, dataset.num_examples, batch_size)
    steps = indices.shape[0]
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {dataset.num_examples} training images")
    block = steps_per_call or steps
    totals, done = None, 0
    for start in range(0, steps, block):
        state, sums = train_block(state, dataset, indices[start:start + block], key, batch_sharding)
        totals, done = _accumulate(totals, sums), min(start + block, steps)
        if on_progress is not None:
            on_progress(done - start)
        if stop_on_nonfinite and first_nonfinite_step(sums) >= 0:
            break
    return state, _mean_metrics(totals, done)


def train_epoch_stepwise(state: TrainState, dataset: Dataset | np.ndarray, key: jax.Array,
                         shuffle_key: jax.Array, epoch: int, batch_size: int,
                         on_progress: Callable[[int], None] | None = None,
                         batch_sharding: jax.sharding.Sharding | None = None,
                         stop_on_nonfinite: bool = True) -> tuple[TrainState, Metrics]:
    """The per-step host loop for data that stays on the host: same batches, same results.

    Each batch is gathered from host memory and fed to the jitted `train_step`. With
    `batch_sharding` (data parallelism, many processes) each process gathers only the
    rows of every batch that its own devices hold. stop_on_nonfinite: wait for each step
    and return right after one whose loss is NaN/Inf (metrics as in `train_epoch`).
    """
    images, labels = as_dataset(dataset)
    indices = epoch_batches(shuffle_key, epoch, images.shape[0], batch_size)
    indices = np.asarray(indices.addressable_data(0))  # Same on every process.
    rows = _process_rows(batch_sharding, batch_size)
    totals, done = None, 0
    for row in indices:
        batch = images[row[rows]] if labels is None else {"image": images[row[rows]], "label": labels[row[rows]]}
        if batch_sharding is not None:
            batch = jax.tree.map(lambda a: jax.make_array_from_process_local_data(batch_sharding, a), batch)
        step = state.step + 1
        state, metrics = train_step(state, batch, key)
        metrics["nonfinite_step"] = jnp.where(jnp.isfinite(metrics["loss"]), -1, step)
        totals, done = _accumulate(totals, metrics), done + 1
        if on_progress is not None:
            on_progress(1)
        if stop_on_nonfinite and first_nonfinite_step(metrics) >= 0:
            break
    return state, _mean_metrics(totals, done)


def _process_rows(batch_sharding: jax.sharding.Sharding | None, batch_size: int) -> slice:
    """The contiguous rows of a global batch held by this process's devices."""
    if batch_sharding is None:
        return slice(None)
    index_map = batch_sharding.addressable_devices_indices_map((batch_size,))
    starts = [index[0].start or 0 for index in index_map.values()]
    stops = [batch_size if index[0].stop is None else index[0].stop for index in index_map.values()]
    return slice(min(starts), max(stops))


@dataclasses.dataclass
class EarlyStopping:
    """Stops when validation loss has not improved by min_delta for `patience` epochs."""

    patience: int
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Records an epoch's validation loss; returns True if it is the new best."""
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = float(val_loss), epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "EarlyStopping":
        return cls(**values)


def replay_early_stopping(val_losses: list[float], patience: int, min_delta: float = 0.0) -> tuple[EarlyStopping, int]:
    """(the stopper's final state, epochs trained) of a run with this patience whose validation
    losses by epoch were val_losses: the runner's rule replayed on a recorded curve. Exact for
    runs whose learning rate does not depend on when they stop (constant, or a schedule over
    max_epochs), so one long run answers "what would patience P have cost or saved"."""
    stopper = EarlyStopping(patience, min_delta)
    for epoch, loss in enumerate(val_losses, start=1):
        stopper.update(epoch, loss)
        if stopper.should_stop:
            return stopper, epoch
    return stopper, len(val_losses)
