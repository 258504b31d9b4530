"""The command line, ``python -m aiblib <command>``: one module per command, each with ``main(argv) -> int``,
and what the commands share (:mod:`.common`: the error policy, papermill's parameter spelling, sizes).

Floor 9: imports every floor below it; only ``aiblib.__main__`` imports the commands.
"""

from aiblib.cli.common import add_config_arguments, command, config_from_args, fail, parse_size

__all__ = ["add_config_arguments", "command", "config_from_args", "fail", "parse_size"]
