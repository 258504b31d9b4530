"""``python -m aiblib run NAME -f PARAMS [-p NAME VALUE ...] [--results DIR] [--step K/N] [--skip-done]``.

One experiment: ``01-train`` then ``02-evaluate-cross-domain`` for the run NAME, executed
copies in ``DIR/NAME/``. When both succeed it writes ``DIR/NAME/run.json``: the run's inputs (the parameter
file's hash, the ``-p`` values, the digest of the code that shapes training and evaluation) and, for the reader,
the commit, the seconds taken, under ``training`` the precision, device, CPU and torch the training computed
with (from its log) and under ``job`` the job it ran in (a sweep's launcher, job id and restarts, or the Slurm
job's). With ``--skip-done`` a run whose ``run.json`` records the same inputs is not run again, at any commit,
so an interrupted sweep continues where it stopped, across commits that left that code alone.

Relative paths (``-f``, ``--results``) are under the project root, wherever the command starts, like
every path of the parameter files: 02's ``scores.json`` lands beside the executed notebooks and
``run.json`` in ``<project root>/DIR/NAME/``. A bug's traceback goes to ``DIR/NAME/traceback.txt``.
"""

from __future__ import annotations

import argparse
import json
import time

from aiblib.cli.common import command, keep_traceback_in
from aiblib.config import load_config
from aiblib.cli.notebook import add_notebook_arguments, notebook_path, report_failure, step_label
from aiblib.errors import ConfigError
from aiblib.notebooks import RUN_RECORD, NotebookFailed, completed, notebook_parameters, run_given, run_notebook, run_record
from aiblib.paths import project_path
from aiblib.storage import training_environment
from aiblib.sweeps import job_in_environment

STEPS = ("01-train", "02-evaluate-cross-domain")
MARKER = RUN_RECORD


def _parse_step(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    first, _, total = text.partition("/")
    if not (first.isdigit() and total.isdigit()):
        raise ConfigError(f"--step {text!r}: expected K/N, e.g. 3/12")
    return int(first), int(total)


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib run", description=__doc__.split("\n\n")[1])
    parser.add_argument("name", help="run name (checkpoints in runs/NAME, results in DIR/NAME)")
    add_notebook_arguments(parser)
    parser.add_argument("--results", default="results",
                        help="results folder; a relative one is under the project root (default: results)")
    parser.add_argument("--step", help="K/N: 01-train is step K of N, 02 step K+1")
    parser.add_argument("--skip-done", action="store_true", help="skip the run when DIR/NAME/run.json matches")
    args = parser.parse_args(argv)
    step = _parse_step(args.step)
    given = run_given(name=args.name, results=args.results, pairs=args.parameters)
    out = project_path(args.results) / args.name  # where 02 writes scores.json: results_root is under the root
    keep_traceback_in(out)
    record = run_record(params_file=args.parameters_file, given=given)
    if args.skip_done and completed(out / MARKER, record):
        print(f"{step_label(args.step)}{args.name}: already done with these parameters and this code "
              f"({out / MARKER}); skipped", flush=True)
        return 0
    start = time.perf_counter()
    for i, name in enumerate(STEPS):
        notebook = notebook_path(name)
        label = step_label(f"{step[0] + i}/{step[1]}" if step else f"{i + 1}/{len(STEPS)}")
        params = notebook_parameters(notebook, params_file=args.parameters_file, given=given)
        try:
            run_notebook(notebook, out / notebook.name, parameters=params, label=f"{label}{args.name} ")
        except NotebookFailed as exc:
            return report_failure(exc)
    trained = load_config(out / "config.yaml").resolved_run_dir()  # 01 saves the run's configuration there
    job = job_in_environment()  # a sweep's job, or the Slurm job the run was started in
    (out / MARKER).write_text(json.dumps({**record, "seconds": round(time.perf_counter() - start, 1),
                                          "training": training_environment(trained),
                                          **({"job": job} if job else {})}, indent=1) + "\n")
    return 0
