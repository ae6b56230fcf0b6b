import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fvae import compute
from fvae.compute import EpochOptions, steps
from fvae.data import Dataset
from fvae.models.losses import Objective
from fvae.run import stopping
from tests.helpers import fake_images, new_state, params_equal


def test_train_step_lowers_the_loss_on_a_fixed_batch():
    state, batch, key = new_state(), fake_images(64), jax.random.key(1)
    losses = []
    for _ in range(60):
        state, metrics = compute.train_step(state, batch, key)
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:10])
    assert int(state.step) == 60


def test_train_step_accepts_uint8_and_unit_floats_alike():
    batch = fake_images(16)
    _, from_uint8 = compute.train_step(new_state(), batch, jax.random.key(1))
    _, from_float = compute.train_step(new_state(), batch.astype(np.float32) / 255, jax.random.key(1))
    np.testing.assert_allclose(from_uint8["loss"], from_float["loss"], rtol=1e-6)


def test_same_seed_gives_bit_identical_parameters():
    images = jnp.asarray(fake_images(512))

    def run(seed):
        state = new_state(seed)
        for epoch in range(2):
            state, _ = compute.train_epoch(state, images, jax.random.key(7), jax.random.key(8), epoch, EpochOptions(64))
        return state.params

    assert params_equal(run(0), run(0))
    assert not params_equal(run(0), run(1))


def test_step_keys_differ_so_noise_differs_between_steps():
    # Same batch, same parameters, different step counter -> different sampled loss.
    state = new_state()
    batch = fake_images(32)
    step = jax.jit(steps.train_step_unjitted)
    _, m0 = step(state, batch, jax.random.key(3))
    _, m1 = step(state.replace(step=state.step + 1), batch, jax.random.key(3))
    assert float(m0["reconstruction"]) != float(m1["reconstruction"])


def test_a_step_whose_gradient_norm_is_extreme_is_skipped_and_others_are_not():
    """skip_grad_norm (VDVAE's guard): above it, params and Adam's moments stay as they were
    and the step still counts; below it, the step is the unguarded one, bit for bit."""
    batch, key = fake_images(32), jax.random.key(3)
    plain, plain_metrics = compute.train_step(new_state(), batch, key)
    guarded = new_state().replace(skip_grad_norm=1e9)
    passed, metrics = compute.train_step(guarded, batch, key)
    assert params_equal(passed.params, plain.params) and params_equal(passed.opt_state, plain.opt_state)
    assert float(metrics["skipped"]) == 0.0 and float(metrics["loss"]) == float(plain_metrics["loss"])
    norm = float(metrics["grad_norm"])
    grads = jax.grad(lambda p: new_state().objective.loss(new_state().apply_fn(
        {"params": p}, jnp.asarray(batch, jnp.float32) / 255, jax.random.fold_in(key, 0), None, 1, training=True),
        0)["loss"])(new_state().params)
    np.testing.assert_allclose(norm, np.sqrt(sum(float(jnp.sum(g ** 2)) for g in jax.tree.leaves(grads))), rtol=1e-4)
    start = new_state()
    skipped, metrics = compute.train_step(start.replace(skip_grad_norm=0.5 * norm), batch, key)
    assert float(metrics["skipped"]) == 1.0 and int(skipped.step) == 1
    assert params_equal(skipped.params, new_state().params) and params_equal(skipped.opt_state, new_state().opt_state)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_every_optimizer_of_the_config_trains(name):
    """train.optimizer by name, with its hyperparameters and a schedule: a few steps on a fixed
    batch lower the loss, and the state holds that optimizer's moments."""
    from fvae.run import assemble
    from fvae.run.config import defaults, validate

    config = defaults()
    config.model.encoder_hidden, config.model.decoder_hidden, config.model.latents = (64,), (64,), 8
    config.train.optimizer, config.train.weight_decay = name, 1e-4
    config.train.learning_rate = 2e-4 if name == "sgd" else 1e-3  # The loss sums 784 pixels: large gradients
    config.train.lr_schedule, config.train.lr_warmup_epochs, config.train.max_epochs = "warmup_cosine", 0.001, 10
    validate(config)
    state = assemble.initial_state(config)
    batch, key, losses = fake_images(64), jax.random.key(1), []
    for _ in range(40):
        state, metrics = compute.train_step(state, batch, key)
        losses.append(float(metrics["loss"]))
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5]) - 10.0  # nats per image
    kinds = {type(s).__name__ for s in jax.tree.leaves(state.opt_state, is_leaf=lambda s: hasattr(s, "_fields"))}
    assert ("ScaleByAdamState" in kinds) == (name != "sgd"), kinds


