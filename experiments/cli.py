"""What every command-line script shares: absl's start-up, quiet library logs, one way to name
a config and override its values, and one way of reporting what the user can fix: a bad flag
or config value, a fvae.errors.UserError (a damaged run file, a misused run directory, missing
data...) and an OSError (a missing or unreadable path, a full disk) are each one line
"error: <what> ... <what to do>" and exit status 1; a clean stop by SIGTERM/SIGINT prints its
message and exits 130. An error that a library raised or printed pages about (Orbax, TensorStore,
TensorFlow, Flax) keeps those pages in a log file that the line names: in the run's `logs/` for
a run that was training (the error's `log_dir`), else in the temporary folder's `fvae-errors/`
(a script that only reads a run, or refuses one, never writes into it).
`--debug` (or FVAE_DEBUG=1 in the environment) shows the traceback instead. Other exceptions are
bugs and keep their tracebacks.

A config is named by `--config NAME_OR_PATH` (a file in experiments/configs, or any path) and
its values overridden by `--config.KEY=VALUE`, in every script that takes one.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (used by tfds) info logs off.
# TensorFlow only reads the data files (tfds); its oneDNN notice is the one start-up line that the
# log level does not silence (with the absl warning it triggers), so oneDNN is left off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from experiments import configs  # noqa: E402
from fvae import files  # noqa: E402
from fvae.errors import ConfigError, Interrupted, UserError, chain, is_disk_full  # noqa: E402
from fvae.run.config import check_key  # noqa: E402

FLAGS = flags.FLAGS
DEBUG_ENV = "FVAE_DEBUG"
flags.DEFINE_bool("debug", False, f"Show the traceback of an error instead of one line (or set {DEBUG_ENV}=1).")


def define_config(default: str, help_text: str = "Config: a name in experiments/configs or a .py path.") -> None:
    """Defines --config (a name or a path) with its --config.KEY=VALUE overrides. The config flag
    reads the overrides on the command line as soon as it is defined, so their keys are checked
    first: a typo is one error line, not a traceback."""
    for arg in sys.argv[1:]:
        if arg.startswith("--config."):
            try:
                check_key(arg[len("--config."):].split("=", 1)[0])
            except ConfigError as err:
                sys.exit(f"error: {err}")
    config_flags.DEFINE_config_file("config", str(configs.path(default)), help_text, lock_config=True)


def define_sampler_config() -> None:
    """Defines --sampler_config.NAME.SETTING=VALUE, the latent samplers' settings
    (fvae.run.generation.sampler_settings), checking the names given first: an unknown sampler
    or setting is one error line, not a traceback."""
    from fvae.run.generation import sampler_settings

    known = sampler_settings()
    for arg in sys.argv[1:]:
        if arg.startswith("--sampler_config."):
            name, _, setting = arg[len("--sampler_config."):].split("=", 1)[0].partition(".")
            if name not in known or setting not in known[name]:
                choices = (f"{name} has {', '.join(sorted(known[name]))}" if name in known else
                           f"the samplers are {', '.join(sorted(known))}")
                sys.exit(f"error: --sampler_config.{name}.{setting} is not a sampler setting ({choices}): "
                         "write --sampler_config.SAMPLER.SETTING=VALUE")
    config_flags.DEFINE_config_dict("sampler_config", known, "Latent samplers' settings, e.g. "
                                    "--sampler_config.two_stage_vae.epochs=200 (docs/models.md).", lock_config=True)


def config_name() -> str:
    """The name of the --config file (its stem)."""
    return Path(config_flags.get_config_filename(FLAGS["config"])).stem


def config_overrides() -> dict[str, Any]:
    """The --config.KEY=VALUE values given, flattened, as the config flag parsed them."""
    return dict(config_flags.get_override_values(FLAGS["config"]))


def _config_args(argv: list[str]) -> list[str]:
    """argv with --config NAME made a path, the --config flag put before its overrides (absl
    needs it first), and every --config.KEY checked against the schema."""
    rest, named, overrides = [argv[0]], [], []
    args = iter(argv[1:])
    for arg in args:
        if arg == "--config":
            arg = f"--config={next(args, '')}"
        if arg.startswith("--config="):
            named.append(f"--config={configs.path(arg.split('=', 1)[1])}")
        elif arg.startswith("--config."):
            check_key(arg[len("--config."):].split("=", 1)[0])
            overrides.append(arg)
        else:
            rest.append(arg)
    return [rest[0], *named, *overrides, *rest[1:]]


HELP_FLAGS = {"--help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml"}


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing after _config_args: a bad config name or key, and a flag or config
    value of the wrong type or out of its range, is one error line."""
    try:
        return FLAGS(_config_args(argv))
    except SystemExit:  # absl prints --help and exits 1: asking for help is no error.
        if HELP_FLAGS & set(argv[1:]):
            sys.exit(0)
        raise
    except ConfigError as err:
        sys.exit(f"error: {err}")
    except flags.Error as err:
        sys.exit(f"error: {err} ... see --help for what each flag takes")


