"""Every experiment config gives the numbers recorded in tests/snapshots/configs.json (see
tests/snapshot.py): a refactor that changes any model, objective or likelihood shows here.
The numbers were recorded on the CPU; another backend rounds differently (an H200 with
float32 matmuls at "highest" precision: up to 6e-5 relative), so there the check is skipped."""

import json

import jax
import numpy as np
import pytest

from experiments import configs
from tests.snapshot import SNAPSHOT, measure

RECORDED = json.loads(SNAPSHOT.read_text())


def test_every_config_has_a_snapshot():
    missing = sorted(set(configs.names()) - set(RECORDED))
    assert not missing, (f"no snapshot of {', '.join(missing)}: record it with "
                         f"python -m tests.snapshot --write {' '.join(missing)}")
    stale = sorted(set(RECORDED) - set(configs.names()))
    assert not stale, f"snapshots of configs that no longer exist: {stale}; delete them from {SNAPSHOT}"


@pytest.mark.slow  # About 5 s per config, 20 s for a conv one.
@pytest.mark.parametrize("name", configs.names())
def test_config_gives_its_recorded_numbers(name):
    if jax.default_backend() != "cpu":
        pytest.skip(f"snapshots are CPU numbers; this backend is {jax.default_backend()}")
    got, want = measure(name), RECORDED[name]
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=f"{name}: {key}")
