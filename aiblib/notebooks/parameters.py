"""The one rule for a notebook's parameters, in the cell after its ``parameters`` cell.

A notebook's configuration is a parameter file: ``params_file`` when it is set (00 and 01
default to the embedded default's file, ``params/synthetic-dg.yaml``), or else, for 02 and 03,
the saved configuration of the run they read (``runs_root/<run>/config.yaml``, written by
training). A parameter then overrides that configuration only when it is given, i.e. not
``None``: passed by papermill (``-p name value``) or typed into the ``parameters`` cell.
Every configuration key of the parameters cell defaults to ``None``; so 01 run as it is trains
exactly what its parameter file says (what ``make run`` trains), and 02 scores a run with the
run's own sizes, data root and model::

    cfg = notebook_config(globals())                # 00, 01: params_file + given parameters
    cfg = notebook_config(globals(), run=name)      # 02, 03: params_file, or else the run's config.yaml

Relative paths (``params_file``, ``runs_root``, ``data_root``, ``results_root``) are under the
project root (:func:`aiblib.paths.project_path`), wherever the kernel starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiblib.config import CONFIG_KEYS, Config, load_config
from aiblib.errors import ConfigError, MissingFile
from aiblib.paths import project_path

__all__ = ["given_parameters", "run_directory", "notebook_config"]



def given_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """The configuration keys among a notebook's variables whose value is given (not None)."""
    return {k: v for k, v in namespace.items() if k in CONFIG_KEYS and v is not None}


def run_directory(namespace: dict[str, Any], run: str) -> Path:
    """``runs_root/run`` (absolute): ``runs_root`` from the namespace, or the configuration's default."""
    return project_path(namespace.get("runs_root") or Config().runs_root) / run


def notebook_config(namespace: dict[str, Any], *, run: str | None = None) -> Config:
    """The configuration of a notebook by the rule of this module's docstring.

    ``namespace`` is the notebook's ``globals()``. The base is ``namespace["params_file"]`` when it
    is set, else (``run`` given) the run's saved ``config.yaml``; FileNotFoundError names the
    absolute path that is missing. Then the given parameters override it (checked as any override:
    an unknown type raises ValueError naming the key).
    """
    params_file = namespace.get("params_file")
    if params_file:
        base = project_path(params_file)
    elif run is not None:
        base = run_directory(namespace, run) / "config.yaml"
        if not base.is_file():
            raise MissingFile(
                f"no saved configuration for run {run!r}: {base} does not exist. Train it first "
                f"(01-train, or `make run NAME={run}`), or pass a parameter file (-p params_file params/....yaml)"
            )
    else:
        raise ConfigError("params_file is not set: name the parameter file of this notebook's configuration")
    return load_config(base, given_parameters(namespace))
