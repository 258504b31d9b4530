"""Sweeps: a grid of runs (baseline and each β, per seed) run as jobs on this machine or on a Slurm cluster.

:mod:`.grid` (the runs and their names), :mod:`.job` (what one job runs: a run, stopped cleanly and requeued on
preemption), :mod:`.records` (the job record of each run), :mod:`.launchers` (local and Slurm, through submitit).
:mod:`.status` (each run's state) and :mod:`.runner` (the sweep start to end, and 04's report) load the notebook
stack and are imported by their own path, so that a job process starts without it.

Floor 8: imports floors 0-7 (``aiblib.notebooks``, ``aiblib.storage``, ``aiblib.errors``, ``aiblib.paths``); only
``aiblib.cli`` imports it.
"""

from aiblib.sweeps.grid import AIBLIB, RunSpec, Sweep, check_betas, check_seeds, expand, file_value, run_arguments
from aiblib.sweeps.job import (
    JOB_ID_VARIABLE,
    LAUNCHER_VARIABLE,
    PREEMPTION_SIGNAL,
    RESTARTS_VARIABLE,
    RunFailed,
    RunJob,
    checkpoint_iteration,
    job_in_environment,
    note_requeue,
)
from aiblib.sweeps.launchers import (
    LAUNCHERS,
    SLURM_KEYS,
    LocalLauncher,
    Slot,
    SlurmLauncher,
    SlurmOptions,
    check_slurm_commands,
    local_slots,
    parse_time,
    slurm_options,
)
from aiblib.sweeps.records import jobs_folder, new_record, note_process, read_record, record_path, write_record

__all__ = [
    "AIBLIB", "RunSpec", "Sweep", "check_betas", "check_seeds", "expand", "file_value", "run_arguments",
    "JOB_ID_VARIABLE", "LAUNCHER_VARIABLE", "PREEMPTION_SIGNAL", "RESTARTS_VARIABLE", "RunFailed", "RunJob",
    "checkpoint_iteration", "job_in_environment", "note_requeue",
    "LAUNCHERS", "SLURM_KEYS", "LocalLauncher", "Slot", "SlurmLauncher", "SlurmOptions", "check_slurm_commands",
    "local_slots", "parse_time", "slurm_options",
    "jobs_folder", "new_record", "note_process", "read_record", "record_path", "write_record",
]
