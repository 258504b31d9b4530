"""``python -m aiblib notebook NOTEBOOK OUTPUT [-f PARAMS] [-p NAME VALUE ...] [--step K/N]``.

Runs one of the project's notebooks with papermill as ``make`` does (see
:mod:`aiblib.notebooks.runner`): its output streams to the terminal, the executed copy goes to
OUTPUT. NOTEBOOK is a path or a name in ``notebooks/`` (``01-train``). Relative paths (NOTEBOOK,
OUTPUT, ``-f``) are under the project root, wherever the command starts, like the paths inside
parameter files and notebooks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiblib.cli.common import command
from aiblib.errors import UserError
from aiblib.notebooks import NOTEBOOKS, NotebookFailed, notebook_parameters, parse_values, run_notebook
from aiblib.paths import project_path

__all__ = ["main", "notebook_path", "step_label", "add_notebook_arguments", "report_failure"]


def notebook_path(text: str) -> Path:
    """A notebook path (a relative one under the project root), or a name of ``notebooks/`` with or without
    ``.ipynb``."""
    for candidate in (project_path(text), NOTEBOOKS / text, NOTEBOOKS / f"{text}.ipynb"):
        if candidate.is_file() and candidate.suffix == ".ipynb":
            return candidate
    names = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
    raise UserError(f"no notebook {text!r}; expected a .ipynb path or one of: {names}")


def step_label(step: str | None) -> str:
    """``"3/12"`` -> ``"[3/12] "``."""
    return f"[{step}] " if step else ""


def add_notebook_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--parameters_file", help="parameter file (params/*.yaml; a relative path is under the "
                        "project root)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="one parameter (repeatable)")


def report_failure(exc: NotebookFailed) -> int:
    """The notebook's traceback for a bug (a user's mistake needs only the line), then the line; the exit status."""
    if not exc.user_mistake:
        print("\n".join(exc.traceback), file=sys.stderr)
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_status


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib notebook", description=__doc__.split("\n\n")[1])
    parser.add_argument("notebook", help="notebook path or name (e.g. 00-prepare-data)")
    parser.add_argument("output", help="where the executed copy goes (a relative path is under the project root)")
    add_notebook_arguments(parser)
    parser.add_argument("--step", help="K/N: label the output as step K of N")
    args = parser.parse_args(argv)
    notebook = notebook_path(args.notebook)
    params = notebook_parameters(notebook, params_file=args.parameters_file, given=parse_values(args.parameters))
    try:
        run_notebook(notebook, project_path(args.output), parameters=params, label=step_label(args.step))
    except NotebookFailed as exc:
        return report_failure(exc)
    return 0
