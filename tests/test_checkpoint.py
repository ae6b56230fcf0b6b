import errno

import jax
import pytest

from fvae import compute
from fvae.models import VAE, Decoder, Encoder
from fvae.run.checkpoints import CheckpointError, Checkpoints
from tests.helpers import fake_images, new_state, params_equal


def trained_state():
    state = new_state()
    for _ in range(3):
        state, _ = compute.train_step(state, fake_images(32), jax.random.key(0))
    return state


def test_round_trip_restores_params_optimizer_step_and_meta(tmp_path):
    state = trained_state()
    checkpoints = Checkpoints(tmp_path, keep=2)
    meta = {"epoch": 4, "early_stopping": {"best_loss": 1.5, "bad_epochs": 2}, "history": [{"epoch": 1}]}
    checkpoints.save(4, state, meta, is_best=True)
    restored, restored_meta = checkpoints.restore_latest(new_state(seed=9))
    best, _ = checkpoints.restore_best(new_state(seed=9))
    checkpoints.close()
    assert restored_meta == meta
    assert int(restored.step) == 3
    assert params_equal(restored.params, state.params) and params_equal(best.params, state.params)
    assert params_equal(restored.opt_state, state.opt_state)


def test_keeps_the_newest_n_and_the_best(tmp_path):
    state = trained_state()
    checkpoints = Checkpoints(tmp_path, keep=2)
    for epoch in range(1, 5):
        checkpoints.save(epoch, state, {"epoch": epoch}, is_best=epoch == 2)
    assert checkpoints.latest.all_steps() == [3, 4]
    assert checkpoints.best.all_steps() == [2]
    _, meta = checkpoints.restore_best(state)
    checkpoints.close()
    assert meta == {"epoch": 2}
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "latest").iterdir() if p.name.isdigit()) == ["3", "4"]


def test_restoring_into_another_model_fails_clearly(tmp_path):
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(1, trained_state(), {"epoch": 1}, is_best=False)
    other = compute.create_train_state(VAE(Encoder((32,), 8), Decoder((64,), (784,))), jax.random.key(0),
                                     fake_images(1), 1e-3)
    with pytest.raises(CheckpointError, match="does not match this model configuration"):
        checkpoints.restore_latest(other)
    with pytest.raises(CheckpointError, match="No best checkpoint"):
        checkpoints.restore_best(other)
    checkpoints.close()


def two_epochs(tmp_path, best: int):
    """Checkpoints of epoch 1 (a fresh state) and epoch 2 (a trained one), `best` marked best."""
    first, second = new_state(seed=1), trained_state()
    checkpoints = Checkpoints(tmp_path, keep=2)
    for epoch, state in ((1, first), (2, second)):
        checkpoints.save(epoch, state, {"epoch": epoch}, is_best=epoch == best)
    return checkpoints, first, second


@pytest.mark.parametrize("digest", ["recorded", "missing"])
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_previous_one_restored(tmp_path, digest):
    from fvae.files import DIGEST_FILE
    from tests.test_runner import damage

    checkpoints, first, _ = two_epochs(tmp_path, best=1)
    damaged = tmp_path / "checkpoints" / "latest" / "2"
    damage(damaged)
    if digest == "missing":  # Killed between commit and digest: Orbax's own read finds the damage.
        (damaged / DIGEST_FILE).unlink()
    messages = []
    restored, meta = checkpoints.restore_latest(new_state(seed=9), messages.append)
    assert meta == {"epoch": 1} and params_equal(restored.params, first.params)
    assert checkpoints.latest_epoch() == 1
    checkpoints.close()
    assert len(messages) == 1 and f"{damaged} is damaged" in messages[0]
    assert "previous checkpoint (epoch 1)" in messages[0]
    (aside,) = (tmp_path / "checkpoints" / "damaged").iterdir()
    assert aside.name.startswith("latest-2-") and (aside / "state").is_dir()


def test_no_readable_latest_checkpoint_is_a_clear_error(tmp_path):
    from tests.test_runner import damage

    checkpoints = Checkpoints(tmp_path, keep=2)
    checkpoints.save(1, trained_state(), {"epoch": 1}, is_best=True)
    damage(tmp_path / "checkpoints" / "latest" / "1")
    with pytest.raises(CheckpointError, match="No readable latest checkpoint is left"):
        checkpoints.restore_latest(new_state(seed=9), lambda _: None)
    checkpoints.close()
    assert (tmp_path / "checkpoints" / "damaged").is_dir()


def test_a_damaged_best_checkpoint_is_set_aside_and_rebuilt_from_latest_or_named_lost(tmp_path, monkeypatch):
    import time

    from fvae.files import verify_digest
    from tests.test_runner import damage

    monkeypatch.setattr(time, "strftime", lambda *_: "20261130-220000")  # Both set-asides in one second.
    checkpoints, _, second = two_epochs(tmp_path, best=2)
    best = tmp_path / "checkpoints" / "best" / "2"
    damage(best)
    messages = []
    for _ in range(2):  # It failed the same way forever: now the second read finds a sound copy.
        restored, meta = checkpoints.restore_best(new_state(seed=9), messages.append)
        assert meta == {"epoch": 2} and params_equal(restored.params, second.params)
    assert len(messages) == 1 and f"{best} is damaged" in messages[0] and "again from latest/2" in messages[0]
    verify_digest(best)  # Written again, digest and all.
    (aside,) = (tmp_path / "checkpoints" / "damaged").iterdir()
    assert aside.name.startswith("best-2-")

    # Once latest/ has moved past the best epoch, the loss is named, with what is left.
    checkpoints.save(3, second, {"epoch": 3}, is_best=False)
    checkpoints.save(4, second, {"epoch": 4}, is_best=False)
    damage(best)
    with pytest.raises(CheckpointError, match="latest/ no longer holds epoch 2: the best weights are lost"):
        checkpoints.restore_best(new_state(seed=9), messages.append)
    checkpoints.close()
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "damaged").iterdir()) == [
        "best-2-20261130-220000", "best-2-20261130-220000-2"]


def test_a_full_disk_during_a_checkpoint_write_says_what_to_do_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    """A full disk surfaces through Orbax wrapped in another type: it is still named as a full disk,
    with what to do, and the earlier checkpoint stays the latest. Other failures keep their type."""
    import orbax.checkpoint as ocp

    state = trained_state()
    checkpoints = Checkpoints(tmp_path, keep=2)
    checkpoints.save(1, state, {"epoch": 1}, is_best=False)

    def failing_save(error: OSError):
        def save(self, *args, **kwargs):
            try:
                raise error
            except OSError as err:
                raise ValueError("writing the array failed") from err  # As TensorStore wraps it.
        return save

    monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save(OSError(errno.ENOSPC, "No space left", "x")))
    with pytest.raises(CheckpointError, match=r"no space left on the disk .* epoch 2 .* intact.*--resume"):
        checkpoints.save(2, state, {"epoch": 2}, is_best=False)
    monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save(OSError(errno.EIO, "I/O error", "x")))
    with pytest.raises(ValueError, match="writing the array failed"):
        checkpoints.save(2, state, {"epoch": 2}, is_best=False)
    monkeypatch.undo()
    _, meta = checkpoints.restore_latest(new_state(seed=9))
    checkpoints.close()
    assert meta == {"epoch": 1}
