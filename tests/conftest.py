"""Shared fixtures: the original Fashion-MNIST files and one tfds preparation per session."""

import collections
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FVAE_MANUAL_DIR") or REPO.parent / "shared" / "fashion-mnist")


def require(condition: bool, reason: str) -> None:
    """Skips locally when real data is absent, but fails under CI, where it must run."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def original_files() -> Path:
    """The folder with the four byte-exact original .gz files."""
    require((SHARED_DATA / "train-images-idx3-ubyte.gz").is_file(), f"no Fashion-MNIST files in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prepared_data_dir(original_files, tmp_path_factory) -> Path:
    """A tfds data dir with fashion_mnist prepared from the original files (once per session)."""
    from fvae import data

    return data.prepare(tmp_path_factory.mktemp("tfds"), original_files)


# Figures of tests/test_reliability.py, printed in the summary of every pytest run.
RELIABILITY = collections.Counter()


def pytest_terminal_summary(terminalreporter):
    if RELIABILITY:
        r = RELIABILITY
        terminalreporter.write_line(
            f"reliability: kills survived: {r['kills_survived']}/{r['kills']} "
            f"({r['kills_during_checkpoint_writes']} during checkpoint writes), "
            f"bad inputs rejected cleanly: {r['bad_inputs_rejected']}/{r['bad_inputs']}, runs lost: {r['runs_lost']}")
