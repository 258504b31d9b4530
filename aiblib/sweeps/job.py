"""What one job of a sweep runs: ``python -m aiblib run NAME ...`` as a subprocess, in its share of the machine,
stopped cleanly and requeued when the scheduler asks.

- **Its share**: the launcher hands the job its CPU cores (``os.sched_setaffinity``, inherited by the run and its
  data-loader workers) and the variables to set for the run (``OMP_NUM_THREADS``, ``CUDA_VISIBLE_DEVICES``). The
  run learns which job it is from :data:`LAUNCHER_VARIABLE` and its kin, and records it in ``run.json``
  (:func:`job_in_environment`).
- **Preemption and time limits** (submitit's signal, USR2 by default, ``--signal-delay`` seconds before the end):
  :meth:`RunJob.checkpoint` sends the run SIGTERM; ``aiblib run`` passes it to the notebook's kernel, whose training
  finishes its step, writes ``last.pth`` and stops; the requeue is noted and submitit requeues the job, which
  resumes from ``last.pth``. Slurm's own requeue (``scontrol requeue``, preemption with requeue) sends SIGTERM to
  every process of the job: the run stops the same way, and the restarted job (``SLURM_RESTART_COUNT`` > 0) notes
  the requeue before it runs again. The run ignores the preemption signal itself: Slurm's ``--signal`` reaches
  every process of the job, and its default action would end the training without its checkpoint.
- **No progress**: each requeue is noted in the job record (``<runs>/jobs/<name>.json``) and as a ``requeue``
  event in the run's ``log.jsonl`` (count, job id, reason, the checkpoint's iteration). A run stopped twice at the
  same checkpoint iteration fails the same way twice: it is not requeued again, and the job ends with one line
  naming the run and the iteration.

This module loads neither papermill nor the notebooks: a job process starts with what it needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import submitit
from submitit.helpers import DelayedSubmission

from aiblib.errors import UserError
from aiblib.paths import project_root
from aiblib.sweeps.records import note_process, read_record, write_record
from aiblib.storage import LOG_NAME, CheckpointError, RunLog, last_checkpoint, safe_load

__all__ = ["RunJob", "RunFailed", "job_in_environment", "note_requeue", "checkpoint_iteration",
           "LAUNCHER_VARIABLE", "JOB_ID_VARIABLE", "RESTARTS_VARIABLE", "PREEMPTION_SIGNAL"]

LAUNCHER_VARIABLE = "AIBR_JOB_LAUNCHER"
JOB_ID_VARIABLE = "AIBR_JOB_ID"
RESTARTS_VARIABLE = "AIBR_JOB_RESTARTS"
PREEMPTION_SIGNAL = signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG]
SLURM_REQUEUE = "requeued by Slurm (scontrol requeue, or preempted with requeue): the run got SIGTERM"


class RunFailed(UserError):
    """The run of a job ended with an error, or is not requeued again."""

    exit_status = 1


@dataclass
class RunJob:
    """One run as a submitit job: ``command`` (``python -m aiblib run ...``) run from the project root.

    ``cores``: the CPU cores the job pins itself to (empty: as it is); ``environment``: variables set for the run
    (None removes one); ``record``: the job record's path; ``run_dir``: the run's folder (checkpoints, log).
    """

    name: str
    command: tuple[str, ...]
    run_dir: str
    record: str
    launcher: str
    cores: tuple[int, ...] = ()
    environment: tuple[tuple[str, str | None], ...] = ()
    signal_delay_s: int = 90

    def __call__(self) -> None:
        job_id = submitit.JobEnvironment().job_id
        restarts = self._restarts()
        if restarts and not any(r.get("restart") == restarts for r in self._requeues()):
            failure = note_requeue(self, job_id=job_id, restart=restarts, reason=SLURM_REQUEUE)
            if failure:
                print(f"error: {failure}", flush=True)
                raise RunFailed(failure)
        if self.cores:
            os.sched_setaffinity(0, self.cores)
        self._process = subprocess.Popen(list(self.command), cwd=project_root(), stderr=subprocess.STDOUT,
                                         env=self.run_environment(job_id=job_id, restarts=restarts),
                                         preexec_fn=_ignore_preemption_signal)
        note_process(Path(self.record), self._process.pid)
        # a thread reaps the run: the preemption handler, which interrupts this thread, then waits for the run's
        # end without Popen.wait, whose lock this thread would hold (the handler would wait on it forever)
        reaper = threading.Thread(target=self._process.wait, daemon=True)
        reaper.start()
        while reaper.is_alive():
            reaper.join(timeout=1.0)
        status = self._process.returncode
        self._process = None
        if status != 0:
            raise RunFailed(f"{self.name}: python -m aiblib run ended with exit status {status}")

    def checkpoint(self) -> DelayedSubmission | None:
        """submitit's preemption signal: stop the run cleanly, note the requeue; None (no requeue) when the
        checkpoint has not advanced since the previous requeue."""
        self._stop_run()
        failure = note_requeue(self, job_id=submitit.JobEnvironment().job_id, restart=self._restarts() + 1,
                               reason=f"{PREEMPTION_SIGNAL.name}: preempted, or {self.signal_delay_s} s before its "
                                      "time limit")
        if failure:
            print(f"error: {failure}", flush=True)
            return None
        return DelayedSubmission(self)

    def run_environment(self, *, job_id: str, restarts: int, base: Mapping[str, str] = os.environ) -> dict[str, str]:
        """The run's environment: this process's, the job's own variables and the launcher's changes."""
        env = {**base, LAUNCHER_VARIABLE: self.launcher, JOB_ID_VARIABLE: str(job_id),
               RESTARTS_VARIABLE: str(restarts)}
        for key, value in self.environment:
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def _restarts(self) -> int:
        """How many times this job has started again: Slurm's count, or the requeues its record holds."""
        count = os.environ.get("SLURM_RESTART_COUNT")
        return int(count) if count else len(self._requeues())

    def _requeues(self) -> list[dict[str, Any]]:
        return (read_record(Path(self.record)) or {}).get("requeues", [])

    def _stop_run(self) -> None:
        """SIGTERM to the run, then wait for it to write ``last.pth`` and stop, within the signal's delay."""
        process = getattr(self, "_process", None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        if not _ended(process, seconds=max(self.signal_delay_s - 15, 5)):  # out of time: the scheduler kills it next
            process.kill()
            _ended(process, seconds=10)

    def __getstate__(self) -> dict[str, Any]:
        """What submitit pickles for the requeued job: everything but the running subprocess."""
        return {k: v for k, v in self.__dict__.items() if k != "_process"}


def _ended(process: subprocess.Popen, *, seconds: float) -> bool:
    """Whether the run ended within ``seconds`` (``poll`` never blocks on the lock a reaping thread holds)."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return process.poll() is not None


def _ignore_preemption_signal() -> None:
    """In the run's process, before it starts: ignore the preemption signal (see the module docstring), and take
    SIGINT as a run started by hand does (the local launcher starts its jobs with it ignored)."""
    signal.signal(PREEMPTION_SIGNAL, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def checkpoint_iteration(run_dir: Path) -> int | None:
    """The iteration of the run's ``last.pth``; None when it has none that loads."""
    path = last_checkpoint(run_dir)
    if not path.is_file():
        return None
    try:
        return int(safe_load(path)["iteration"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


def note_requeue(job: RunJob, *, job_id: str, restart: int, reason: str) -> str | None:
    """Note a requeue of ``job`` in its record and in the run's log; the line of the failure instead when the
    run's checkpoint is at the iteration of the previous requeue (nothing is noted then)."""
    record = read_record(Path(job.record)) or {"requeues": []}
    history = record.setdefault("requeues", [])
    iteration = checkpoint_iteration(Path(job.run_dir))
    if history and history[-1].get("iteration") == iteration:
        at = f"iteration {iteration}" if iteration is not None else "before its first checkpoint"
        return (f"{job.name} stopped twice at {at} without its checkpoint advancing (job {job_id}, "
                f"{len(history)} requeue(s)); it fails the same way twice and is not requeued again")
    entry = {"count": len(history) + 1, "restart": restart, "job_id": str(job_id), "reason": reason,
             "iteration": iteration, "time": round(time.time(), 3)}
    history.append(entry)
    write_record(Path(job.record), record)
    if Path(job.run_dir).is_dir():  # a run stopped before its training began has no log yet
        RunLog(Path(job.run_dir) / LOG_NAME, enabled=True).write(
            "event", iteration or 0, event="requeue", count=entry["count"], job_id=entry["job_id"], reason=reason)
    return None


def job_in_environment(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The job a run ran in, for its ``run.json``: a sweep's job (launcher, job id, restarts), or else the Slurm
    job it was started in; None outside both."""
    if LAUNCHER_VARIABLE in environ:
        return {"launcher": environ[LAUNCHER_VARIABLE], "id": environ.get(JOB_ID_VARIABLE),
                "restarts": int(environ.get(RESTARTS_VARIABLE) or 0)}
    if "SLURM_JOB_ID" in environ:
        return {"launcher": "slurm", "id": environ["SLURM_JOB_ID"],
                "restarts": int(environ.get("SLURM_RESTART_COUNT") or 0)}
    return None
