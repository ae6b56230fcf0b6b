"""What made a run: the Python, package and CPU versions recorded in its versions.json, and
which of them differ now (a resumed run under other versions may not be bit-identical)."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from fvae.errors import DamagedFileError
from fvae.files import read_json

VERSIONS_FILE = "versions.json"
PACKAGES = ("fvae", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a run's results depend on."""
    found = {"python": platform.python_version(), "cpu": cpu_model()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    """The CPU model with its family/model/stepping and widest vector extensions (XLA:CPU compiles
    for what it finds, so bit-identical results need the same CPU type and jax build)."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    vector = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2") if f in fields.get("flags", "").split()]
    return (f"{fields.get('model name', platform.machine())} (family {fields.get('cpu family', '?')}, model "
            f"{fields.get('model', '?')}, stepping {fields.get('stepping', '?')}; {' '.join(vector) or 'no avx2'})")


def version_changes(workdir: str | Path) -> dict[str, tuple]:
    """{name: (recorded, now)} for the versions (and CPU) that differ from the run's versions.json:
    a resumed run under other versions may not be bit-identical."""
    path = Path(workdir) / VERSIONS_FILE
    try:
        recorded = read_json(path) if path.is_file() else {}
    except DamagedFileError as err:
        raise DamagedFileError(f"{err} It only records the versions that made the run: or delete it to "
                               "resume without comparing them.") from None
    return {k: (recorded[k], v) for k, v in versions().items() if k in recorded and recorded[k] != v}
