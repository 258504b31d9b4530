"""Where each run of a sweep stands: ``done``, ``running (job ID)``, ``queued (job ID)``, ``failed (job ID): <the
last line of its job's log>`` or ``not started``.

A run is done when its ``run.json`` records the inputs it would run with now (:func:`aiblib.notebooks.completed`:
the parameter file, the ``-p`` values and the digest of the code that shapes training and evaluation), whatever
ran it. Otherwise its job record (:mod:`.records`) says which job ran it last: Slurm's state from ``squeue -h -j
IDS -o "%i %T"`` (accounting may be off, so ``sacct`` is not used: a job squeue no longer lists has ended), a
local job's from its process. A job that has ended without the run being done failed.

Imported by its own path (``from aiblib.sweeps.status import ...``): it loads the notebook stack.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiblib.errors import ConfigError, UserError
from aiblib.notebooks import RUN_RECORD, code_digest, completed, run_given, run_inputs
from aiblib.paths import project_path
from aiblib.sweeps.grid import RunSpec
from aiblib.sweeps.records import read_record, record_path

__all__ = ["RunState", "run_done", "run_states", "squeue_states", "last_log_line", "is_submitit_line", "process_alive",
           "SLURM_RUNNING", "SLURM_QUEUED"]

SLURM_RUNNING = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"})
SLURM_QUEUED = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD",
                          "PREEMPTED"})


@dataclass(frozen=True)
class RunState:
    """One run's state (``done``, ``running``, ``queued``, ``failed``, ``not started``), its job and a note."""

    name: str
    state: str
    job_id: str | None = None
    note: str = ""

    def line(self, width: int = 0) -> str:
        job = f" (job {self.job_id})" if self.job_id and self.state in ("running", "queued", "failed") else ""
        note = f": {self.note}" if self.note else ""
        return f"{self.name:<{width}}  {self.state}{job}{note}"


def run_done(spec: RunSpec, *, results: str, digest: str) -> bool:
    """True when ``results/NAME/run.json`` records the inputs ``python -m aiblib run`` would run ``spec`` with;
    ``digest``: the code digest, computed once for the sweep (:func:`aiblib.notebooks.code_digest`)."""
    inputs = run_inputs(params_file=spec.params_file, digest=digest,
                        given=run_given(name=spec.name, results=results, pairs=list(spec.pairs)))
    return completed(project_path(results) / spec.name / RUN_RECORD, inputs)


def squeue_states(job_ids: list[str]) -> dict[str, str]:
    """Job id -> Slurm state of those of ``job_ids`` that squeue still lists."""
    if not job_ids:
        return {}
    if shutil.which("squeue") is None:
        raise ConfigError("runs of this sweep were submitted to Slurm, but squeue is not on PATH here; ask from a "
                          "machine of the cluster")
    done = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T"], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        if "invalid job id" in done.stderr.lower():  # every job has ended and left squeue's memory
            return {}
        raise UserError(f"squeue failed (exit status {done.returncode}): {' '.join(done.stderr.split())}")
    return dict(line.split(None, 1) for line in done.stdout.splitlines() if len(line.split()) == 2)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: on Linux, listed in /proc and not a zombie its parent has yet to reap;
    elsewhere, as the kernel answers ``kill(pid, 0)``."""
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _local_job_alive(job_id: str) -> bool:
    """Whether the local job's controller process (its id is that process's) still runs; on Linux it must be
    submitit's, not a later process with the same id."""
    if not job_id.isdigit() or not process_alive(int(job_id)):
        return False
    try:
        return b"submitit" in (Path("/proc") / job_id / "cmdline").read_bytes()
    except FileNotFoundError:  # no /proc, or it has just ended
        return not Path("/proc/self").exists()
    except OSError:
        return False


def is_submitit_line(line: str) -> bool:
    """A line of submitit's own logger (``submitit INFO (...) - ...``), not of the run."""
    return re.match(r"submitit (DEBUG|INFO|WARNING|ERROR|CRITICAL) \(", line) is not None


def last_log_line(log: str | Path) -> str:
    """The last non-empty line of a job's log (the run's output; submitit's own lines aside), else of its stderr
    beside it."""
    for path in (Path(log), Path(log).with_suffix(".err")):
        try:
            with open(path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
                lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()
                         if line.strip() and not is_submitit_line(line)]
        except OSError:
            continue
        if lines:
            return lines[-1]
    return f"its log is empty ({log})"


def _state(spec: RunSpec, *, results: str, record: dict | None, slurm: dict[str, str]) -> RunState:
    """The state of a run that is not done, from its job record and the scheduler's view of its job."""
    if record is None:
        return RunState(spec.name, "not started")
    job_id = str(record.get("job_id"))
    if record.get("launcher") == "slurm":
        state = slurm.get(job_id, "")
        if state in SLURM_RUNNING or state in SLURM_QUEUED:
            return RunState(spec.name, "running" if state in SLURM_RUNNING else "queued", job_id)
    elif _local_job_alive(job_id):
        return RunState(spec.name, "running", job_id)
    marker = project_path(results) / spec.name / RUN_RECORD
    if marker.is_file() and marker.stat().st_mtime >= float(record.get("submitted", 0)):
        return RunState(spec.name, "not started", note="its run.json is from other parameters or code")
    return RunState(spec.name, "failed", job_id, last_log_line(record.get("log", "")))


def run_states(specs: list[RunSpec], *, results: str, runs: str, digest: str | None = None) -> list[RunState]:
    """The state of every run of ``specs`` (squeue is asked once, for the Slurm jobs among them); ``digest``: the
    code digest when the caller has it."""
    digest = digest or code_digest()
    done = {spec.name for spec in specs if run_done(spec, results=results, digest=digest)}
    records = {spec.name: read_record(record_path(runs, spec.name)) for spec in specs if spec.name not in done}
    slurm = squeue_states([str(r["job_id"]) for r in records.values() if r and r.get("launcher") == "slurm"])
    return [RunState(spec.name, "done") if spec.name in done
            else _state(spec, results=results, record=records[spec.name], slurm=slurm) for spec in specs]
