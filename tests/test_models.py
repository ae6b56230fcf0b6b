import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import default, mlp500
from fvae.models import VAE, Decoder, Encoder, build_model, reparameterize


def test_encoder_and_decoder_work_alone():
    x = jnp.ones((3, 784))
    encoder = Encoder(hidden=(64, 32), latents=5)
    params = encoder.init(jax.random.key(0), x)
    mean, logvar = encoder.apply(params, x)
    assert mean.shape == logvar.shape == (3, 5)
    decoder = Decoder(hidden=(32,), output_shape=(784,))
    dparams = decoder.init(jax.random.key(1), mean)
    assert decoder.apply(dparams, mean).shape == (3, 784)
    assert jax.tree.map(jnp.shape, params)["params"]["hidden_0"]["kernel"] == (784, 64)


def test_vae_shapes_for_both_configs():
    for config in (default.get_config(), mlp500.get_config()):
        model = build_model(config.model)
        x = jnp.zeros((4, 784))
        variables = model.init(jax.random.key(0), x, jax.random.key(1))
        logits, mean, logvar = model.apply(variables, x, jax.random.key(2))
        assert logits.shape == (4, 784)
        assert mean.shape == logvar.shape == (4, config.model.latents)
        samples = model.apply(variables, jax.random.key(3), 6, method="generate")
        assert samples.shape == (6, 784) and float(samples.min()) >= 0 and float(samples.max()) <= 1


def test_mlp500_is_the_reference_architecture():
    model = build_model(mlp500.get_config().model)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 784)), jax.random.key(1))
    shapes = jax.tree.map(jnp.shape, variables["params"])
    assert shapes["encoder"]["hidden_0"]["kernel"] == (784, 500)
    assert shapes["encoder"]["mean"]["kernel"] == (500, 20)
    assert shapes["decoder"]["hidden_0"]["kernel"] == (20, 500)
    assert shapes["decoder"]["logits"]["kernel"] == (500, 784)


def test_different_keys_give_different_latents_and_same_key_the_same():
    mean, logvar = jnp.zeros((2, 8)), jnp.zeros((2, 8))
    a = reparameterize(jax.random.key(0), mean, logvar)
    b = reparameterize(jax.random.key(1), mean, logvar)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, reparameterize(jax.random.key(0), mean, logvar))


def test_reparameterize_has_the_posterior_moments():
    mean, logvar = jnp.full((200_000, 1), 2.0), jnp.full((200_000, 1), np.log(0.25))
    z = reparameterize(jax.random.key(0), mean, logvar)
    np.testing.assert_allclose(float(z.mean()), 2.0, atol=0.01)
    np.testing.assert_allclose(float(z.std()), 0.5, atol=0.01)


def test_vae_composes_its_parts():
    model = VAE(Encoder((16,), 3), Decoder((16,), (784,)))
    x = jax.random.uniform(jax.random.key(0), (2, 784))
    variables = model.init(jax.random.key(1), x, jax.random.key(2))
    mean, logvar = model.apply(variables, x, method="encode")
    z = reparameterize(jax.random.key(3), mean, logvar)
    expected = model.apply(variables, z, method="decode")
    logits, _, _ = model.apply(variables, x, jax.random.key(3))
    np.testing.assert_allclose(logits, expected, rtol=1e-6)
