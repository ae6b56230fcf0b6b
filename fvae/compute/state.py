"""The types that training and evaluation share: the train state, a batch, its metrics."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training import train_state

from fvae.data import Dataset, to_unit_interval
from fvae.models.losses import Objective

Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
    """Flax TrainState: step, params, opt_state (the pytree, what checkpoints hold); apply_fn,
    tx, the training objective, Adam's learning rate (a constant or a schedule) and the
    gradient norm above which a step is skipped (0: never; VDVAE's guard) are static."""

    objective: Objective = struct.field(pytree_node=False, default=Objective())
    learning_rate: float | optax.Schedule = struct.field(pytree_node=False, default=1e-3)
    skip_grad_norm: float = struct.field(pytree_node=False, default=0.0)

    def current_learning_rate(self) -> float:
        """The rate Adam used for the last step taken (the first step's before any)."""
        rate, step = self.learning_rate, self.step
        step = int(np.asarray(step.addressable_data(0) if isinstance(step, jax.Array) else step))  # Many hosts too.
        return float(rate(max(step - 1, 0))) if callable(rate) else float(rate)


def create_train_state(model: nn.Module, key: jax.Array, example_batch: jax.Array | np.ndarray,
                       learning_rate: float | optax.Schedule, objective: Objective = Objective(),
                       skip_grad_norm: float = 0.0, tx: optax.GradientTransformation | None = None) -> TrainState:
    """Initializes parameters from `key` and an Adam optimizer (learning_rate: a constant, or an
    optax schedule of the step, e.g. fvae.run.assemble.learning_rate(config)). skip_grad_norm > 0:
    a step whose gradient's global norm is not below it changes neither parameters nor Adam's
    moments (the step still counts, so the next batch draws fresh noise). tx: another optax
    optimizer (fvae.run.assemble.optimizer(config) builds a config's; its learning rate should
    be `learning_rate`, which the state reports)."""
    images = to_unit_interval(example_batch)
    learning_rate = learning_rate if callable(learning_rate) else float(learning_rate)  # Static: hashable.
    params = model.init(key, images, jax.random.key(0), jnp.zeros(images.shape[:1], jnp.int32))["params"]
    return TrainState.create(apply_fn=_apply_fn(model), params=params, tx=_adam(learning_rate) if tx is None else tx,
                             objective=objective, learning_rate=learning_rate, skip_grad_norm=float(skip_grad_norm))


# The jitted steps take the state's static fields (apply_fn, tx) as part of their cache key. A
# bound method or a fresh optax closure never equals the last run's, so every run of the same
# config in one process (a sweep, a notebook, a resume) compiled every step again; equal models
# and rates now share one apply_fn and one tx.
@functools.lru_cache(maxsize=64)
def _apply_fn(model: nn.Module):
    return model.apply


@functools.lru_cache(maxsize=64)
def _adam(learning_rate: float | optax.Schedule) -> optax.GradientTransformation:
    return optax.adam(learning_rate)


# A batch, like a whole split, is a Dataset: images (B, ...) with labels (B,) or None (only
# conditional models read labels). Bare images stand for Dataset(images).
Batch = Dataset | jax.Array