def test_clipping_bounds_the_update_by_the_gradients_global_norm():
    """train.clip_grad_norm: with plain SGD at rate 1 an update is the (clipped) gradient, so
    no step moves the parameters by more than the clip; unclipped, the same step does."""
    from fvae.run import assemble
    from fvae.run.config import defaults

    config = defaults()
    config.model.encoder_hidden, config.model.decoder_hidden, config.model.latents = (64,), (64,), 8
    config.train.optimizer, config.train.momentum, config.train.learning_rate = "sgd", 0.0, 1.0
    batch, key = fake_images(64), jax.random.key(1)

    def moved(clip):
        config.train.clip_grad_norm = clip
        state = assemble.initial_state(config)
        after, metrics = compute.train_step(state.replace(skip_grad_norm=1e12), batch, key)
        delta = jax.tree.map(lambda a, b: a - b, after.params, assemble.initial_state(config).params)
        return float(np.sqrt(sum(float(jnp.sum(d ** 2)) for d in jax.tree.leaves(delta)))), float(metrics["grad_norm"])

    free, norm = moved(0.0)
    clipped, _ = moved(0.1 * norm)
    np.testing.assert_allclose(free, norm, rtol=1e-4)  # Unclipped: the whole gradient.
    np.testing.assert_allclose(clipped, 0.1 * norm, rtol=1e-4)


def test_epoch_batches_are_a_deterministic_shuffle():
    key = jax.random.key(0)
    idx = np.asarray(compute.epoch_batches(key, 3, 1000, 64))
    assert idx.shape == (15, 64)
    assert len(np.unique(idx)) == idx.size  # No image twice in an epoch.
    np.testing.assert_array_equal(idx, compute.epoch_batches(key, 3, 1000, 64))
    assert not np.array_equal(idx, compute.epoch_batches(key, 4, 1000, 64))


def test_on_device_epoch_matches_the_per_step_host_loop():
    images = fake_images(640)
    key, shuffle_key = jax.random.key(1), jax.random.key(2)
    fast, fast_metrics = compute.train_epoch(new_state(), jnp.asarray(images), key, shuffle_key, 1, EpochOptions(64))
    slow, slow_metrics = compute.train_epoch_stepwise(new_state(), images, key, shuffle_key, 1, EpochOptions(64))
    assert int(fast.step) == int(slow.step) == 10
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), fast.params, slow.params)
    np.testing.assert_allclose(fast_metrics["loss"], slow_metrics["loss"], rtol=1e-5)


def test_blocks_of_steps_match_one_call_per_epoch():
    images = jnp.asarray(fake_images(640))
    key, shuffle_key = jax.random.key(1), jax.random.key(2)
    calls = []
    whole, _ = compute.train_epoch(new_state(), images, key, shuffle_key, 1, EpochOptions(64))
    blocks, _ = compute.train_epoch(new_state(), images, key, shuffle_key, 1,
                                    EpochOptions(64, steps_per_call=3, on_progress=calls.append))
    assert calls == [3, 3, 3, 1]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), whole.params, blocks.params)


def test_train_epoch_rejects_a_batch_larger_than_the_data():
    with pytest.raises(ValueError, match="batch_size"):
        compute.train_epoch(new_state(), jnp.asarray(fake_images(10)), jax.random.key(0), jax.random.key(1), 1,
                            EpochOptions(64))


