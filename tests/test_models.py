import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import default, mlp500
from fvae.models import VAE, ConvDecoder, ConvEncoder, Decoder, Encoder, build_model, pixel_shuffle
from fvae.models.gaussians import log_mixture_of_diagonal_normals, log_normal_diag, reparameterize
from fvae.run.config import defaults


def test_encoder_and_decoder_work_alone():
    x = jnp.ones((3, 784))
    encoder = Encoder(hidden=(64, 32), latents=5)
    params = encoder.init(jax.random.key(0), x)
    mean, logvar = encoder.apply(params, x)
    assert mean.shape == logvar.shape == (3, 5)
    decoder = Decoder(hidden=(32,), output_shape=(784,))
    dparams = decoder.init(jax.random.key(1), mean)
    assert decoder.apply(dparams, mean).shape == (3, 784, 1)
    assert jax.tree.map(jnp.shape, params)["params"]["hidden_0"]["kernel"] == (784, 64)


def test_gated_layers_multiply_linear_values_by_sigmoid_gates():
    x = jax.random.uniform(jax.random.key(0), (3, 784))
    encoder = Encoder(hidden=(6, 5), latents=2, gated=True)
    params = encoder.init(jax.random.key(1), x)["params"]
    assert params["hidden_0"]["kernel"].shape == (784, 12) and params["hidden_1"]["kernel"].shape == (6, 10)
    h = np.asarray(x, np.float64)
    for name, width in (("hidden_0", 6), ("hidden_1", 5)):  # Independent float64 forward pass.
        pre = h @ np.asarray(params[name]["kernel"], np.float64) + np.asarray(params[name]["bias"], np.float64)
        h = pre[:, :width] / (1 + np.exp(-pre[:, width:]))
    mean = h @ np.asarray(params["mean"]["kernel"], np.float64) + np.asarray(params["mean"]["bias"], np.float64)
    np.testing.assert_allclose(encoder.apply({"params": params}, x)[0], mean, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gated", [False, True])
def test_an_encoder_given_k_conditions_per_image_computes_the_images_share_once(gated):
    """q(z2 | z1, x) with K samples of z1 per image (a hierarchical VAE's IWAE): the same
    parameters and outputs as x tiled K times beside them, with K - 1 fewer products of x."""
    k, b, width = 8, 5, 16
    encoder = Encoder(hidden=(width, 8), latents=3, gated=gated)
    x = jax.random.uniform(jax.random.key(0), (b, 784))
    below = jax.random.normal(jax.random.key(1), (k * b, 2))  # Sample-major, as z1.reshape(K * B, D).
    variables = encoder.init(jax.random.key(2), x, below)
    assert jax.tree.all(jax.tree.map(lambda a, c: bool((a == c).all()), variables,
                                     encoder.init(jax.random.key(2), x, below[:b])))  # Same parameters.
    for once, tiled in zip(encoder.apply(variables, x, below), encoder.apply(variables, jnp.tile(x, (k, 1)), below)):
        np.testing.assert_allclose(once, tiled, rtol=1e-5, atol=1e-6)

    def flops(images):
        cost = jax.jit(encoder.apply).lower(variables, images, below).compile().cost_analysis()
        return float((cost[0] if isinstance(cost, list) else cost)["flops"])

    outputs = 2 * width if gated else width
    saved = flops(jnp.tile(x, (k, 1))) - flops(x)
    assert saved == pytest.approx(2 * (k - 1) * b * 784 * outputs, rel=0.05)


@pytest.mark.slow
def test_gated_configs_build_gated_models_whose_dense_layers_the_benchmark_counts():
    from fvae.models.architectures import ARCHITECTURES

    for architecture in ("mlp", "hierarchical"):
        config = defaults()
        config.model.architecture, config.model.gated = architecture, True
        config.model.encoder_hidden = config.model.decoder_hidden = (30, 20)
        params = build_model(config).init(jax.random.key(0), jnp.zeros((2, 784)), jax.random.key(1))["params"]
        layers = ARCHITECTURES[architecture].from_config(config.model).dense_layers(config.model)
        assert sum(v.size for v in jax.tree.leaves(params)) == sum((a + 1) * b for a, b in layers)
        assert (30, 40) in layers  # The second gated layer of 20 units: values and gates.


@pytest.mark.slow
def test_vae_shapes_for_both_configs():
    for config in (default.get_config(), mlp500.get_config()):
        model = build_model(config)
        x = jnp.zeros((4, 784))
        variables = model.init(jax.random.key(0), x, jax.random.key(1))
        out = model.apply(variables, x, jax.random.key(2))
        assert out.likelihood_params.shape == (1, 4, 784, 1) and out.log_likelihood.shape == (1, 4)
        assert out.codes.shape == out.kl_per_latent.shape == (4, config.model.latents)
        assert out.log_prior.shape == out.log_posterior.shape == (1, 4) and out.kl.shape == (4,)
        samples = model.apply(variables, jax.random.key(3), 6, method="generate")
        # Independent: prior draws N(0, I) with the same key, decoded, through a sigmoid.
        z = jax.random.normal(jax.random.key(3), (6, config.model.latents))
        logits = model.apply(variables, z, method="likelihood_params")[..., 0]
        assert samples.shape == (6, 784)
        np.testing.assert_allclose(samples, 1 / (1 + np.exp(-np.asarray(logits, np.float64))), rtol=1e-5, atol=1e-7)


def test_mlp500_is_the_reference_architecture():
    model = build_model(mlp500.get_config())
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 784)), jax.random.key(1))  # No compiling.
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
    expected = model.apply(variables, z, method="likelihood_params")
    out = model.apply(variables, x, jax.random.key(3))
    np.testing.assert_allclose(out.likelihood_params[0], expected, rtol=1e-6)
    np.testing.assert_allclose(out.log_likelihood[0], model.apply(variables, expected, x, method="log_likelihood"),
                               rtol=1e-6)


