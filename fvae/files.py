"""The one way fvae writes a file or a folder (atomically, so a crash leaves the old one or the
new one, never half of one) and reads back a JSON file or a folder recorded with its SHA-256
digests."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fvae.errors import DamagedFileError


@contextlib.contextmanager
def _named(path: Path) -> Iterator[None]:
    """An OSError while writing `path` names it (a failed write or flush, e.g. a full disk, carries
    no file name of its own)."""
    try:
        yield
    except OSError as err:
        if err.filename:
            raise
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None


def write_bytes(path: str | Path, data: bytes) -> None:
    """Writes a file atomically: to `<path>.tmp`, flushed to disk, then renamed over `path`. A
    failed write (a full disk) removes the temporary file and names `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with _named(path), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def append_line(path: str | Path, line: str) -> None:
    """Appends one line (JSON lines' way of growing a file), flushed to disk before returning; a
    failed write names `path`."""
    with _named(Path(path)), open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_text(path: str | Path, text: str) -> None:
    """Writes a text file atomically (UTF-8)."""
    write_bytes(path, text.encode())


def write_json(path: str | Path, value: Any) -> None:
    """Writes JSON atomically (indented, sorted keys)."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_npy(path: str | Path, array: np.ndarray) -> None:
    """Writes an array atomically in NumPy's .npy format."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def new_folder(path: str | Path) -> Iterator[Path]:
    """Yields a temporary folder `.<name>.partial` beside `path` to write into; when the block
    ends without an error, renames it to `path` (which must not exist). A folder left by a
    killed writer is cleared first; a block that raises leaves `path` untouched."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    os.replace(partial, path)


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


DIGEST_FILE = "fvae_sha256.json"


def _file_digests(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != DIGEST_FILE}


def write_digest(directory: Path) -> None:
    """Records the SHA-256 of every file in `directory` (atomically, in DIGEST_FILE inside it)."""
    write_text(directory / DIGEST_FILE, json.dumps(_file_digests(directory), indent=0, sort_keys=True))


def verify_digest(directory: Path, error: type[Exception] = DamagedFileError) -> None:
    """Raises `error` naming the files that differ from the recorded digest. A folder without
    one (e.g. a checkpoint killed between its commit and its digest) is left to its reader."""
    path = directory / DIGEST_FILE
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise error(f"{directory} is damaged: its {DIGEST_FILE} cannot be read ({err}).") from err
    current = _file_digests(directory)
    bad = sorted(name for name, digest in recorded.items() if current.get(name) != digest)
    if bad:
        raise error(f"{directory} is damaged: {len(bad)} of its {len(recorded)} files differ from their recorded "
                    f"SHA-256 ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}).")
