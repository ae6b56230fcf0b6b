"""Run in a subprocess (device count is fixed at jax import): trains the same small models on
one device and data-parallel on all devices, and prints the differences as JSON. Covers the
on-device and per-step paths, a conditional model (labels sharded with the images), and the
batch-size check that only has work to do with more than one device."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from fvae import compute
from fvae.compute import placement
from fvae.compute.bounds import evaluate_bound
from fvae.data import Dataset
from fvae.models import VAE, Decoder, Encoder
from tests.helpers import assert_same_training, fake_images, new_state

IMAGES, BATCH_SIZE, EPOCHS = 1024, 64, 3


def conditional_state():
    model = VAE(Encoder((64,), 8), Decoder((64,), (784,)), num_classes=10)
    return compute.create_train_state(model, jax.random.key(0), fake_images(1), 1e-3)


def run(mesh, on_device: bool, conditional: bool = False):
    images = fake_images(IMAGES)
    labels = np.random.default_rng(0).integers(0, 10, IMAGES).astype(np.int32) if conditional else None
    state = conditional_state() if conditional else new_state()
    key, shuffle_key = jax.random.key(1), jax.random.key(2)
    sharding = None
    if mesh is not None:
        state, key, shuffle_key = placement.replicate((state, key, shuffle_key), mesh)
        sharding = placement.batch_sharded(mesh)
    put = (lambda a: placement.replicate(a, mesh)) if mesh is not None else jnp.asarray
    device_images = put(images)
    device_labels = None if labels is None else put(labels)
    for epoch in range(EPOCHS):
        if on_device:
            state, metrics = compute.train_epoch(state, Dataset(device_images, device_labels), key, shuffle_key, epoch,
                                                 compute.EpochOptions(BATCH_SIZE, batch_sharding=sharding))
        else:
            state, metrics = compute.train_epoch_stepwise(state, Dataset(images, labels), key, shuffle_key, epoch,
                                                          compute.EpochOptions(BATCH_SIZE, batch_sharding=sharding))
    val = evaluate_bound(state, Dataset(device_images, device_labels), key, 128, sharding)
    params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), state.params)
    return (params, float(np.asarray(metrics["loss"].addressable_data(0))),
            float(np.asarray(val["loss"].addressable_data(0))))


def uneven_batch_is_rejected(mesh) -> bool:
    placement.check_batch_size(mesh.size * 3, mesh)
    try:
        placement.check_batch_size(mesh.size * 3 + 1, mesh)
    except ValueError as err:
        return "divisible" in str(err)
    return False


def main():
    mesh = placement.data_mesh()
    report = {"devices": jax.device_count(), "mesh_size": mesh.size,
              "uneven_batch_rejected": uneven_batch_is_rejected(mesh)}
    for name, on_device, conditional in (("fast", True, False), ("stepwise", False, False),
                                         ("conditional", True, True), ("conditional_stepwise", False, True)):
        one_params, one_loss, one_val = run(None, on_device, conditional)
        params, loss, val = run(mesh, on_device, conditional)
        try:
            assert_same_training(params, one_params, learning_rate=1e-3, steps=EPOCHS * IMAGES // BATCH_SIZE)
            params_differ = ""
        except AssertionError as err:
            params_differ = f"params differ: {err}"
        report[name] = {"params_differ": params_differ, "loss": loss, "one_device_loss": one_loss,
                        "val_loss": val, "one_device_val_loss": one_val}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