def test_early_stopping_on_a_synthetic_loss_sequence():
    stopper = stopping.EarlyStopping(patience=3, min_delta=0.5)
    losses = [10.0, 9.0, 8.8, 8.7, 7.0, 6.9, 6.8, 6.7, 1.0]
    stopped_at = None
    for epoch, loss in enumerate(losses, start=1):
        stopper.update(epoch, loss)
        if stopper.should_stop:
            stopped_at = epoch
            break
    # 9.0 improves on 10.0; 8.8 and 8.7 are within min_delta; 7.0 improves; then 3 bad epochs.
    assert (stopped_at, stopper.best_epoch, stopper.best_loss) == (8, 5, 7.0)
    restored = stopping.EarlyStopping.from_dict(stopper.to_dict())
    assert restored == stopper


def test_replaying_early_stopping_matches_a_brute_force_reading_of_the_curve():
    rng = np.random.default_rng(0)
    losses = list(300 - np.cumsum(rng.exponential(1.0, 200)) + rng.normal(0, 3.0, 200))
    for patience in (1, 5, 20, 500):
        stopper, trained = stopping.replay_early_stopping(losses, patience)
        # Brute force: the first epoch that ends a run of `patience` epochs none of which beats
        # the minimum of all epochs before that run.
        expected = next((e for e in range(patience + 1, len(losses) + 1)
                         if min(losses[e - patience:e]) >= min(losses[:e - patience])), len(losses))
        best = int(np.argmin(losses[:expected])) + 1
        assert (trained, stopper.best_epoch, stopper.best_loss) == (expected, best, losses[best - 1])
    assert stopping.replay_early_stopping(losses, 500)[1] == len(losses)  # Never stops: trains them all.


def family_state(objective=Objective(), seed=0, **overrides):
    """A small VAE of any family member: overrides are config keys like likelihood__name."""
    from fvae.models import build_model
    from fvae.run.config import defaults, validate

    config = defaults()
    config.model.encoder_hidden = config.model.decoder_hidden = (32,)
    config.model.latents, config.prior.components, config.model.conv_channels = 4, 5, (4, 8)
    for key, value in overrides.items():
        section, name = key.split("__")
        config[section][name] = value
    validate(config)
    return compute.create_train_state(build_model(config), jax.random.key(seed), fake_images(1), 1e-3, objective)


# Every likelihood (and the conditional conv VAE) through real train steps; every architecture,
# prior and objective is covered by the registry contract in tests/test_architectures.py.
FAMILY = {
    "conditional_conv": (Objective(), {"model__conditional": True, "model__architecture": "conv"}),
    "binarized": (Objective(), {"likelihood__name": "binarized_bernoulli"}),
    "continuous_bernoulli": (Objective(), {"likelihood__name": "continuous_bernoulli"}),
    "discretized_logistic": (Objective(), {"likelihood__name": "discretized_logistic", "likelihood__mixtures": 2}),
    "gaussian_global": (Objective(), {"likelihood__name": "gaussian", "likelihood__variance": "global"}),
    "hierarchical_vamp_iwae": (Objective(iwae_samples=3), {"model__architecture": "hierarchical",
                                                                  "model__top_latents": 3, "prior__name": "vamp"}),
}


@pytest.mark.parametrize("member", [pytest.param(m, marks=pytest.mark.slow) if "conv" in m or "hierarchical" in m else m
                                    for m in sorted(FAMILY)])
def test_every_objective_and_likelihood_trains_with_finite_gradients(member):
    objective, overrides = FAMILY[member]
    state = family_state(objective, **overrides)
    images = fake_images(32)
    batch = Dataset(images, np.arange(32) % 10) if overrides.get("model__conditional") else images
    before = jax.tree.map(jnp.copy, state.params)  # train_step donates the state's buffers.
    losses = []
    for _ in range(3):
        state, metrics = compute.train_step(state, batch, jax.random.key(1))
        losses.append(float(metrics["loss"]))
        # Adam's first moment is 0.9 * the last one + 0.1 * this step's gradient (zero before the
        # first step): finite after every step exactly when every step's gradient was finite.
        first_moment = state.opt_state[0].mu
        assert all(np.isfinite(m).all() for m in jax.tree.leaves(first_moment)), member
    assert np.isfinite(losses).all()
    assert not params_equal(before, state.params)


