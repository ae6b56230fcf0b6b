"""The one base class of the errors a user can fix: every CLI prints their message and exits 1.

Each says what is wrong and how to fix it. Programming errors (wrong types, misuse of the
library from code) stay ordinary exceptions with tracebacks.
"""


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
