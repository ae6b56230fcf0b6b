"""Small models and synthetic data shared by the tests."""

import jax
import jax.numpy as jnp
import numpy as np

from fvae import train
from fvae.models import VAE, Decoder, Encoder


def small_model() -> VAE:
    return VAE(Encoder((64,), 8), Decoder((64,), (784,)))


def fake_images(n: int, seed: int = 0) -> np.ndarray:
    """uint8 'images' with structure (a few prototypes plus noise), so a VAE can learn them."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, (4, 784))
    noise = rng.integers(-20, 21, (n, 784))
    return np.clip(prototypes[rng.integers(0, 4, n)] + noise, 0, 255).astype(np.uint8)


def new_state(seed: int = 0, lr: float = 1e-3) -> train.TrainState:
    return train.create_train_state(small_model(), jax.random.key(seed), fake_images(1), lr)


def params_equal(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b)))