@pytest.mark.slow
def test_conv_encoder_and_decoder_shapes_for_both_upsamplings():
    x = jnp.ones((3, 784))
    encoder = ConvEncoder(channels=(8, 16), hidden=(16,), latents=2)
    params = encoder.init(jax.random.key(0), x)
    mean, logvar = encoder.apply(params, x)
    assert mean.shape == logvar.shape == (3, 2)
    assert jax.tree.map(jnp.shape, params)["params"]["conv_1"]["kernel"] == (3, 3, 8, 16)
    for upsample in ("pixel_shuffle", "transpose"):
        decoder = ConvDecoder(channels=(16, 8), params_per_pixel=3, upsample=upsample)
        out = decoder.apply(decoder.init(jax.random.key(1), mean), mean)
        assert out.shape == (3, 784, 3)


def test_pixel_shuffle_places_each_channel_group_in_its_sub_pixel():
    h = jnp.arange(2 * 3 * 3 * 8).reshape(2, 3, 3, 8)  # factor 2, 2 output channels
    out = np.asarray(pixel_shuffle(h, 2))
    assert out.shape == (2, 6, 6, 2)
    for b, i, j, di, dj, c in [(0, 0, 0, 0, 0, 0), (1, 2, 1, 1, 0, 1), (0, 1, 2, 1, 1, 0), (1, 0, 2, 0, 1, 1)]:
        assert out[b, 2 * i + di, 2 * j + dj, c] == h[b, i, j, (di * 2 + dj) * 2 + c]


@pytest.mark.slow
def test_chollet_config_matches_the_keras_architecture():
    from experiments.configs import conv_chollet

    model = build_model(conv_chollet.get_config())
    variables = model.init(jax.random.key(0), jnp.zeros((1, 784)), jax.random.key(1))
    shapes = jax.tree.map(jnp.shape, variables["params"])
    assert shapes["encoder"]["conv_0"]["kernel"] == (3, 3, 1, 32)
    assert shapes["encoder"]["conv_1"]["kernel"] == (3, 3, 32, 64)
    assert shapes["encoder"]["hidden_0"]["kernel"] == (7 * 7 * 64, 16)
    assert shapes["encoder"]["mean"]["kernel"] == (16, 2)
    assert shapes["decoder"]["project"]["kernel"] == (2, 7 * 7 * 64)
    assert shapes["decoder"]["upsample_0"]["kernel"] == (3, 3, 64, 64)
    assert shapes["decoder"]["upsample_1"]["kernel"] == (3, 3, 64, 32)
    assert shapes["decoder"]["logits"]["kernel"] == (3, 3, 32, 1)


