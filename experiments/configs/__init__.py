"""Experiment configs by name: `load("default", ["train.max_epochs=3"])`."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import ml_collections

from fvae.config import check_key, split_overrides
from fvae.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """The config files in experiments/configs, by module name."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "__init__")


def load(name: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    """experiments/configs/<name>.py with `key.path=value` overrides (values as Python literals;
    one string may hold several, comma-separated: see fvae.config.split_overrides)."""
    if name not in names():
        raise ConfigError(f"no config {name!r} in experiments/configs (known: {', '.join(names())})")
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    for override in split_overrides(list(overrides)):
        key, sep, text = override.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {override!r}")
        check_key(key)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # A bare string such as likelihood.name=gaussian.
        config.update_from_flattened_dict({key: value})
    return config
