"""What every command-line script shares: absl's start-up, quiet library logs, and one way of
reporting what the user can fix (fvae.errors.UserError: "error: <message>", exit status 1;
a clean stop by SIGTERM/SIGINT: its message, exit status 130). Other exceptions are bugs and
keep their tracebacks."""

from __future__ import annotations

import os
import sys
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (used by tfds) info logs off.

from absl import app, logging  # noqa: E402

from fvae.errors import ConfigError, Interrupted, UserError  # noqa: E402


def run(main: Callable[[list[str]], None], flags_parser: Callable | None = None) -> None:
    """app.run(main) with the shared error handling."""
    def guarded(argv: list[str]) -> None:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
        try:
            main(argv)
        except Interrupted as err:
            print(err, file=sys.stderr)
            sys.exit(130)
        except UserError as err:
            sys.exit(f"error: {err}")

    app.run(guarded, **({"flags_parser": flags_parser} if flags_parser else {}))


def whole_numbers(values: list[str], flag: str, example: str, distinct: bool = False) -> list[int]:
    """A list flag's values as whole numbers >= 1 (each once if `distinct`), or a ConfigError
    naming the flag, what it takes (e.g. `example`) and what it got."""
    given = ",".join(values)
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        raise ConfigError(f"{flag} takes whole numbers, e.g. {example}; got {given}") from None
    if not numbers or min(numbers) < 1 or (distinct and len(set(numbers)) != len(numbers)):
        raise ConfigError(f"{flag} needs {'distinct ' if distinct else ''}values >= 1, e.g. {example}; got {given}")
    return numbers
