"""``python -m aiblib score RUN_DIR ... --results DIR [-p NAME VALUE ...]``.

02-evaluate-cross-domain on runs trained before, one after another: each RUN_DIR that holds
``checkpoints/last.pth`` (a folder without one, or a shell pattern that matched nothing, is passed over), with
``-p name <its folder name> -p runs_root <its parent> -p results_root DIR`` and the ``-p`` given; the executed
copy goes to ``DIR/<name>/02-evaluate-cross-domain.ipynb``. ``make camvid`` scores the synthetic DG runs on
CamVid's day and dusk frames with it. Relative paths are under the project root.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aiblib.cli.common import command
from aiblib.cli.notebook import notebook_path, report_failure, step_label
from aiblib.notebooks import NotebookFailed, notebook_parameters, parse_values, run_notebook
from aiblib.paths import project_path
from aiblib.storage import last_checkpoint


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib score", description=__doc__.split("\n\n")[1])
    parser.add_argument("runs", nargs="*", help="run folders (runs_root/name)")
    parser.add_argument("--results", required=True, help="where the executed copies and scores go")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="one more parameter of 02 (repeatable)")
    args = parser.parse_args(argv)
    trained = [Path(run) for run in args.runs if last_checkpoint(project_path(run)).is_file()]
    notebook = notebook_path("02-evaluate-cross-domain")
    for k, run in enumerate(trained, start=1):
        pairs = [("name", run.name), ("runs_root", str(run.parent)), *map(tuple, args.parameters),
                 ("results_root", args.results)]
        params = notebook_parameters(notebook, params_file=None, given=parse_values(pairs))
        try:
            run_notebook(notebook, project_path(args.results) / run.name / notebook.name, parameters=params,
                         label=step_label(f"{k}/{len(trained)}") + f"{run.name} ")
        except NotebookFailed as exc:
            return report_failure(exc)
    print(f"score: {len(trained)} trained run(s) scored into {args.results}"
          f"{f', {len(args.runs) - len(trained)} without a checkpoint passed over' if len(args.runs) > len(trained) else ''}")
    return 0
