"""Experiment configs, named by file: `load("gated_vae")` or `load("path/to/config.py")`.

Every script takes a config the same way, `--config NAME_OR_PATH`, and overrides as
`--config.KEY=VALUE` (ml_collections' config flags; see experiments/cli.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections

from fvae.errors import ConfigError
from fvae.run.config import check_key

CONFIG_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """The config files in experiments/configs, by name."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "__init__")


def path(name_or_path: str) -> Path:
    """The config file a name (experiments/configs/<name>.py) or a path to a .py file names."""
    given = Path(name_or_path)
    if given.suffix == ".py" and given.is_file():
        return given.resolve()
    if name_or_path in names():
        return CONFIG_DIR / f"{name_or_path}.py"
    raise ConfigError(f"no config {name_or_path!r}: give a name in experiments/configs ({', '.join(names())}) "
                      "or the path of a .py file with get_config()")


def load(name_or_path: str, overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """The config a name or path names, with flattened overrides ({"train.max_epochs": 3}) applied."""
    file = path(name_or_path)
    if file.parent == CONFIG_DIR:
        module = importlib.import_module(f"experiments.configs.{file.stem}")
    else:
        spec = importlib.util.spec_from_file_location(f"fvae_config_{file.stem}", file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    config = module.get_config()
    for key in overrides or {}:
        check_key(key)
    config.update_from_flattened_dict(dict(overrides or {}))
    return config
