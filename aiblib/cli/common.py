"""What every command shares: papermill's parameter spelling, sizes as ``HxW``, the error policy, and
where relative paths point.

Paths: every relative path a command is given (``-f params/x.yaml``, ``--results DIR``, an output
notebook, ``--root``) is under the project root (:mod:`aiblib.paths`), wherever the command starts,
as the paths inside parameter files are: a run's notebooks, ``run.json`` and ``scores.json`` land in
one folder.

Error policy (:func:`command`): a user mistake is an :class:`aiblib.errors.UserError` (a bad value,
an unknown key, malformed YAML, a file that is not a checkpoint: ``ConfigError``; a missing file or
data root: ``MissingFile`` or ``DataError``; a run folder in the way: ``AlreadyExists``) and is one line
``error: ...`` on stderr (a missing data root adds the layout expected under it), exit status 2 (1 for
a data-loader worker that died); an interrupted training exits 130 (SIGINT) or 143 (SIGTERM) after
its line. Anything else is a bug, whatever its type (a ``ValueError`` from a library included): one
line ``error: <Type>: <message> (a bug; the full traceback is in PATH)``, exit status 1, the
traceback written to PATH (``traceback.txt`` in the run's folder once the command knows it, see
:func:`keep_traceback_in`; else a temporary file). ``--debug`` (or ``AIBLIB_DEBUG=1``) lets every
exception through with its traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import yaml

from aiblib.config import Config, load_config, parse_overrides
from aiblib.errors import ConfigError, Interrupted, UserError

__all__ = ["add_config_arguments", "config_from_args", "parse_size", "fail", "command", "keep_traceback_in",
           "USAGE_ERROR", "BUG"]

USAGE_ERROR = 2
BUG = 1  # exit status of an exception that is not a UserError
DEBUG_FLAG = "--debug"
TRACEBACK_FILE = "traceback.txt"
_traceback_folder: list[Path] = []  # the running command's folder for a bug's traceback (see keep_traceback_in)


def fail(message: Any) -> int:
    """Print ``error: message`` on stderr; return the exit status of a user mistake (2)."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def keep_traceback_in(folder: Path) -> None:
    """Tell :func:`command` where the running command's bug would leave its traceback: ``folder/traceback.txt``
    (the run's folder), used if it exists when the bug happens."""
    _traceback_folder[:] = [Path(folder)]


def _write_traceback(text: str) -> Path | None:
    """``text`` in ``traceback.txt`` of the command's folder (``traceback-rankN.txt`` on rank N > 0), else in a
    new temporary file; None when neither can be written."""
    rank = os.environ.get("RANK", "0")
    name = TRACEBACK_FILE if rank == "0" else f"traceback-rank{rank}.txt"
    for folder in _traceback_folder:
        if folder.is_dir():
            try:
                (folder / name).write_text(text)
                return folder / name
            except OSError:
                pass
    try:
        fd, path = tempfile.mkstemp(prefix="aiblib-", suffix=f"-{name}")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Path(path)
    except OSError:
        return None


def _report_bug(exc: BaseException) -> int:
    """One line naming the exception and the file holding its traceback (written here); exit status 1."""
    message = " ".join(str(exc).split())
    name = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    path = _write_traceback("".join(traceback.format_exception(exc)))
    if path is None:  # nowhere to write it: the traceback goes to stderr
        traceback.print_exception(exc, file=sys.stderr)
    where = f"the full traceback is in {path}" if path is not None else "the traceback is above"
    print(f"error: {name} (a bug; {where})", file=sys.stderr)
    return BUG


def command(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Wrap a command's ``main(argv)`` in the error policy of this module's docstring; ``--debug`` anywhere
    in ``argv`` (or ``AIBLIB_DEBUG=1``) lets every exception through with its traceback."""

    @functools.wraps(main)
    def wrapper(argv: list[str]) -> int:
        debug = DEBUG_FLAG in argv or os.environ.get("AIBLIB_DEBUG") == "1"
        argv = [a for a in argv if a != DEBUG_FLAG]
        _traceback_folder.clear()
        try:
            return main(argv)
        except Interrupted as exc:
            if debug:
                raise
            if os.environ.get("RANK", "0") == "0":  # every rank stops with the same line
                print(f"error: {exc}", file=sys.stderr)
            return exc.exit_status
        except KeyboardInterrupt:
            if debug:
                raise
            print("error: interrupted (Ctrl-C)", file=sys.stderr)
            return 130
        except UserError as exc:
            if debug:
                raise
            if not getattr(exc, "every_rank", False) or os.environ.get("RANK", "0") == "0":
                fail(exc)  # an error every rank raised (a data failure under torchrun) is printed once
            return getattr(exc, "exit_status", USAGE_ERROR)
        except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback in a file
            if debug:
                raise
            return _report_bug(exc)

    return wrapper


def parse_size(text: str, *, option: str) -> tuple[int, int]:
    """``"256x512"`` -> ``(256, 512)``: height x width, the order of the configuration's ``[h, w]``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"{option} {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 256x512")
    return int(parts[0]), int(parts[1])


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """papermill's spelling: ``-f FILE``, repeated ``-p NAME VALUE``, repeated ``-y YAML``."""
    parser.add_argument("-f", "--parameters_file", help="YAML file of parameters (params/*.yaml)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override one key (value read as YAML; repeatable)")
    parser.add_argument("-y", "--parameters_yaml", action="append", default=[],
                        help="override keys with a YAML mapping string (repeatable)")
    parser.add_argument("--help-config", action="store_true", help="list every configuration key and exit")


def config_from_args(args: argparse.Namespace, pairs: list[tuple[str, str]] | None = None) -> Config:
    """The parameter file, then each ``-y`` mapping, then the ``-p`` pairs (``pairs`` replaces ``args.parameters``)."""
    cfg = load_config(args.parameters_file)
    values: dict[str, Any] = {}
    for text in args.parameters_yaml:
        try:
            mapping = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"-y {text!r}: not valid YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(mapping, dict):
            raise ConfigError(f"-y {text!r}: expected a YAML mapping")
        values.update(mapping)
    if values:
        cfg = cfg.replace(**values)
    pairs = args.parameters if pairs is None else pairs
    if pairs:
        cfg = cfg.replace(**parse_overrides([tuple(p) for p in pairs]))
    return cfg
