"""Components chosen by name: the likelihoods, priors and architectures of fvae.

A registry maps a name to a class. Each class is a frozen dataclass whose fields are its
own config keys, with their defaults, in its config section (`likelihood`, `prior`,
`model`); `check(section)` lists what is wrong with their values, and
`from_config(section)` builds the instance. fvae.run.config assembles the schema from the
registries.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class Component:
    """Base of every registered class: name, config fields (the dataclass fields), checks."""

    name = ""  # The registry key, set by each class.

    @classmethod
    def config_fields(cls) -> dict[str, Any]:
        """{key: default} of this class's own keys in its config section."""
        return {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # subclasses are dataclasses

    @classmethod
    def check(cls, section) -> list[str]:
        """Problems with this class's values in `section` (the types are already checked)."""
        del section
        return []

    @classmethod
    def from_config(cls, section):
        """The instance that `section` (e.g. config.likelihood) describes."""
        return cls(**{key: section[key] for key in cls.config_fields()})


def registry(*classes: type[Component]) -> dict[str, type[Component]]:
    """{name: class}; refuses duplicate names."""
    table: dict[str, type[Component]] = {}
    for cls in classes:
        if cls.name in table:
            raise ValueError(f"two classes registered as {cls.name!r}: {table[cls.name].__name__}, {cls.__name__}")
        table[cls.name] = cls
    return table


def section_fields(table: dict[str, type[Component]]) -> dict[str, Any]:
    """The union of the registered classes' config fields: {key: default}. Classes may share
    a key only with the same default (one schema per section)."""
    fields: dict[str, Any] = {}
    for cls in table.values():
        for key, default in cls.config_fields().items():
            if key in fields and fields[key] != default:
                raise ValueError(f"config key {key!r} is declared with defaults {fields[key]!r} and {default!r} "
                                 f"(by {cls.__name__} and another class): give them one default")
            fields[key] = default
    return fields


def lookup(table: dict[str, type[Component]], name: str, key: str) -> type[Component]:
    """The class registered as `name`; a ValueError naming config `key` and the choices if none."""
    if name not in table:
        raise ValueError(f"{key} must be one of {tuple(table)}, got {name!r}")
    return table[name]
