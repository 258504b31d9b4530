"""Where a sweep's jobs run, through submitit: on this machine (``local``) or on a Slurm cluster (``slurm``).

- ``local``: submitit's LocalExecutor, at most ``--jobs N`` runs at once. On a CUDA machine N defaults to the
  visible GPUs divided by the GPUs per run, each run on its own GPUs (``CUDA_VISIBLE_DEVICES``); on the CPU to 1.
  With N > 1 each run gets a disjoint share of this process's cores (its affinity) and ``OMP_NUM_THREADS`` = their
  count, so N runs never oversubscribe the CPU; with N = 1 the run's environment is left as it is. Nothing is passed
  as a parameter (``-p threads`` would change the run's record).
- ``slurm``: submitit's SlurmExecutor, one job per run, one task with ``--gpus`` GPUs and ``--cpus`` CPUs
  (``OMP_NUM_THREADS`` = cpus), ``--mem``, ``--time``, ``--partition``, ``--account`` and any other ``sbatch``
  option (``--sbatch "--qos high"``), signalled ``--signal-delay`` seconds before its time limit (submitit's
  ``--signal=USR2@delay``). The same keys may come from a YAML file's ``slurm:`` block (``--cluster FILE``); flags
  win over the file.

The job records and submitit's folder are under ``<runs>/jobs/`` (:mod:`.records`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import submitit
import torch
import yaml
from submitit.core.utils import FailedJobError

from aiblib.errors import ConfigError, MissingFile, UserError
from aiblib.paths import project_path
from aiblib.sweeps.job import RunJob
from aiblib.sweeps.records import jobs_folder, new_record, record_path, write_record

__all__ = ["SlurmOptions", "Slot", "slurm_options", "parse_time", "local_slots", "check_slurm_commands",
           "LocalLauncher", "SlurmLauncher", "LAUNCHERS", "SLURM_KEYS"]

LAUNCHERS = ("local", "slurm")
LOCAL_TIMEOUT_MIN = 60 * 24 * 365  # the local executor's time limit: none worth the name
MAX_REQUEUES = 100  # submitit's count of time-limit requeues; a run that stops advancing fails before (.job)


@dataclass(frozen=True)
class SlurmOptions:
    """What each run's Slurm job asks for; None: the cluster's default."""

    time: str | None = None
    partition: str | None = None
    account: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    mem: str | None = None
    sbatch: str | dict | None = None
    signal_delay: int = 90


SLURM_KEYS = tuple(f.name for f in dataclasses.fields(SlurmOptions))


def slurm_options(flags: dict[str, Any], cluster_file: str | None) -> SlurmOptions:
    """The ``slurm:`` block of ``cluster_file`` (if any), then the flags that were given."""
    values: dict[str, Any] = {}
    if cluster_file:
        path = project_path(cluster_file)
        if not path.is_file():
            raise MissingFile(f"--cluster {cluster_file}: no such file ({path})")
        block = (yaml.safe_load(path.read_text()) or {}).get("slurm") if path.suffix in (".yaml", ".yml") else None
        if not isinstance(block, dict):
            raise ConfigError(f"--cluster {cluster_file}: expected a YAML file with a 'slurm:' mapping")
        values = {str(k).replace("-", "_"): v for k, v in block.items()}
        unknown = sorted(set(values) - set(SLURM_KEYS))
        if unknown:
            raise ConfigError(f"--cluster {cluster_file}: unknown key(s) {', '.join(unknown)} in 'slurm:'; "
                              f"expected {', '.join(SLURM_KEYS)}")
    values.update({k: v for k, v in flags.items() if v is not None})
    options = SlurmOptions(**values)
    if options.time is None:
        raise ConfigError("--launcher slurm needs --time (each run's time limit, e.g. 24:00:00): its job is "
                          "signalled --signal-delay seconds before it, to checkpoint and requeue")
    parse_time(str(options.time))
    return options


def parse_time(text: str) -> int:
    """Slurm's time formats (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in whole minutes."""
    days, dash, rest = text.partition("-") if "-" in text else ("0", "", text)
    fields = rest.split(":")
    if dash:  # days-hours[:minutes[:seconds]]
        hms = (fields + ["0", "0"])[:3] if len(fields) <= 3 else []
    else:  # minutes, minutes:seconds, hours:minutes:seconds
        hms = {1: ["0", *fields, "0"], 2: ["0", *fields], 3: fields}.get(len(fields), [])
    if not (days.isdigit() and len(hms) == 3 and all(f.isdigit() for f in hms)):
        raise ConfigError(f"--time {text!r}: expected a Slurm time limit, e.g. 90, 24:00:00 or 2-00:00:00")
    hours, minutes, seconds = map(int, hms)
    return max(1, int(days) * 1440 + hours * 60 + minutes + (seconds + 59) // 60)


@dataclass(frozen=True)
class Slot:
    """One place a local run runs in: its CPU cores (empty: the whole machine) and CUDA devices (None: none)."""

    cores: tuple[int, ...] = ()
    cuda_devices: str | None = None


def _visible_gpus() -> list[str]:
    """The CUDA devices this process sees, as ``CUDA_VISIBLE_DEVICES`` names them."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    named = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return named[:count] if len(named) >= count else [str(i) for i in range(count)]


def local_slots(jobs: int | None, *, gpus_per_run: int, cores: list[int] | None = None,
                gpus: list[str] | None = None) -> list[Slot]:
    """``jobs`` places (default: one per ``gpus_per_run`` visible GPUs, or 1 on the CPU), each with a disjoint
    share of ``cores`` (this process's) when there are several."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else cores
    gpus = (_visible_gpus() if gpus is None else gpus) if gpus_per_run > 0 else []
    if gpus and gpus_per_run > len(gpus):
        raise ConfigError(f"--gpus {gpus_per_run}: this machine shows {len(gpus)} CUDA device(s)")
    jobs = jobs or max(1, len(gpus) // max(gpus_per_run, 1))
    if gpus and jobs * gpus_per_run > len(gpus):
        raise ConfigError(f"--jobs {jobs} with --gpus {gpus_per_run}: needs {jobs * gpus_per_run} CUDA devices, "
                          f"this machine shows {len(gpus)}")
    if jobs > len(cores):
        raise ConfigError(f"--jobs {jobs}: more runs at once than the {len(cores)} CPU core(s) this process may use")
    shares = [tuple(cores[i * len(cores) // jobs:(i + 1) * len(cores) // jobs]) for i in range(jobs)] if jobs > 1 \
        else [()]
    devices = [",".join(gpus[i * gpus_per_run:(i + 1) * gpus_per_run]) if gpus else None for i in range(jobs)]
    return [Slot(cores=share, cuda_devices=device) for share, device in zip(shares, devices)]


def _submitted(job: RunJob, handle: submitit.Job, *, runs: str, launcher: str) -> submitit.Job:
    """Write the run's job record for ``handle``, just submitted."""
    write_record(record_path(runs, job.name), new_record(launcher=launcher, job_id=handle.job_id,
                                                         log=handle.paths.stdout, submitted=time.time()))
    return handle


class LocalLauncher:
    """Runs jobs on this machine, each in a :class:`Slot`; the caller keeps at most one job per slot."""

    name = "local"

    def __init__(self, runs: str, *, slots: list[Slot], signal_delay: int = 90) -> None:
        self.runs, self.slots, self.signal_delay = runs, slots, signal_delay
        self.executor = submitit.LocalExecutor(folder=jobs_folder(runs) / "submitit")
        self.executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, signal_delay_s=signal_delay)

    def job(self, *, name: str, command: tuple[str, ...], run_dir: Path, slot: Slot) -> RunJob:
        """What a run in ``slot`` runs: pinned to the slot's cores, its threads and CUDA devices set when shared."""
        environment: list[tuple[str, str | None]] = [
            ("CUDA_VISIBLE_DEVICES", slot.cuda_devices if slot.cuda_devices is not None
             else os.environ.get("CUDA_VISIBLE_DEVICES"))]
        if slot.cores:
            environment.append(("OMP_NUM_THREADS", str(len(slot.cores))))
        return RunJob(name=name, command=command, run_dir=str(run_dir), record=str(record_path(self.runs, name)),
                      launcher=self.name, cores=slot.cores, environment=tuple(environment),
                      signal_delay_s=self.signal_delay)

    def submit(self, job: RunJob) -> submitit.Job:
        """Start ``job``. Its submitit processes inherit SIGINT ignored: a terminal's Ctrl-C reaches the runner
        and the run (which sets SIGINT back, :mod:`.job`), which stop cleanly, not submitit's controller, which
        would kill the job at once and print a traceback on the terminal."""
        with _sigint_ignored():
            handle = self.executor.submit(job)
        return _submitted(job, handle, runs=self.runs, launcher=self.name)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while inside (in the main thread: only it may set handlers), for the processes started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_slurm_commands() -> None:
    """ConfigError unless Slurm's ``sbatch`` and ``srun`` are on PATH."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if missing:
        raise ConfigError(f"--launcher slurm: {' and '.join(missing)} not found on PATH; run the sweep on a machine "
                          "that submits Slurm jobs, or use --launcher local")


def _sbatch_options(extra: str | dict | None) -> dict[str, Any]:
    """``"--qos high --exclusive"`` (or a mapping) as submitit's additional sbatch parameters."""
    if isinstance(extra, dict):
        return {str(k).lstrip("-"): v for k, v in extra.items()}
    words, out = shlex.split(extra or ""), {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            if i == 0 or not words[i - 1].startswith("--") or "=" in words[i - 1]:
                raise ConfigError(f"--sbatch {extra!r}: expected sbatch options (--name value or --name=value)")
            continue
        key, eq, value = word[2:].partition("=")
        following = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else None
        out[key] = value if eq else (following if following is not None else True)
    return out


class SlurmLauncher:
    """Submits one Slurm job per run (see the module docstring)."""

    name = "slurm"

    def __init__(self, runs: str, *, options: SlurmOptions) -> None:
        check_slurm_commands()
        self.runs, self.options = runs, options
        self.executor = submitit.SlurmExecutor(folder=jobs_folder(runs) / "submitit", max_num_timeout=MAX_REQUEUES)
        extra = _sbatch_options(options.sbatch)
        if options.mem:
            extra["mem"] = str(options.mem)
        if options.account:
            extra["account"] = str(options.account)
        self.executor.update_parameters(
            time=parse_time(str(options.time)), nodes=1, ntasks_per_node=1, signal_delay_s=int(options.signal_delay),
            **({"partition": str(options.partition)} if options.partition else {}),
            **({"gpus_per_node": int(options.gpus)} if options.gpus else {}),
            **({"cpus_per_task": int(options.cpus)} if options.cpus else {}),
            additional_parameters=extra)

    def job(self, *, name: str, command: tuple[str, ...], run_dir: Path) -> RunJob:
        environment = (("OMP_NUM_THREADS", str(self.options.cpus)),) if self.options.cpus else ()
        return RunJob(name=name, command=command, run_dir=str(run_dir), record=str(record_path(self.runs, name)),
                      launcher=self.name, environment=environment, signal_delay_s=int(self.options.signal_delay))

    def submit(self, job: RunJob) -> submitit.Job:
        """Submit ``job``; a refused submission is one line naming the run and sbatch's last words."""
        self.executor.update_parameters(job_name=job.name)
        try:
            handle = self.executor.submit(job)
        except FailedJobError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise UserError(f"sbatch refused the job of {job.name}: {lines[-1] if lines else exc}") from None
        return _submitted(job, handle, runs=self.runs, launcher=self.name)