def test_conditional_decoder_output_depends_on_the_label():
    config = defaults()
    config.model.conditional, config.model.encoder_hidden, config.model.decoder_hidden = True, (32,), (32,)
    model = build_model(config)
    x, z = jnp.zeros((2, 784)), jnp.zeros((2, config.model.latents))
    variables = model.init(jax.random.key(0), x, jax.random.key(1), jnp.zeros((2,), jnp.int32))
    dress, bag = (model.apply(variables, z, jnp.array([label] * 2), method="likelihood_params") for label in (3, 8))
    assert float(jnp.abs(dress - bag).max()) > 1e-3
    codes = [model.apply(variables, x, jnp.array([label] * 2), method="encode")[0] for label in (3, 8)]
    assert float(jnp.abs(codes[0] - codes[1]).max()) > 1e-4
    try:
        model.apply(variables, z, method="likelihood_params")
    except ValueError as err:
        assert "pass labels" in str(err)
    else:
        raise AssertionError("a conditional decoder without labels must fail")


def test_mixture_log_density_matches_the_brute_force_sum():
    rng = np.random.default_rng(0)
    z, means = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    logvars = rng.normal(scale=0.5, size=(11, 5))
    brute = np.log(np.mean(np.exp(np.stack([log_normal_diag(jnp.asarray(z), jnp.asarray(m), jnp.asarray(v))
                                            for m, v in zip(means, logvars)])), axis=0))
    got = log_mixture_of_diagonal_normals(*(jnp.asarray(a, jnp.float32) for a in (z, means, logvars)))
    np.testing.assert_allclose(got, brute, rtol=1e-4)


@pytest.mark.slow
def test_vampprior_is_the_mixture_of_posteriors_at_the_pseudo_inputs():
    config = defaults()
    config.prior.name, config.prior.components = "vamp", 6
    config.model.encoder_hidden, config.model.decoder_hidden, config.model.latents = (16,), (16,), 2
    model = build_model(config)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 784)), jax.random.key(1))
    pseudo = jax.nn.sigmoid(variables["params"]["pseudo_inputs"])
    means, logvars = model.apply(variables, pseudo, method="encode")
    # Normalized: integrates to one over a grid covering the 2-D latent space.
    grid = np.linspace(-8, 8, 401)
    z = jnp.asarray(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2), jnp.float32)
    density = np.exp(np.asarray(model.apply(variables, z, method="log_prior"), np.float64))
    np.testing.assert_allclose(density.sum() * (grid[1] - grid[0]) ** 2, 1.0, rtol=1e-3)
    # Samples have the mixture's mean.
    samples = model.apply(variables, jax.random.key(2), 100_000, method="sample_prior")
    np.testing.assert_allclose(samples.mean(axis=0), means.mean(axis=0), atol=0.02)
    assert logvars.shape == (6, 2)


def test_bfloat16_config_builds_a_model_that_computes_in_bfloat16_with_float32_parameters():
    config = default.get_config()
    config.model.compute_dtype = "bfloat16"
    model = build_model(config)
    assert model.encoder.dtype == model.decoder.dtype == jnp.bfloat16
    x = jnp.asarray(np.random.default_rng(0).random((4, 784)), jnp.float32)
    # Each call compiled whole (jax.jit): op by op, every bfloat16 op compiled alone took 10 s.
    variables = jax.jit(model.init)(jax.random.key(0), x, jax.random.key(1))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
    # The first layer's activations are bfloat16: the Dense output equals a bfloat16 matmul.
    encode = jax.jit(lambda v, x: model.apply(v, x, method="encode", capture_intermediates=True,
                                              mutable=["intermediates"]))
    _, state = encode(variables, x)
    hidden = state["intermediates"]["encoder"]["hidden_0"]["__call__"][0]
    assert hidden.dtype == jnp.bfloat16
    out = jax.jit(model.apply)(variables, x, jax.random.key(2))
    assert out.codes.dtype == jnp.float32 and np.isfinite(np.asarray(out.log_likelihood)).all()
    float32 = jax.jit(build_model(default.get_config()).apply)(variables, x, jax.random.key(2))
    np.testing.assert_allclose(out.log_likelihood, float32.log_likelihood, rtol=2e-2)


