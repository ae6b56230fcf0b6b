"""The one way fvae writes a file: atomically, so a crash leaves the old file or the new one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_bytes(path: str | Path, data: bytes) -> None:
    """Writes a file atomically: to `<path>.tmp`, flushed to disk, then renamed over `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    """Writes a text file atomically (UTF-8)."""
    write_bytes(path, text.encode())


def write_json(path: str | Path, value: Any) -> None:
    """Writes JSON atomically (indented, sorted keys)."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON value in `path`."""
    with open(path) as f:
        return json.load(f)
