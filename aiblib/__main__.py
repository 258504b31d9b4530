"""Command line: ``python -m aiblib <command> [args]``.

Each command lives in its own module and exposes ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "synth": ("aiblib.synth", "write the synthetic three-domain street scenes"),
    "prepare": ("aiblib.prepare", "make Cityscapes labelTrainIds, check labels, write a summary"),
    "convert": ("aiblib.checkpoint", "convert an MMSegmentation AIBR checkpoint to aiblib"),
    "train": ("aiblib.train", "train a configuration (one device, or under torchrun)"),
    "evaluate": ("aiblib.evaluate", "score a checkpoint on a dataset split"),
    "bench": ("aiblib.bench", "print a speed and memory table"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m aiblib <command> [args]\n\ncommands:\n" + "\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
