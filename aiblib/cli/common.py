"""What every command shares: papermill's parameter spelling, sizes as ``HxW``, the error line.

Error policy: a user mistake (a bad value, an unknown key, a missing file) is one line
``error: ...`` on stderr and exit status 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from aiblib.config import Config, load_config, parse_overrides

__all__ = ["add_config_arguments", "config_from_args", "parse_size", "fail", "USAGE_ERROR"]

USAGE_ERROR = 2


def fail(message: Any) -> int:
    """Print ``error: message`` on stderr; return the exit status of a user mistake (2)."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR


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
