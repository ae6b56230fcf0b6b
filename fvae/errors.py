"""Every error a user can fix, in one place: each CLI prints its message as one line and exits 1.

Each says what is wrong and how to fix it. Programming errors (wrong types, misuse of the
library from code) stay ordinary exceptions with tracebacks.
"""

from __future__ import annotations

import errno


class UserError(Exception):
    """Bad input, a misused run directory, missing data, a damaged checkpoint, a NaN loss..."""


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
    seen = set()
    while err is not None and id(err) not in seen:
        if (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "No space left on device" in str(err):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False
