"""The job record of a sweep's run: ``<runs>/jobs/<name>.json``, what ``--status`` reads.

The launcher writes it when it submits the run (``launcher``, ``job_id``, ``submitted`` in unix seconds, ``log``: the
scheduler's log of the job, which the run's own output goes to); the job appends to ``requeues`` each time it is
requeued (``count``, ``restart``, ``job_id``, ``reason``, ``iteration`` of the checkpoint, ``time``) and notes
``pid``, the process id of ``python -m aiblib run`` on the job's host, each time it starts it: the local runner
stops the run through it when the sweep is interrupted. A new submission of the run starts a new record.
submitit's own files live beside it, in ``<runs>/jobs/submitit/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiblib.paths import project_path
from aiblib.storage import write_text_atomic

__all__ = ["jobs_folder", "record_path", "read_record", "write_record", "new_record", "note_process"]


def jobs_folder(runs: str) -> Path:
    """``<runs>/jobs``: the job records of a sweep's runs and submitit's folder."""
    return project_path(runs) / "jobs"


def record_path(runs: str, name: str) -> Path:
    return jobs_folder(runs) / f"{name}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``; None when there is none (or it was cut short)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")


def new_record(*, launcher: str, job_id: str, log: Path, submitted: float) -> dict[str, Any]:
    return {"launcher": launcher, "job_id": str(job_id), "submitted": round(submitted, 3), "log": str(log),
            "requeues": []}


def note_process(path: Path, pid: int) -> None:
    """Note in the record at ``path`` the process id of the run the job has just started."""
    record = read_record(path) or {"requeues": []}
    record["pid"] = int(pid)
    write_record(path, record)
