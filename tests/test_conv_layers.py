"""fvae.models.conv_layers: the matmul forms equal Flax's convolutions, values and gradients, with
the same parameters; on the CPU the conv VAEs' training step holds no convolution."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvae.models.conv_layers import Conv3x3, ConvTranspose3x3, use_matmul


def relative_error(a, b) -> float:
    return max(float(jnp.abs(x - y).max() / (jnp.abs(x).max() + 1e-12)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@functools.partial(jax.jit, static_argnums=0)  # One compile a case (op by op: dozens, 7 s a case).
def values_and_gradients(module, variables, x):
    """The output and the gradients of sum(y^2) with respect to the parameters and the input."""
    grads = jax.grad(lambda v, x: jnp.sum(jnp.square(module.apply(v, x))), argnums=(0, 1))(variables, x)
    return module.apply(variables, x), grads


SLOW = pytest.mark.slow  # The fast tier keeps one case of each code path.
# (height, width, in channels, out channels, stride, impl): odd and even sizes, few and many
# output channels (the two matmul layouts), the backend's own convolution.
CONVS = [(9, 8, 3, 5, 2, "matmul"), (9, 8, 5, 3, 1, "matmul"), (7, 7, 2, 3, 2, "xla"),
         pytest.param(28, 28, 1, 32, 2, "matmul", marks=SLOW), pytest.param(14, 14, 32, 64, 2, "matmul", marks=SLOW),
         pytest.param(7, 7, 64, 256, 1, "matmul", marks=SLOW), pytest.param(28, 28, 32, 1, 1, "matmul", marks=SLOW),
         pytest.param(5, 6, 4, 4, 1, "matmul", marks=SLOW), pytest.param(7, 7, 2, 3, 2, "matmul", marks=SLOW),
         pytest.param(28, 28, 32, 1, 1, "xla", marks=SLOW), pytest.param(9, 8, 3, 5, 2, "xla", marks=SLOW)]


@pytest.mark.parametrize("h, w, c, f, stride, impl", CONVS)
def test_conv3x3_equals_flax_conv(h, w, c, f, stride, impl):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, h, w, c)), jnp.float32)
    flax_conv, mine = nn.Conv(f, (3, 3), strides=stride, padding="SAME"), Conv3x3(f, stride, impl)
    variables = flax_conv.init(jax.random.key(0), x)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), variables, mine.init(jax.random.key(0), x)))
    assert relative_error(values_and_gradients(flax_conv, variables, x),
                          values_and_gradients(mine, variables, x)) < 1e-5


TRANSPOSES = [(5, 6, 3, 4, "matmul", "joint"), (4, 3, 2, 1, "matmul", "split"),
              *[pytest.param(*shape, *impl, marks=SLOW) for shape in [(7, 7, 64, 64), (14, 14, 64, 32), (5, 6, 3, 4)]
                for impl in [("matmul", "joint"), ("matmul", "split"), ("xla", "joint")]
                if (*shape, *impl) != (5, 6, 3, 4, "matmul", "joint")]]


@pytest.mark.parametrize("h, w, c, f, impl, phases", TRANSPOSES)
def test_conv_transpose3x3_equals_flax_conv_transpose(h, w, c, f, impl, phases):
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, h, w, c)), jnp.float32)
    flax_conv = nn.ConvTranspose(f, (3, 3), strides=(2, 2), padding="SAME")
    mine = ConvTranspose3x3(f, impl, phases)
    variables = flax_conv.init(jax.random.key(0), x)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), variables, mine.init(jax.random.key(0), x)))
    got, want = values_and_gradients(mine, variables, x), values_and_gradients(flax_conv, variables, x)
    assert got[0].shape == (3, 2 * h, 2 * w, f)
    assert relative_error(want, got) < 1e-5


def test_auto_is_matmul_on_the_cpu_only_and_bad_names_are_refused():
    assert use_matmul("auto") == (jax.default_backend() == "cpu")
    assert use_matmul("matmul") and not use_matmul("xla")
    with pytest.raises(ValueError, match="conv impl must be one of"):
        use_matmul("fast")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["conv_chollet", "conv_2d"])
def test_the_cpu_training_step_of_the_conv_configs_holds_no_convolution(name):
    """What XLA compiles for a block of training steps (a lax.scan of train steps): with the matmul
    form there is no convolution left anywhere, forward or backward; with the backend's own
    ("xla") there is, which shows the check can fail."""
    from experiments.configs import load
    from fvae import compute
    from fvae.models import build_model
    from fvae.run.assemble import objective

    for impl, expected in (("matmul", False), ("xla", True)):
        config = load(name, {"model.conv_impl": impl})
        state = compute.create_train_state(build_model(config), jax.random.key(0), np.zeros((1, 784), np.uint8),
                                         1e-3, objective(config))
        images, indices = jnp.zeros((256, 784), jnp.uint8), jnp.arange(256).reshape(2, 128)
        hlo = compute.train_block.lower(state, images, indices, jax.random.key(1)).compile().as_text()
        assert ("convolution(" in hlo) == expected, (name, impl)