def describe_os_error(err: OSError) -> str:
    """One line for a failed file operation: what failed on which path, and what to do."""
    path = f" {err.filename}" if err.filename else ""
    if is_disk_full(err):
        return (f"no space left on the disk while writing{path}: what was written before is intact; free some "
                "space, then run the same command again (train: with --resume)")
    what = err.strerror or str(err)
    return f"{what}:{path} ... check that the path is right and can be read and written, then run again"


def check_output_file(path: str, flag: str) -> None:
    """Before any work: `path` (a file the script writes at the end) can be written, so hours of
    results are never lost to a wrong --out. Creates its folder."""
    if not path:
        return
    if Path(path).is_dir():
        raise ConfigError(f"{flag}={path} is a directory; name a file in it, e.g. {flag}={Path(path) / 'out.json'}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not os.access(Path(path).parent, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{flag}={path} cannot be written (no permission in {Path(path).parent}): choose a "
                          "folder you can write to")


def _debugging() -> bool:
    return FLAGS.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _library_log(err: BaseException) -> str:
    """Writes what the libraries behind `err` said (their exceptions' tracebacks and the output
    captured while it arose) to a log file and returns ` (...: PATH)` for the error line; "" when
    `err` is fvae's own. The file goes in `err.log_dir`/logs when the trainer set it (an error while
    its run trained), else in the temporary folder: a reader never writes into the run it reads."""
    behind = chain(err)[1:]
    captured = "".join(getattr(e, "library_output", "") for e in chain(err))
    if not captured and all(isinstance(e, UserError) for e in behind):
        return ""
    text = "".join(traceback.format_exception(err)) + (f"\nWhat the libraries printed:\n{captured}" if captured else "")
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    log_dir = getattr(err, "log_dir", None)
    folders = ([Path(log_dir) / "logs"] if log_dir else []) + [Path(tempfile.gettempdir()) / "fvae-errors"]
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            files.write_text(folder / name, text)
            return f" (the libraries' own messages are in {folder / name})"
        except OSError:
            continue
    return " (the libraries' own messages could not be saved; add --debug to see them)"


def run(main: Callable[[list[str]], None]) -> None:
    """app.run(main) with the shared flag parsing and error handling."""
    def guarded(argv: list[str]) -> None:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO.
        if len(argv) > 1:
            sys.exit(f"error: unexpected arguments {argv[1:]}: every value is a --flag=value (see --help)")
        try:
            main(argv)
        except Interrupted as err:
            print(err, file=sys.stderr)
            sys.exit(130)
        except KeyboardInterrupt:  # Ctrl-C where no stop is handled (evaluate, sample, loading data...).
            if _debugging():
                raise
            print("interrupted (Ctrl-C): stopped; what was complete before is kept, run the same command again "
                  "to redo the rest", file=sys.stderr)
            sys.exit(130)
        except (UserError, OSError) as err:
            if _debugging():
                raise
            message = str(err) if isinstance(err, UserError) else describe_os_error(err)
            sys.exit(f"error: {message}{_library_log(err)}")

    app.run(guarded, flags_parser=parse_flags)


MAX_WHOLE_NUMBER = 10**9  # Beyond any K, patience or block size that can run (and jax's int32 keys).


def whole_numbers(values: list[str], flag: str, example: str, distinct: bool = False, minimum: int = 1) -> list[int]:
    """A list flag's values as whole numbers in `minimum`..MAX_WHOLE_NUMBER (each once if
    `distinct`), or a ConfigError naming the flag, what it takes (e.g. `example`) and what it got."""
    given = ",".join(values)
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        raise ConfigError(f"{flag} takes whole numbers, e.g. {example}; got {given}") from None
    if not numbers or min(numbers) < minimum or (distinct and len(set(numbers)) != len(numbers)):
        raise ConfigError(f"{flag} needs {'distinct ' if distinct else ''}values >= {minimum}, e.g. {example}; "
                          f"got {given}")
    if max(numbers) > MAX_WHOLE_NUMBER:
        raise ConfigError(f"{flag} takes values up to {MAX_WHOLE_NUMBER:,}, e.g. {example}; got {given}")
    return numbers


def positive_numbers(values: list[str], flag: str, example: str) -> list[float]:
    """A list flag's values as finite numbers > 0 (none given: an empty list), or a ConfigError
    naming the flag, what it takes (e.g. `example`) and what it got."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        numbers = []
    if len(numbers) != len(values) or any(not (0 < n < float("inf")) for n in numbers):
        raise ConfigError(f"{flag} takes positive numbers, e.g. {example}; got {','.join(values)}")
    return numbers
