import jax
import jax.numpy as jnp
import numpy as np

from fvae.evaluate import eval_step, evaluate, generate, reconstruct
from tests.helpers import fake_images, new_state


def test_evaluate_counts_every_image_once_despite_padding():
    state, images, key = new_state(), jnp.asarray(fake_images(250)), jax.random.key(5)
    got = evaluate(state, images, key, batch_size=100)
    # Independent computation: batch i (with key fold_in(key, i)) weighted by its size.
    sizes = [100, 100, 50]
    parts = [eval_step(state, images[i * 100:i * 100 + s], jax.random.fold_in(key, i)) for i, s in enumerate(sizes)]
    for name in ("loss", "reconstruction", "kl"):
        expected = sum(float(p[name]) * s for p, s in zip(parts, sizes)) / 250
        np.testing.assert_allclose(float(got[name]), expected, rtol=1e-5)


def test_evaluate_is_deterministic_for_a_key():
    state, images = new_state(), jnp.asarray(fake_images(300))
    a = evaluate(state, images, jax.random.key(0), batch_size=128)
    b = evaluate(state, images, jax.random.key(0), batch_size=128)
    assert float(a["loss"]) == float(b["loss"])


def test_reconstruct_and_generate_give_pixels_in_unit_interval():
    state = new_state()
    recon = reconstruct(state, fake_images(5))
    samples = generate(state, jax.random.key(0), 7)
    assert recon.shape == (5, 784) and samples.shape == (7, 784)
    for pixels in (recon, samples):
        assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0