def test_dynamic_binarization_resamples_pixels_every_step():
    state = family_state(likelihood__name="binarized_bernoulli")
    batch = np.full((8, 784), 128, np.uint8)  # Grey 0.5: every binarization differs.
    x = batch.astype(np.float32) / 255
    outs = [state.apply_fn({"params": state.params}, x, jax.random.key(k), training=True) for k in (0, 1)]
    assert float(jnp.abs(outs[0].log_likelihood - outs[1].log_likelihood).max()) > 0
    # Without training=True the same grey pixels are scored as given (evaluation data are pre-binarized).
    plain = state.apply_fn({"params": state.params}, x, jax.random.key(0))
    assert float(jnp.abs(plain.log_likelihood - outs[0].log_likelihood).max()) > 0


def poisoned_images(n: int, bad_row: int) -> np.ndarray:
    """[0, 1] float images with one NaN image: the step whose batch holds it has a NaN loss."""
    images = fake_images(n).astype(np.float32) / 255
    images[bad_row, 0] = np.nan
    return images


def step_holding(row: int, shuffle_key, epoch: int, n: int, batch_size: int) -> int:
    """The 1-based step of an epoch whose batch holds image `row` (independent of train_epoch)."""
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n))
    return int(np.flatnonzero(perm[: n // batch_size * batch_size] == row)[0]) // batch_size + 1


@pytest.mark.parametrize("path", ["blocks of 3", "whole epoch", "per step"])
def test_a_nonfinite_loss_stops_the_epoch_after_its_block_or_step(path):
    n, batch_size, shuffle_key = 640, 32, jax.random.key(2)
    bad_row = int(np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, 0), n))[7 * batch_size])
    bad_step = step_holding(bad_row, shuffle_key, 0, n, batch_size)
    assert bad_step == 8  # Step 8 of 20: in block 3 of blocks of 3 steps (steps 7-9).
    images, key = poisoned_images(n, bad_row), jax.random.key(1)
    if path == "per step":
        state, metrics = compute.train_epoch_stepwise(new_state(), images, key, shuffle_key, 0,
                                                      EpochOptions(batch_size))
        steps_run = bad_step
    else:
        block = 3 if path == "blocks of 3" else 0
        state, metrics = compute.train_epoch(new_state(), jnp.asarray(images), key, shuffle_key, 0,
                                               EpochOptions(batch_size, block))
        steps_run = 9 if block else n // batch_size
    assert compute.first_nonfinite_step(metrics) == bad_step
    assert int(state.step) == steps_run


def test_finite_epochs_run_every_step_whatever_the_path():
    images, key, shuffle_key = jnp.asarray(fake_images(640)), jax.random.key(1), jax.random.key(2)
    state, metrics = compute.train_epoch(new_state(), images, key, shuffle_key, 0, EpochOptions(32, 3))
    assert int(state.step) == 20 and compute.first_nonfinite_step(metrics) == -1


def test_states_of_one_config_share_compiled_steps_and_others_do_not():
    # The jitted steps key their cache on the state's static fields (apply_fn, tx, rate, objective):
    # equal models and rates must give equal ones, or every run in a process compiles afresh.
    same = [jax.tree_util.tree_structure(new_state(seed)) for seed in (0, 1)]
    assert same[0] == same[1]
    assert jax.tree_util.tree_structure(new_state(0, lr=2e-3)) != same[0]
    assert jax.tree_util.tree_structure(family_state(likelihood__name="continuous_bernoulli")) != same[0]
    batch = fake_images(16)
    compute.train_step(new_state(0), batch, jax.random.key(0))
    compiled = compute.train_step._cache_size()
    compute.train_step(new_state(1), batch, jax.random.key(0))
    assert compute.train_step._cache_size() == compiled