def hierarchical_model(middle: tuple[int, ...] = ()):
    from fvae.models import HierarchicalVAE

    return HierarchicalVAE(Encoder((16,), 3), Decoder((16,), (784,)),
                           top_encoder=Encoder((16,), 2), prior_net=Encoder((16,), 3),
                           middle_encoders=tuple(Encoder((16,), d) for d in middle),
                           middle_prior_nets=tuple(Encoder((16,), d) for d in middle))


@pytest.mark.slow
@pytest.mark.parametrize("middle", [(), (4,)], ids=["two layers", "three layers"])
def test_hierarchical_kl_matches_an_independent_monte_carlo_estimate(middle):
    """The model's KL (its own samples) against one from numpy: z1 ~ q(z1|x), then each
    zl ~ q(zl|z_{l-1},x) drawn with another generator, Gaussian log densities written out in
    float64, and the prior p(zL) p(z_{L-1}|zL) ... p(z1|z2)."""
    model, x = hierarchical_model(middle), jax.random.uniform(jax.random.key(0), (4, 784))
    variables = model.init(jax.random.key(1), x, jax.random.key(2))
    k = 4000
    out = model.apply(variables, x, jax.random.key(3), None, k)

    def net(name, index, *inputs):
        def call(m, *a):
            module = getattr(m, name)
            return (module[index] if index is not None else module)(*a)

        mean, logvar = model.apply(variables, *inputs, method=call)
        return np.asarray(mean, np.float64), np.asarray(logvar, np.float64)

    def log_normal(z, mean, logvar):
        return -0.5 * np.sum((z - mean) ** 2 / np.exp(logvar) + logvar + np.log(2 * np.pi), axis=-1)

    rng = np.random.default_rng(0)
    mean1, logvar1 = net("encoder", None, x)
    z1 = mean1 + np.exp(0.5 * logvar1) * rng.standard_normal((k, *mean1.shape))  # (K, B, 3)
    x_tiled = jnp.asarray(np.tile(np.asarray(x), (k, 1)))
    tiled = [np.broadcast_to(a, (k, 4, 3)).reshape(-1, 3) for a in (mean1, logvar1)]
    layers, log_q = [z1.reshape(k * 4, 3)], log_normal(z1.reshape(k * 4, 3), *tiled)
    upper = [("middle_encoders", i) for i in range(len(middle))] + [("top_encoder", None)]
    for name, index in upper:
        mean, logvar = net(name, index, x_tiled, jnp.asarray(layers[-1], jnp.float32))
        layers.append(mean + np.exp(0.5 * logvar) * rng.standard_normal(mean.shape))
        log_q = log_q + log_normal(layers[-1], mean, logvar)
    log_p = log_normal(layers[-1], 0.0, 0.0)
    below_nets = [("prior_net", None)] + [("middle_prior_nets", i) for i in range(len(middle))]
    for (name, index), below, above in zip(below_nets, layers[:-1], layers[1:], strict=True):
        log_p = log_p + log_normal(below, *net(name, index, jnp.asarray(above, jnp.float32)))
    log_ratio = (log_q - log_p).reshape(k, 4)
    mine, theirs = log_ratio.mean(0), np.asarray(out.kl, np.float64)
    spread = np.sqrt(log_ratio.var(0) / k + np.asarray(out.log_posterior - out.log_prior).var(0) / k)
    assert (np.abs(mine - theirs) < 5 * spread).all(), (mine, theirs, spread)
    assert out.codes.shape == (4, 3 + sum(middle) + 2)
