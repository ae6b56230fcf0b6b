"""The one way fvae writes a file: atomically, so a crash leaves the old file or the new one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fvae.errors import DamagedFileError


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
    """The JSON value in `path`; a file that is cut short, edited or unreadable is one
    DamagedFileError naming it, not a traceback."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DamagedFileError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}): it was cut short or "
                               "edited; restore it from a copy.") from None
    except UnicodeDecodeError:
        raise DamagedFileError(f"{path} is not a text file fvae wrote; restore it from a copy.") from None
    except OSError as err:
        raise DamagedFileError(f"{path} cannot be read ({err.strerror}): check its permissions and the disk.") from None
