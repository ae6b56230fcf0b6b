"""scripts/setup.sh chooses the lock file by the interpreter and refuses, with one clear message
and before installing anything, a Python it does not support or a venv made by another Python.
Fake interpreters (shell scripts that print a version) stand in for real ones."""

import subprocess
from pathlib import Path

from tests.conftest import REPO


def fake_python(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def setup(tmp_path: Path, python: Path, venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts" / "setup.sh")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHON": str(python), "VENV": str(venv)})


def test_an_unsupported_python_is_refused_with_the_supported_ones_named(tmp_path):
    result = setup(tmp_path, fake_python(tmp_path / "python3.10", "3.10"), tmp_path / "venv")
    assert result.returncode == 2
    assert "Python 3.10, which fvae does not support" in result.stderr
    assert "Python 3.11" in result.stderr and "3.12 or 3.13" in result.stderr and "PYTHON=python3.13" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_a_venv_of_another_python_is_refused_and_left_alone(tmp_path):
    venv_python = fake_python(tmp_path / "venv" / "bin" / "python", "3.11")
    result = setup(tmp_path, fake_python(tmp_path / "python3.13", "3.13"), tmp_path / "venv")
    assert result.returncode == 2 and "holds Python 3.11, not 3.13" in result.stderr
    assert "VENV=.venv-py313" in result.stderr and venv_python.read_text() == "#!/bin/sh\necho 3.11\n"


def test_an_interpreter_that_does_not_run_is_named(tmp_path):
    result = setup(tmp_path, tmp_path / "no-such-python", tmp_path / "venv")
    assert result.returncode == 2 and "cannot run Python as" in result.stderr
