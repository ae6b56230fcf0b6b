"""Data parallelism on JAX's own runtime: a 1-D device mesh, batch sharded, state replicated.

One process or many (`jax.distributed`): the mesh spans every device of every process.
Parameters, optimizer state, keys and the (small) uint8 dataset are replicated; each
batch is sharded along its first axis, so each device gathers and processes only its
slice, and XLA inserts the gradient all-reduce. The math is the same as on one device
with the same global batch.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fvae.errors import ConfigError

AXIS = "data"


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1,
                           cpu_collectives: str = "gloo") -> None:
    """Starts jax.distributed from explicit values, else from the usual environment.

    Explicit values win; otherwise JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    JAX_PROCESS_ID, or the cluster auto-detection of jax (Cloud TPU, SLURM, ...).
    On the CPU backend the cross-process collectives use `cpu_collectives` (gloo).
    """
    if jax.config.jax_platforms in (None, "", "cpu") or os.environ.get("JAX_PLATFORMS", "") == "cpu":  # type: ignore[attr-defined]  # a jax flag: typed stubs omit it
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    kwargs: dict[str, Any] = {}
    if coordinator_address:
        kwargs.update(coordinator_address=coordinator_address, num_processes=num_processes,
                      process_id=process_id)
    jax.distributed.initialize(**kwargs)


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh named "data" over `devices` (default: all devices of all processes)."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Sharding of a batch (B, ...) along B."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def replicate(tree, mesh: Mesh):
    """Places a pytree of host values (identical on every process) replicated on the mesh."""
    sharding = replicated(mesh)

    def place(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            return jax.random.wrap_key_data(place(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(place, tree)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    if batch_size % mesh.size:
        raise ConfigError(f"train.batch_size {batch_size} must be divisible by the {mesh.size} devices "
                         "of the data-parallel mesh.")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where arrays live: one device, or a data-parallel mesh over all devices (all hosts)."""

    mesh: Mesh | None
    batch_sharding: NamedSharding | None

    @classmethod
    def for_devices(cls) -> Placement:
        if jax.device_count() == 1:
            return cls(None, None)
        mesh = data_mesh()
        return cls(mesh, batch_sharded(mesh))

    @property
    def is_writer(self) -> bool:
        """Only process 0 writes files (Orbax coordinates checkpoints across processes itself)."""
        return jax.process_index() == 0

    def put(self, tree):
        """Host values (identical on every process) -> device arrays (replicated on the mesh)."""
        return jax.device_put(tree) if self.mesh is None else replicate(tree, self.mesh)


def to_host(tree: Any) -> Any:
    """Scalars of device arrays (replicated or not, one process or many) -> Python floats."""
    return jax.tree.map(lambda x: float(np.asarray(x.addressable_data(0))), tree)
