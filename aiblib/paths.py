"""Where the project is: relative paths resolve against the project root, wherever a process starts.

A notebook's kernel starts in ``notebooks/``, a command may run from anywhere; the paths of
parameter files and notebooks (``data/synthetic``, ``runs``, ``results``, ``params/x.yaml``)
mean the same folders in every case::

    project_path("runs/dg-aib")      # <project root>/runs/dg-aib
    project_path("/data/cityscapes") # absolute paths stay as they are

The project root is the folder holding aiblib's ``pyproject.toml`` (the checkout ``pip install -e .``
points at), or the folder named by the environment variable ``AIBR_ROOT`` when it is set (a copy
of the project, a test's temporary project). Floor 0: imports nothing from aiblib.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT_VARIABLE", "project_root", "project_path", "project_relative"]

ROOT_VARIABLE = "AIBR_ROOT"
_CHECKOUT = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """``$AIBR_ROOT`` when set, else the checkout holding this package (with its pyproject.toml),
    else (an installed, non-editable copy) the working directory. Absolute."""
    override = os.environ.get(ROOT_VARIABLE)
    if override:
        return Path(override).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").is_file():
        return _CHECKOUT
    return Path.cwd().resolve()


def project_path(path: str | os.PathLike) -> Path:
    """``path`` as an absolute path: an absolute one as it is, a relative one under :func:`project_root`
    (``~`` is expanded). ``""`` or ``"."`` is the project root itself."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def project_relative(path: str | os.PathLike) -> str:
    """``path`` as text to record in a result: relative to the project root when it lies under it
    (results stay the same on every machine), else absolute."""
    p = project_path(path)
    try:
        return p.relative_to(project_root()).as_posix()
    except ValueError:
        return str(p)
