"""Command line: ``python -m aiblib <command> [args]``.

Each command is a module of :mod:`aiblib.cli` with ``main(argv: list[str]) -> int``. Only the chosen
command's module is loaded (``importlib``), so ``train``, ``evaluate`` and ``gpu-check`` run where
torch is installed without the notebook stack (papermill, Jupyter), as on many GPU machines.

Every relative path a command is given (``-f params/x.yaml``, ``--results``, an output notebook,
``--root``) is under the project root (:mod:`aiblib.paths`), wherever the command starts, as the
paths in parameter files are. Errors: see :mod:`aiblib.cli.common`.
"""

from __future__ import annotations

import importlib
import sys

from aiblib.paths import project_root

# command -> (module of aiblib.cli, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "write the synthetic three-domain street scenes"),
    "prepare": ("prepare", "make Cityscapes labelTrainIds, check labels, write a summary"),
    "convert": ("convert", "convert an MMSegmentation AIBR checkpoint to aiblib"),
    "train": ("train", "train a configuration (one device, or under torchrun)"),
    "evaluate": ("evaluate", "score a checkpoint on a dataset split"),
    "predict": ("predict", "run a checkpoint on your own images: predictions, trainIds, attention maps"),
    "bench": ("bench", "print a speed and memory table"),
    "gpu-check": ("gpucheck", "check and measure the paper's recipe on this machine's CUDA GPUs (make gpu-check)"),
    "profile": ("profile", "profile a training iteration on this machine's CUDA GPU (make gpu-profile)"),
    "notebook": ("notebook", "run one of the notebooks with papermill, its output streamed"),
    "run": ("run", "one experiment: 01-train then 02-evaluate-cross-domain (make run)"),
    "score": ("score", "02-evaluate-cross-domain on runs trained before (make camvid: the DG runs on CamVid)"),
    "sweep": ("sweep", "a β × seed grid of runs, on this machine or on Slurm; its status; 04's report (make sweep)"),
}


def usage() -> str:
    """The command list printed by ``python -m aiblib`` and ``--help``."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return ("usage: python -m aiblib <command> [args]\n\ncommands:\n" + "\n".join(lines)
            + f"\n\nRelative paths given to a command are under the project root ({project_root()}),"
            " wherever it starts;"
            "\n--debug (or AIBLIB_DEBUG=1) shows the traceback of any error.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(usage())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    try:
        module = importlib.import_module(f"aiblib.cli.{COMMANDS[argv[0]][0]}")
    except ModuleNotFoundError as error:  # a package of the project's environment is missing here
        print(f"error: python -m aiblib {argv[0]} needs the Python package {error.name!r}, which is not installed "
              "here; make setup installs the project's pinned environment", file=sys.stderr)
        return 2
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
