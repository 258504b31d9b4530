"""A sweep from start to end: the grid's runs not yet done, each as a job of the chosen launcher, then 04's report.

Every run is ``python -m aiblib run NAME ... --skip-done --step K/N`` (:mod:`.grid`), labelled as the Makefile's
loop labelled it: run i is steps 2i-1 (01-train) and 2i (02), the report the last step. A run already done
(:func:`aiblib.sweeps.status.run_done`) is named and skipped without a job. On this machine the runner keeps at
most one job per slot of the launcher and prints each job's log as it grows (prefixed by the run's name when
several run at once); on Slurm it submits every job, then (unless told not to wait) follows their states with
``squeue`` and prints each change. When every run is done it writes 04's report into ``DIR/04-report.ipynb``, as
``make report RESULTS=DIR`` does; a run that failed is named with the last line of its log, and the report waits.

**Interrupted** (Ctrl-C, or SIGTERM to the runner: noted, and acted on between polls): on this machine the runner
starts no further run, sends each running run SIGTERM (a terminal's Ctrl-C has reached it already; a repeated signal
changes nothing), waits for it to write ``last.pth`` and stop while its log goes on showing, and ends with one line
naming where each run stopped and the runs not started: exit status 130 (143 for SIGTERM), and the same command
continues. A second Ctrl-C stops the wait. On Slurm the submitted jobs go on: the line says so and how to follow or
cancel them.

Imported by its own path (``from aiblib.sweeps.runner import ...``): it loads the notebook stack.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiblib.errors import Interrupted
from aiblib.notebooks import NOTEBOOKS, RUN_RECORD, code_digest, notebook_parameters, parse_values, run_notebook
from aiblib.paths import project_path
from aiblib.sweeps.grid import AIBLIB, RunSpec, Sweep, expand, run_arguments
from aiblib.sweeps.job import checkpoint_iteration
from aiblib.sweeps.launchers import LocalLauncher, SlurmLauncher
from aiblib.sweeps.records import read_record, record_path
from aiblib.sweeps.status import RunState, is_submitit_line, last_log_line, process_alive, run_done, run_states

__all__ = ["run_sweep", "write_report", "LOCAL_POLL_S", "SLURM_POLL_S"]

LOCAL_POLL_S = 1.0  # how often the runner looks at its local jobs and their logs
SLURM_POLL_S = 15.0  # how often it asks squeue


class _StopRequests:
    """``with _StopRequests() as stop:`` notes SIGINT / SIGTERM in ``stop.signal_number`` (0: none yet; in the main
    thread, the only one that may set handlers), for the loops to act on between polls, so that a job being
    submitted is never lost; a second SIGINT raises ``KeyboardInterrupt``. Training's own ``StopRequests`` does the
    same around a training step; it stays inside ``aiblib.training``, whose files the code digest covers."""

    def __init__(self) -> None:
        self.signal_number = 0
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        if self.signal_number and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_number = self.signal_number or signum

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._note) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _said(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _sleep(seconds: float, stop: _StopRequests) -> None:
    """Sleep ``seconds``, or less once a stop signal has been noted."""
    deadline = time.monotonic() + seconds
    while not stop.signal_number and time.monotonic() < deadline:
        time.sleep(min(0.1, seconds))


class _LogFollower:
    """Prints the lines a job's log gains, each with ``prefix`` (submitit's own lines stay in the log)."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path, self.prefix, self.offset, self.partial = Path(path), prefix, 0, b""

    def show(self, *, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines, self.partial = [*lines, self.partial], b""
        for line in (raw.decode(errors="replace") for raw in lines):
            if not is_submitit_line(line):
                print(self.prefix + line, flush=True)


def _steps(specs: list[RunSpec]) -> dict[str, str]:
    total = 2 * len(specs) + 1
    return {spec.name: f"{2 * i + 1}/{total}" for i, spec in enumerate(specs)}


def _not_done(specs: list[RunSpec], *, sweep: Sweep, steps: dict[str, str], digest: str) -> list[RunSpec]:
    """The runs still to run; each done one is named as ``aiblib run --skip-done`` names it."""
    todo = []
    for spec in specs:
        if run_done(spec, results=sweep.results, digest=digest):
            marker = project_path(sweep.results) / spec.name / RUN_RECORD
            print(f"[{steps[spec.name]}] {spec.name}: already done with these parameters and this code ({marker}); "
                  "skipped", flush=True)
        else:
            todo.append(spec)
    return todo


def _run_local(todo: list[RunSpec], *, sweep: Sweep, launcher: LocalLauncher, commands: dict[str, tuple[str, ...]],
               poll_s: float, digest: str) -> list[RunState]:
    """Each run as a local job, at most one per slot; the runs that ended without being done. SIGINT or SIGTERM is
    noted (:class:`_StopRequests`, so a job being submitted is not lost) and acted on
    between polls: the running runs stopped (:func:`_stop_local`), then :class:`~aiblib.errors.Interrupted`
    naming what was left."""
    pending, running, failed = list(todo), {}, []
    shared = len(launcher.slots) > 1
    with _StopRequests() as stop:
        while (pending or running) and not stop.signal_number:
            for index, slot in enumerate(launcher.slots):
                if index not in running and pending and not stop.signal_number:
                    spec = pending.pop(0)
                    job = launcher.job(name=spec.name, command=commands[spec.name], slot=slot,
                                       run_dir=project_path(sweep.runs) / spec.name)
                    handle = launcher.submit(job)
                    prefix = f"[{spec.name}] " if shared else ""
                    running[index] = (spec, handle, _LogFollower(handle.paths.stdout, prefix))
            for index, (spec, handle, follower) in list(running.items()):
                ended = handle.done()
                follower.show(final=ended)
                if ended:
                    del running[index]
                    if not run_done(spec, results=sweep.results, digest=digest):
                        failed.append(RunState(spec.name, "failed", handle.job_id, last_log_line(handle.paths.stdout)))
            if running:
                _sleep(poll_s, stop)
        if stop.signal_number:
            left = _stop_local(list(running.values()), runs=sweep.runs, seconds=launcher.signal_delay,
                               poll_s=min(poll_s, 0.2))
            raise Interrupted(_interrupted_line(stop.signal_number, stopped=left, runs=sweep.runs, not_started=pending),
                              signal_number=stop.signal_number)
    return failed


def _stop_local(jobs: list[tuple[RunSpec, Any, _LogFollower]], *, runs: str, seconds: float,
                poll_s: float) -> dict[str, bool]:
    """SIGTERM to each running run, through the pid its job notes in the job record when it starts the run (a job
    that has not yet started it is signalled as soon as it has), then wait up to ``seconds`` for every run and its
    job to end, their logs still shown; a second Ctrl-C stops the wait. Run name -> whether it has ended."""
    signalled: dict[str, int] = {}

    def signal_started_runs() -> None:
        for spec, _, _ in jobs:
            pid = (read_record(record_path(runs, spec.name)) or {}).get("pid")
            if spec.name not in signalled and isinstance(pid, int) and process_alive(pid):
                os.kill(pid, signal.SIGTERM)
                signalled[spec.name] = pid

    def ended(name: str, handle: Any) -> bool:
        return handle.done() and not (name in signalled and process_alive(signalled[name]))

    if jobs:
        print(f"sweep: stopping {', '.join(spec.name for spec, _, _ in jobs)}: each writes last.pth and stops "
              "(Ctrl-C again: stop waiting)", file=sys.stderr, flush=True)
    deadline = time.monotonic() + seconds
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C (_StopRequests raises it)
        while not all(ended(spec.name, handle) for spec, handle, _ in jobs) and time.monotonic() < deadline:
            signal_started_runs()
            for _, _, follower in jobs:
                follower.show()
            time.sleep(poll_s)
    for spec, handle, follower in jobs:
        follower.show(final=ended(spec.name, handle))
    return {spec.name: ended(spec.name, handle) for spec, handle, _ in jobs}


def _interrupted_line(signum: int, *, stopped: dict[str, bool], runs: str, not_started: list[RunSpec]) -> str:
    """What an interrupted local sweep left: where each running run stopped, and the runs not started."""
    parts = []
    for name, ended in stopped.items():
        if not ended:
            parts.append(f"{name} is still stopping")
            continue
        iteration = checkpoint_iteration(project_path(runs) / name)
        parts.append(f"{name} stopped" + (f", its last.pth at iteration {iteration}" if iteration is not None else ""))
    if not_started:
        names = [spec.name for spec in not_started]
        parts.append(f"{len(names)} run(s) not started ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
    return (f"sweep interrupted ({_said(signum)}): {'; '.join(parts) or 'no run was running'}; the same command "
            "continues where it stopped")


def _run_slurm(todo: list[RunSpec], *, sweep: Sweep, launcher: SlurmLauncher, commands: dict[str, tuple[str, ...]],
               steps: dict[str, str], wait: bool, poll_s: float, digest: str) -> list[RunState] | None:
    """Submit each run as a Slurm job; then, when waiting, follow them until none is queued or running: the runs
    that ended without being done. None when not waiting."""
    for spec in todo:
        handle = launcher.submit(launcher.job(name=spec.name, command=commands[spec.name],
                                              run_dir=project_path(sweep.runs) / spec.name))
        print(f"[{steps[spec.name]}] {spec.name}: submitted as Slurm job {handle.job_id}; its log: "
              f"{handle.paths.stdout}", flush=True)
    if not wait or not todo:
        return None if not wait else []
    width, shown = max(len(spec.name) for spec in todo), {}
    with _StopRequests() as stop:
        while True:
            states = run_states(todo, results=sweep.results, runs=sweep.runs, digest=digest)
            for state in states:
                if shown.get(state.name) != state.line():
                    shown[state.name] = state.line()
                    print(state.line(width), flush=True)
            if not any(state.state in ("running", "queued") for state in states):
                return [state for state in states if state.state != "done"]
            _sleep(poll_s, stop)
            if stop.signal_number:
                raise Interrupted(f"sweep interrupted ({_said(stop.signal_number)}) while following its {len(todo)} "
                                  "Slurm job(s): they go on; --status follows them, --report writes the report once "
                                  "they are done, scancel stops them", signal_number=stop.signal_number)


def write_report(results: str, *, label: str = "") -> None:
    """04-report over ``results`` into ``results/04-report.ipynb``, as ``make report RESULTS=results``."""
    notebook = NOTEBOOKS / "04-report.ipynb"
    params = notebook_parameters(notebook, params_file=None, given=parse_values([("results_root", results)]))
    run_notebook(notebook, project_path(results) / notebook.name, parameters=params, label=label)


def run_sweep(sweep: Sweep, launcher: LocalLauncher | SlurmLauncher, *, wait: bool = True,
              program: tuple[str, ...] = AIBLIB, poll_s: float | None = None) -> int:
    """Run what is not done of ``sweep`` with ``launcher``, then the report; the exit status (1: a run failed).

    ``program``: what runs ``run NAME ...`` (``python -m aiblib``). ``wait=False`` (Slurm): submit and return."""
    start = time.perf_counter()
    specs = expand(sweep)
    steps = _steps(specs)
    digest = code_digest()  # the code this sweep runs: a run is done when its run.json records it
    todo = _not_done(specs, sweep=sweep, steps=steps, digest=digest)
    print(f"sweep: {len(specs)} runs, {len(specs) - len(todo)} done, {len(todo)} to run ({launcher.name})",
          flush=True)
    commands = {spec.name: (*program, *run_arguments(spec, results=sweep.results, step=steps[spec.name]))
                for spec in todo}
    if isinstance(launcher, LocalLauncher):
        failed = _run_local(todo, sweep=sweep, launcher=launcher, commands=commands, poll_s=poll_s or LOCAL_POLL_S,
                            digest=digest)
    else:
        failed = _run_slurm(todo, sweep=sweep, launcher=launcher, commands=commands, steps=steps, wait=wait,
                            poll_s=poll_s or SLURM_POLL_S, digest=digest)
    if failed is None:
        print(f"sweep: {len(todo)} job(s) submitted; `--status` follows them, `--report` writes the report once "
              "they are done", flush=True)
        return 0
    if failed:
        width = max(len(state.name) for state in failed)
        for state in failed:
            print(f"error: {state.line(width).strip()}", file=sys.stderr, flush=True)
        print(f"error: {len(failed)} of {len(specs)} runs failed; the report waits for every run (rerun the same "
              "command: the finished runs are skipped)", file=sys.stderr, flush=True)
        return 1
    write_report(sweep.results, label=f"[{2 * len(specs) + 1}/{2 * len(specs) + 1}] ")
    print(f"sweep: done in {time.perf_counter() - start:.0f} s; the report is {sweep.results}/README.md", flush=True)
    return 0
