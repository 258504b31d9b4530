"""Command line: ``python -m aiblib <command> [args]``.

Each command is a module of :mod:`aiblib.cli` with ``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import sys
from typing import Callable

from aiblib.cli import bench, convert, evaluate, gpucheck, notebook, prepare, run, synth, train

COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "synth": (synth.main, "write the synthetic three-domain street scenes"),
    "prepare": (prepare.main, "make Cityscapes labelTrainIds, check labels, write a summary"),
    "convert": (convert.main, "convert an MMSegmentation AIBR checkpoint to aiblib"),
    "train": (train.main, "train a configuration (one device, or under torchrun)"),
    "evaluate": (evaluate.main, "score a checkpoint on a dataset split"),
    "bench": (bench.main, "print a speed and memory table"),
    "gpu-check": (gpucheck.main, "check and measure the paper's recipe on this machine's CUDA GPUs (make gpu-check)"),
    "notebook": (notebook.main, "run one of the notebooks with papermill, its output streamed"),
    "run": (run.main, "one experiment: 01-train then 02-evaluate-cross-domain (make run, make sweep)"),
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
    command, _ = COMMANDS[argv[0]]
    return int(command(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
