"""Every error a user can fix, in one place: each CLI prints its message as one line and exits 1.

Each says what is wrong and how to fix it. Programming errors (wrong types, misuse of the
library from code) stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Iterator


class UserError(Exception):
    """Bad input, a misused run directory, missing data, a damaged checkpoint, a NaN loss...

    `library_output`: what the libraries (Orbax, TensorStore, TensorFlow) printed while the error
    arose, captured by `library_output_kept`; the scripts write it to a log file, not the terminal.
    """

    library_output: str = ""


class ConfigError(UserError, ValueError):
    """A config value, override, or command-line argument is invalid (also a ValueError)."""


class Interrupted(UserError):
    """SIGTERM/SIGINT stopped training cleanly after a saved epoch; the message says how to resume
    (command-line scripts exit with status 130)."""


class DataError(UserError):
    """The data could not be found, verified, prepared or read; the message says how to fix it."""


class DependencyError(UserError):
    """A Python package that fvae needs is missing or fails to import: not a data problem. The
    message names the package and the exception, and says how to install it."""

    @classmethod
    def from_import_error(cls, err: ImportError, doing: str) -> DependencyError:
        """The user's message for a package that is missing (ModuleNotFoundError) or broken."""
        package = (err.name or "").split(".")[0]
        state = "is not installed" if isinstance(err, ModuleNotFoundError) else "is installed but fails to import"
        return cls(f"{doing} needs the Python package {package or '(see below)'}, which {state}: "
                   f"{type(err).__name__}: {err}\nInstall it into this environment (e.g. .venv/bin/pip install "
                   f"{package or 'NAME'}), or run scripts/setup.sh again to install the tested versions. This is "
                   "not a problem with the data.")

    @staticmethod
    def import_error_behind(err: BaseException | None) -> ImportError | None:
        """The ImportError (a missing or broken package) behind `err`, following its causes: tfds
        imports some packages only while it prepares data, and may wrap the error."""
        seen = set()
        while err is not None and id(err) not in seen:
            if isinstance(err, ImportError):
                return err
            seen.add(id(err))
            err = err.__cause__ or err.__context__
        return None


class RunDirError(UserError):
    """The run directory cannot be used as asked; the message says why and what to do."""


class DamagedFileError(RunDirError):
    """A file fvae wrote (config.json, versions.json, metrics) cannot be read back: cut short,
    edited, or unreadable."""


class CheckpointError(UserError):
    """A checkpoint is missing or does not fit the model; the message says what to do."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint's files cannot be read although its structure fits the model."""


class NonFiniteError(UserError, FloatingPointError):
    """A loss became NaN or Inf; the last good checkpoint stays the latest."""


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an error behind it, is a full disk (ENOSPC), however it was wrapped
    (Orbax and TensorStore raise their own types)."""
    return any((isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e)
               for e in chain(err))


def chain(err: BaseException | None) -> list[BaseException]:
    """`err` and the errors behind it: its causes, or the errors it was raised while handling
    (unless raised `from None`)."""
    seen: list[BaseException] = []
    while err is not None and all(err is not e for e in seen):
        seen.append(err)
        err = err.__cause__ if err.__cause__ is not None else None if err.__suppress_context__ else err.__context__
    return seen


@contextlib.contextmanager
def library_output_kept(error: type[BaseException] = UserError) -> Iterator[None]:
    """Captures what is written to the stderr file descriptor while the block runs (by Python or
    by the C++ threads of TensorStore and TensorFlow). If the block raises `error`, the text is the
    noise of the failure that the error's own message replaces: it is attached to the error as
    `library_output` (the scripts log it to a file). Otherwise it is written back to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except error as err:
            sys.stderr.flush()
            captured.seek(0)
            err.library_output = getattr(err, "library_output", "") + captured.read().decode(errors="replace")  # type: ignore[attr-defined]
            raise
        else:
            sys.stderr.flush()
            captured.seek(0)
            os.write(saved, captured.read())
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
