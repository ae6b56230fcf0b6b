"""The types that training and evaluation share: the train state, a batch, its metrics."""

from __future__ import annotations

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
    tx, the training objective and Adam's learning rate (a constant or a schedule) are static."""

    objective: Objective = struct.field(pytree_node=False, default=Objective())
    learning_rate: float | optax.Schedule = struct.field(pytree_node=False, default=1e-3)

    def current_learning_rate(self) -> float:
        """The rate Adam used for the last step taken (the first step's before any)."""
        rate, step = self.learning_rate, self.step
        step = int(np.asarray(step.addressable_data(0) if isinstance(step, jax.Array) else step))  # Many hosts too.
        return float(rate(max(step - 1, 0))) if callable(rate) else float(rate)


def create_train_state(model: nn.Module, key: jax.Array, example_batch: jax.Array | np.ndarray,
                       learning_rate: float | optax.Schedule, objective: Objective = Objective()) -> TrainState:
    """Initializes parameters from `key` and an Adam optimizer (learning_rate: a constant, or an
    optax schedule of the step, e.g. fvae.run.assemble.learning_rate(config))."""
    images = to_unit_interval(example_batch)
    params = model.init(key, images, jax.random.key(0), jnp.zeros(images.shape[:1], jnp.int32))["params"]
    return TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(learning_rate), objective=objective,
                             learning_rate=learning_rate)


# A batch, like a whole split, is a Dataset: images (B, ...) with labels (B,) or None (only
# conditional models read labels). Bare images stand for Dataset(images).
Batch = Dataset | jax.Array
