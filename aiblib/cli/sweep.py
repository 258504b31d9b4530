"""``python -m aiblib sweep -f PARAMS [--betas B ...] [--seeds S ...] [--launcher local|slurm] [--jobs N] ...``.

A β × seed grid: per seed the baseline ``<protocol>-baseline-s<seed>`` and one AIBR run per β,
``<protocol>-aib-b<β as typed>-s<seed>``, each trained and evaluated by ``python -m aiblib run`` as a job of the
launcher (finished runs are skipped), then 04's report over ``--results``. ``--status`` prints where each run
stands; ``--report`` alone writes the report. Betas default to the parameter file's ``beta``, seeds to its ``seed``,
the protocol (the runs' name prefix) to its ``protocol``, results to ``results/sweep-<protocol>``, runs to
``runs/sweep-<protocol>``; ``--baseline-params FILE`` gives the baseline its own parameter file (paper runs).

Launchers (:mod:`aiblib.sweeps.launchers`): ``local`` runs ``--jobs N`` at once on this machine (default 1 on the
CPU, one per GPU on CUDA), each with its share of the cores or its GPUs; ``slurm`` submits one job per run with
``--partition``, ``--gpus`` (per run), ``--cpus`` (per run), ``--mem``, ``--time``, ``--account``,
``--sbatch "more sbatch options"``, ``--signal-delay`` seconds, or the same keys in a YAML file's ``slurm:`` block
(``--cluster FILE``), and waits for them unless ``--no-wait``. A preempted or timed-out job stops its training
cleanly, is requeued and resumes from its checkpoint (:mod:`aiblib.sweeps.job`).
"""

from __future__ import annotations

import argparse

from aiblib.cli.common import command
from aiblib.cli.notebook import report_failure
from aiblib.errors import ConfigError, MissingFile
from aiblib.notebooks import NotebookFailed, parse_values
from aiblib.paths import project_path
from aiblib.sweeps import (
    LAUNCHERS,
    LocalLauncher,
    Sweep,
    SlurmLauncher,
    check_betas,
    check_seeds,
    expand,
    file_value,
    local_slots,
    slurm_options,
)
from aiblib.sweeps.runner import run_sweep, write_report
from aiblib.sweeps.status import run_states

