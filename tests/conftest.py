"""Shared fixtures: the original Fashion-MNIST files and one tfds preparation per session."""

import collections
import os
from pathlib import Path

import pytest

# Math checks compare float32 jax against float64 numpy: on GPUs jax's default float32 matmul
# runs in TF32 (about 1e-3 relative), which such a check rightly fails. The CPU computes
# float32 either way. Set before jax is imported; subprocesses inherit it.
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FVAE_MANUAL_DIR") or REPO.parent / "shared" / "fashion-mnist")


def require(condition: bool, reason: str) -> None:
    """Skips locally when real data is absent, but fails under CI, where it must run."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)


def pytest_configure(config):
    """The fast tier (`-m "not slow"`) compiles a few hundred small programs that run for
    milliseconds each: there XLA's optimization passes cost more time than they save (measured on
    2 AMD cores: 23% of the tier's time), so it asks jax for less optimization. Whatever else runs
    (the whole suite, CI, the config snapshots recorded from optimized runs) compiles as users do.
    Set before jax is imported (collection imports it later)."""
    if (config.option.markexpr or "").replace(" ", "") == "notslow":
        os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


@pytest.fixture(scope="session")
def original_files() -> Path:
    """The folder with the four byte-exact original .gz files."""
    require((SHARED_DATA / "train-images-idx3-ubyte.gz").is_file(), f"no Fashion-MNIST files in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prepared_data_dir(original_files, tmp_path_factory) -> Path:
    """A tfds data dir with fashion_mnist prepared from the original files (once per session)."""
    from fvae.data import sources

    return sources.prepare(tmp_path_factory.mktemp("tfds"), original_files)


@pytest.fixture(scope="session", autouse=True)
def mock_data_dir_is_never_created():
    """A test that loads data outside the mock (a forgotten `mock_data_dir` fixture, a
    subprocess not run through tests.mock_cli) makes fvae prepare the real Fashion-MNIST
    under the mock's name in the working directory: fail the session when that happens."""
    from tests.helpers import MOCK_DATA_DIR

    existed = MOCK_DATA_DIR.exists()
    yield
    assert existed or not MOCK_DATA_DIR.exists(), (
        f"a test created {MOCK_DATA_DIR.resolve()}: it loaded data outside the mock (use the mock_data_dir fixture, "
        "or run command lines through tests.mock_cli); delete the folder")


@pytest.fixture
def mock_data_dir():
    """While the test runs, Fashion-MNIST is the small mock of tests.helpers (served through tfds'
    mock_data; nothing is read from disk). Returns the data_dir for configs (never created)."""
    from tests.helpers import MOCK_DATA_DIR, mock_fashion_mnist

    with mock_fashion_mnist():
        yield MOCK_DATA_DIR


# Figures of tests/test_reliability.py, printed in the summary of every pytest run. Outcomes are
# counted from the test reports (passed and failed alike); the kill test records how many SIGKILLs
# it sent and how many of them landed during a checkpoint write as properties of its report.
# Reports reach pytest_runtest_logreport in this process, also from pytest-xdist's workers.
RELIABILITY = collections.Counter()
RELIABILITY_FAILURES = []
COUNTED_PROPERTIES = ("sigkills", "sigkills_during_checkpoint_writes", "runs_lost")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    marker = item.get_closest_marker("reliability")
    if marker is not None:
        report.user_properties.append(("reliability", marker.args[0]))


def pytest_runtest_logreport(report):
    properties = report.user_properties
    kind = dict(properties).get("reliability")
    if kind is None or report.when not in ("setup", "call") or report.skipped:
        return
    if report.when == "call" or report.failed:  # A failed fixture counts as a failed test.
        RELIABILITY[kind, "tests"] += 1
        RELIABILITY[kind, "passed"] += report.passed
        if report.failed:
            RELIABILITY_FAILURES.append(report.nodeid.split("::")[-1])
    if report.when == "call":
        for name, value in properties:
            if name in COUNTED_PROPERTIES:
                RELIABILITY[name] += value


def pytest_terminal_summary(terminalreporter):
    r = RELIABILITY
    parts = []
    if r["kills", "tests"]:
        parts.append(f"kill-and-resume tests passed {r['kills', 'passed']}/{r['kills', 'tests']} "
                     f"({r['sigkills']} SIGKILLs sent, {r['sigkills_during_checkpoint_writes']} during checkpoint "
                     f"writes; runs that ended differently: {r['runs_lost']})")
    if r["bad input", "tests"]:
        parts.append(f"bad-input tests passed {r['bad input', 'passed']}/{r['bad input', 'tests']}")
    if not parts:
        return
    failed = len(RELIABILITY_FAILURES)
    parts.append(f"FAILED: {failed} ({', '.join(RELIABILITY_FAILURES)})" if failed else "failed: 0")
    terminalreporter.write_line("reliability: " + "; ".join(parts), red=bool(failed), green=not failed)
