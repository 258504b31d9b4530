"""``python -m aiblib train -f PARAMS [-p NAME VALUE ...]``: train a configuration (or under torchrun).

Relative paths (``-f``, and those in the parameters) are under the project root, wherever the command starts.
A bug's traceback goes to the run directory's ``traceback.txt``.
"""

from __future__ import annotations

import argparse
import os

from aiblib.cli.common import add_config_arguments, command, config_from_args, fail, keep_traceback_in
from aiblib.config import Config
from aiblib.training import loop as engine

NONFINITE = 3  # exit status when the loss or the weights stop being finite


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib train", description=engine.__doc__.split("\n")[0],
                                     epilog=engine.__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.help_config:
        print(Config.describe())
        return 0
    cfg = config_from_args(args)
    keep_traceback_in(cfg.resolved_run_dir())
    try:
        run_dir = engine.train(cfg)
    except engine.NonFiniteLossError as exc:
        fail(exc)
        return NONFINITE
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run directory: {run_dir}")
    return 0
