"""The β × seed grid of a sweep: which runs it holds, their names and the ``python -m aiblib run`` line of each.

Per seed the baseline ``<protocol>-baseline-s<seed>``, then one AIBR run per β, ``<protocol>-aib-b<β>-s<seed>`` with
β exactly as typed (``1e-4``, ``1.0e-3``). Each run is ``python -m aiblib run NAME -f PARAMS --results DIR
-p attention False|True [-p beta B] -p seed S -p runs_root RUNS <extra -p> --skip-done``: the values and names the
Makefile's sweep loop passed, so a ``run.json`` that loop wrote is recognised as done (:mod:`aiblib.notebooks`
records the ``-p`` values, the parameter file and ``--results`` as typed).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from aiblib.errors import ConfigError, MissingFile
from aiblib.paths import project_path

__all__ = ["Sweep", "RunSpec", "AIBLIB", "expand", "run_arguments", "file_value", "check_betas", "check_seeds"]

# what runs one run of a sweep: this interpreter's `python -m aiblib`
AIBLIB = (sys.executable, "-m", "aiblib")


@dataclass(frozen=True)
class Sweep:
    """What a sweep was asked for, every path and value as typed (they identify the runs' records)."""

    params_file: str
    protocol: str
    betas: tuple[str, ...]
    seeds: tuple[str, ...]
    results: str
    runs: str
    extra: tuple[tuple[str, str], ...] = ()
    baseline_params: str | None = None  # the baseline's own parameter file (paper runs), else params_file
    gpus: int = 1  # GPUs per run: more than 1 passes -p gpus N, and 01 starts torchrun itself


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: its name, parameter file and ``-p`` pairs in the order they are passed."""

    name: str
    params_file: str
    pairs: tuple[tuple[str, str], ...]


def expand(sweep: Sweep) -> list[RunSpec]:
    """Per seed the baseline, then one AIBR run per β, in the order typed."""
    specs = []
    gpus = (("gpus", str(sweep.gpus)),) if sweep.gpus > 1 else ()
    for seed in sweep.seeds:
        common = (("seed", seed), ("runs_root", sweep.runs), *gpus, *sweep.extra)
        specs.append(RunSpec(f"{sweep.protocol}-baseline-s{seed}", sweep.baseline_params or sweep.params_file,
                             (("attention", "False"), *common)))
        specs += [RunSpec(f"{sweep.protocol}-aib-b{beta}-s{seed}", sweep.params_file,
                          (("attention", "True"), ("beta", beta), *common)) for beta in sweep.betas]
    return specs


def run_arguments(spec: RunSpec, *, results: str, step: str | None = None) -> list[str]:
    """The arguments of ``python -m aiblib`` that train and evaluate ``spec`` (``--step K/N`` labels its output)."""
    pairs = [word for pair in spec.pairs for word in ("-p", *pair)]
    return ["run", spec.name, "-f", spec.params_file, "--results", results, *pairs, "--skip-done",
            *(["--step", step] if step else [])]


def file_value(params_file: str, key: str) -> str | None:
    """The text of ``key: value`` at the top level of a parameter file, exactly as typed (``beta: 1.0e-3`` ->
    ``"1.0e-3"``: the β of a run's name), without a trailing comment; None when the file does not set it."""
    path = project_path(params_file)
    if not path.is_file():
        raise MissingFile(f"parameter file not found: {path}")
    match = re.search(rf"^{re.escape(key)}:[ \t]*([^#\n]*?)[ \t]*(#.*)?$", path.read_text(), flags=re.MULTILINE)
    return match.group(1).strip("'\"") if match and match.group(1) else None


def check_betas(betas: list[str]) -> tuple[str, ...]:
    """β values as typed; ConfigError naming the first that is not a number >= 0."""
    for beta in betas:
        try:
            ok = float(beta) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"--betas {beta!r}: expected a number >= 0, e.g. 0 1e-4 1e-3")
    if not betas:
        raise ConfigError("--betas: expected at least one β (or a parameter file that sets beta)")
    return tuple(betas)


def check_seeds(seeds: list[str]) -> tuple[str, ...]:
    """Seeds as typed; ConfigError naming the first that is not a whole number >= 0."""
    bad = [s for s in seeds if not s.isdigit()]
    if bad or not seeds:
        raise ConfigError(f"--seeds {bad[0] if bad else ''!r}: expected whole numbers >= 0, e.g. 0 1 2")
    return tuple(seeds)