SLURM_FLAGS = ("partition", "cpus", "mem", "time", "account", "sbatch", "signal_delay", "cluster")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aiblib sweep", description=__doc__.split("\n\n")[1])
    parser.add_argument("-f", "--parameters_file", required=True, help="parameter file of the AIBR runs (params/*.yaml)")
    parser.add_argument("--betas", nargs="+", help="β values, as typed into the runs' names (default: the file's beta)")
    parser.add_argument("--seeds", nargs="+", help="seeds (default: the file's seed, or 0)")
    parser.add_argument("--protocol", help="the runs' name prefix (default: the file's protocol)")
    parser.add_argument("--baseline-params", help="the baseline's own parameter file (default: -f)")
    parser.add_argument("--results", help="results folder (default: results/sweep-PROTOCOL)")
    parser.add_argument("--runs", help="runs folder, the runs' runs_root (default: runs/sweep-PROTOCOL)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="one more parameter for every run (repeatable)")
    parser.add_argument("--launcher", default="local", help="local (default) or slurm")
    parser.add_argument("--jobs", help="local: runs at once (default: 1 on the CPU, one per GPU on CUDA)")
    parser.add_argument("--gpus", help="GPUs per run (more than 1: 01 starts torchrun)")
    slurm = parser.add_argument_group("slurm (also from --cluster FILE, its 'slurm:' block)")
    for flag, text in (("--partition", "partition"), ("--cpus", "CPUs per run (OMP_NUM_THREADS)"),
                       ("--mem", "memory per run, e.g. 64G"), ("--time", "time limit per run, e.g. 24:00:00"),
                       ("--account", "account"), ("--sbatch", "more sbatch options, e.g. \"--qos high\""),
                       ("--signal-delay", "seconds before the time limit the job is told to stop (default 90)"),
                       ("--cluster", "YAML file with a slurm: block of these keys")):
        slurm.add_argument(flag, help=text)
    parser.add_argument("--no-wait", action="store_true", help="slurm: submit and return (then --status, --report)")
    parser.add_argument("--status", action="store_true", help="print where each run stands, and exit")
    parser.add_argument("--report", action="store_true", help="only write 04's report over --results")
    return parser


def _count(text: str | None, *, option: str, minimum: int) -> int | None:
    """A whole-number option; ConfigError naming it when it is not one >= ``minimum``."""
    if text is None:
        return None
    if not text.isdigit() or int(text) < minimum:
        raise ConfigError(f"{option} {text!r}: expected a whole number >= {minimum}")
    return int(text)


def _sweep(args: argparse.Namespace) -> Sweep:
    """The grid asked for, with the parameter file's defaults."""
    for path in (args.parameters_file, args.baseline_params):
        if path is not None and not project_path(path).is_file():
            raise MissingFile(f"parameter file not found: {project_path(path)}")
    protocol = args.protocol or file_value(args.parameters_file, "protocol")
    if not protocol:
        raise ConfigError(f"{args.parameters_file} sets no protocol: pass --protocol NAME (the runs' name prefix)")
    beta = file_value(args.parameters_file, "beta")
    if args.betas is None and beta is None:
        raise ConfigError(f"{args.parameters_file} sets no beta: pass --betas")
    parse_values(args.parameters)  # a wrong -p value is one line now, not one failure per run
    return Sweep(params_file=args.parameters_file, protocol=protocol,
                 betas=check_betas(args.betas if args.betas is not None else [beta]),
                 seeds=check_seeds(args.seeds or [file_value(args.parameters_file, "seed") or "0"]),
                 results=args.results or f"results/sweep-{protocol}", runs=args.runs or f"runs/sweep-{protocol}",
                 extra=tuple(tuple(p) for p in args.parameters), baseline_params=args.baseline_params,
                 gpus=_count(args.gpus, option="--gpus", minimum=0) or 1)


def _launcher(args: argparse.Namespace, sweep: Sweep) -> LocalLauncher | SlurmLauncher:
    """The launcher asked for; ConfigError for a flag of the other one."""
    if args.launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {args.launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    jobs = _count(args.jobs, option="--jobs", minimum=1)
    if args.launcher == "local":
        given = [f"--{f.replace('_', '-')}" for f in SLURM_FLAGS if getattr(args, f) is not None]
        if given:
            raise ConfigError(f"{given[0]} is a Slurm option: use it with --launcher slurm")
        gpus = _count(args.gpus, option="--gpus", minimum=0)
        return LocalLauncher(sweep.runs, slots=local_slots(jobs, gpus_per_run=1 if gpus is None else gpus))
    if jobs is not None:
        raise ConfigError("--jobs is for --launcher local: Slurm runs as many jobs at once as the cluster allows")
    flags = {"partition": args.partition, "cpus": _count(args.cpus, option="--cpus", minimum=1), "mem": args.mem,
             "time": args.time, "account": args.account, "sbatch": args.sbatch,
             "gpus": _count(args.gpus, option="--gpus", minimum=0),
             "signal_delay": _count(args.signal_delay, option="--signal-delay", minimum=0)}
    return SlurmLauncher(sweep.runs, options=slurm_options(flags, args.cluster))


@command
def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    sweep = _sweep(args)
    try:
        if args.report:
            write_report(sweep.results)
            return 0
        if args.status:
            states = run_states(expand(sweep), results=sweep.results, runs=sweep.runs)
            width = max(len(state.name) for state in states)
            print("\n".join(state.line(width) for state in states))
            return 0
        return run_sweep(sweep, _launcher(args, sweep), wait=not args.no_wait)
    except NotebookFailed as exc:
        return report_failure(exc)
