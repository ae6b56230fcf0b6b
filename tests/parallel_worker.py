"""Run in a subprocess (device count is fixed at jax import): trains the same small model on
one device and data-parallel on all devices, and prints the differences as JSON."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from fvae import parallel, train
from fvae.evaluate import evaluate_elbo
from tests.helpers import fake_images, new_state


def run(mesh, on_device: bool):
    images = fake_images(1024)
    state, key, shuffle_key = new_state(), jax.random.key(1), jax.random.key(2)
    sharding = None
    if mesh is not None:
        state, key, shuffle_key = parallel.replicate((state, key, shuffle_key), mesh)
        sharding = parallel.batch_sharded(mesh)
    device_images = parallel.replicate(images, mesh) if mesh is not None else jnp.asarray(images)
    for epoch in range(3):
        if on_device:
            state, metrics = train.train_epoch(state, device_images, key, shuffle_key, epoch, 64,
                                               batch_sharding=sharding)
        else:
            state, metrics = train.train_epoch_stepwise(state, images, key, shuffle_key, epoch, 64,
                                                        batch_sharding=sharding)
    val = evaluate_elbo(state, device_images, key, 128, sharding)
    params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), state.params)
    return params, float(np.asarray(metrics["loss"].addressable_data(0))), float(np.asarray(val["loss"].addressable_data(0)))


def main():
    mesh = parallel.data_mesh()
    one_params, one_loss, one_val = run(None, on_device=True)
    report = {"devices": jax.device_count()}
    for name, on_device in (("fast", True), ("stepwise", False)):
        params, loss, val = run(mesh, on_device)
        diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), params, one_params))
        report[name] = {"max_param_diff": max(diffs), "loss": loss, "one_device_loss": one_loss,
                        "val_loss": val, "one_device_val_loss": one_val}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
