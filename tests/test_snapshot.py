"""Every experiment config gives the numbers recorded for this CPU kind in tests/snapshots/ (see
tests/snapshot.py): a refactor that changes any model, objective or likelihood shows here.
The numbers were recorded on the CPU; another backend rounds differently (an H200 with
float32 matmuls at "highest" precision: up to 6e-5 relative), so there the check is skipped."""

import json

import jax
import numpy as np
import pytest

from experiments import configs
from tests.snapshot import FILES, SNAPSHOT, measure

RECORDED = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.is_file() else {}
OTHER = {name: values for path in FILES.values() if path != SNAPSHOT and path.is_file()
         for name, values in json.loads(path.read_text()).items()}


def test_every_config_has_a_snapshot():
    missing = sorted(set(configs.names()) - set(RECORDED) - set(OTHER))
    assert not missing, (f"no snapshot of {', '.join(missing)}: record it with "
                         f"python -m tests.snapshot --write {' '.join(missing)}")
    stale = sorted((set(RECORDED) | set(OTHER)) - set(configs.names()))
    assert not stale, f"snapshots of configs that no longer exist: {stale}; delete them from {SNAPSHOT}"


@pytest.mark.slow  # About 5 s per config, 20 s for a conv one.
@pytest.mark.parametrize("name", configs.names())
def test_config_gives_its_recorded_numbers(name):
    if jax.default_backend() != "cpu":
        pytest.skip(f"snapshots are CPU numbers; this backend is {jax.default_backend()}")
    # Recorded on this CPU kind: to 1e-5; only on the other kind: to 1e-3 (the kinds differ by up to 1e-4).
    want, rtol = (RECORDED[name], 1e-5) if name in RECORDED else (OTHER[name], 1e-3)
    got = measure(name)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, err_msg=f"{name}: {key}")


def test_recording_a_changed_config_drops_it_from_the_other_kinds_file(tmp_path, monkeypatch):
    """One machine is enough: a config whose numbers changed here leaves the other kind's file
    (checked there to 1e-3 against this file until recorded there); an unchanged one stays."""
    import tests.snapshot as snapshot

    here, there = tmp_path / "here.json", tmp_path / "there.json"
    here.write_text(json.dumps({"a": {"x": 1.0}, "b": {"x": 2.0}}))
    there.write_text(json.dumps({"a": {"x": 1.00001}, "b": {"x": 2.00001}, "c": {"x": 3.0}}))
    monkeypatch.setattr(snapshot, "SNAPSHOT", here)
    monkeypatch.setattr(snapshot, "FILES", {"this": here, "other": there})
    monkeypatch.setattr(snapshot, "measure", lambda name: {"x": 1.5 if name == "a" else 2.0})
    monkeypatch.setattr(configs, "names", lambda: ["a", "b", "c"])
    snapshot.main(["snapshot", "--write", "a", "b"])
    assert json.loads(here.read_text()) == {"a": {"x": 1.5}, "b": {"x": 2.0}}
    assert json.loads(there.read_text()) == {"b": {"x": 2.00001}, "c": {"x": 3.0}}
