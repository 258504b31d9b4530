"""What every command shares: papermill's parameter spelling, sizes as ``HxW``, the error policy.

Error policy (:func:`command`): a user mistake — a bad value, an unknown key, a missing or
unreadable file, a wrong layout, malformed YAML, a file that is not a checkpoint — is one
line ``error: ...`` on stderr (a missing data root adds the layout expected under it) and
exit status 2 (1 for a data-loader worker that died); an interrupted training exits 130 (SIGINT) or 143
(SIGTERM) after its line.
Anything else is a bug and keeps its traceback, as does every error with ``--debug``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any, Callable

import yaml

from aiblib.config import Config, load_config, parse_overrides
from aiblib.errors import Interrupted, UserError

__all__ = ["add_config_arguments", "config_from_args", "parse_size", "fail", "command", "USAGE_ERROR",
           "USER_MISTAKES"]

USAGE_ERROR = 2
# what a user's input can cause (ValueError covers DataError and every configuration check)
USER_MISTAKES = (UserError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                 PermissionError, yaml.YAMLError)
DEBUG_FLAG = "--debug"


def fail(message: Any) -> int:
    """Print ``error: message`` on stderr; return the exit status of a user mistake (2)."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


def command(main: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Wrap a command's ``main(argv)`` in the error policy; ``--debug`` anywhere in ``argv``
    (or ``AIBLIB_DEBUG=1``) lets every exception through with its traceback."""

    @functools.wraps(main)
    def wrapper(argv: list[str]) -> int:
        debug = DEBUG_FLAG in argv or os.environ.get("AIBLIB_DEBUG") == "1"
        argv = [a for a in argv if a != DEBUG_FLAG]
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
        except USER_MISTAKES as exc:
            if debug:
                raise
            if not getattr(exc, "every_rank", False) or os.environ.get("RANK", "0") == "0":
                fail(exc)  # an error every rank raised (a data failure under torchrun) is printed once
            return getattr(exc, "exit_status", USAGE_ERROR)

    return wrapper


def parse_size(text: str, *, option: str) -> tuple[int, int]:
    """``"256x512"`` -> ``(256, 512)``: height x width, the order of the configuration's ``[h, w]``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{option} {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 256x512")
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
        mapping = yaml.safe_load(text) or {}
        if not isinstance(mapping, dict):
            raise ValueError(f"-y {text!r}: expected a YAML mapping")
        values.update(mapping)
    if values:
        cfg = cfg.replace(**values)
    pairs = args.parameters if pairs is None else pairs
    if pairs:
        cfg = cfg.replace(**parse_overrides([tuple(p) for p in pairs]))
    return cfg
