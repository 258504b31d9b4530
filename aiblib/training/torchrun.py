"""Training on several processes from a notebook: torchrun as a subprocess.

``launch(cfg, 4)`` writes the configuration to a temporary YAML file and runs
``python -m torch.distributed.run --standalone --nproc_per_node=4 -m aiblib train -f FILE``,
printing its output line by line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from aiblib.config import Config, images_per_process
from aiblib.errors import Interrupted, UserError, WorkerFailed

# the line of a training stopped by a signal (see aiblib.training.loop)
STOPPED = re.compile(r"error: (training stopped by (SIG[A-Z]+)\b.*)$")
ERROR = re.compile(r"error: (.+)$")  # the one line of an error every rank stopped on (aiblib.cli.common)
WORKER_DIED = re.compile(r"(a )?data-loader worker")  # WorkerFailed's lines (aiblib.data.loading)

__all__ = ["launch", "torchrun_command", "launch_failure"]


def torchrun_command(params_file: str | Path, nproc_per_node: int) -> list[str]:
    """The command line of a one-machine DDP run of a parameter file (what :func:`launch` runs)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
            "-m", "aiblib", "train", "-f", str(params_file)]


def launch(cfg: Config, nproc_per_node: int, *, env: dict[str, str] | None = None) -> Path:
    """Train ``cfg`` with ``nproc_per_node`` processes under torchrun, from a notebook.

    The configuration goes through a temporary YAML file; the processes' output is
    printed line by line. Returns the run directory. An interrupt of this process (Ctrl-C,
    the notebook's interrupt button) is passed on to torchrun once, whose workers then save
    and stop: that raises :class:`~aiblib.errors.Interrupted`, as training does in one
    process; a damaged data file or a dead data-loader worker raises its one line (:func:`launch_failure`);
    any other failure raises ``RuntimeError`` with the last lines of output.
    """
    images_per_process(cfg, nproc_per_node)  # a split that does not divide is refused before anything starts
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "config.yaml"
        cfg.save(params)
        command = torchrun_command(params, nproc_per_node)
        child_env = {**os.environ, **(env or {})}
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            child_env.pop(key, None)
        # its own session: a terminal's Ctrl-C reaches this process only, which passes it on once
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
                              start_new_session=True) as proc:
            tail = _relay(proc)
        if proc.returncode != 0:
            raise launch_failure(command, proc.returncode, tail)
    return cfg.resolved_run_dir()


def launch_failure(command: list[str], returncode: int, tail: list[str]) -> Exception:
    """What a failed torchrun raises in the notebook: :class:`~aiblib.errors.Interrupted` for a stop on a
    signal; for the one ``error: ...`` line the ranks print (a damaged file, a user's mistake) that line as a
    ``UserError`` (``WorkerFailed`` for a dead data-loader worker); else ``RuntimeError`` with the output's tail."""
    stopped = next((m for line in reversed(tail) if (m := STOPPED.search(line))), None)
    if stopped:
        return Interrupted(stopped.group(1), signal_number=int(signal.Signals[stopped.group(2)]))
    line = next((m.group(1) for line in reversed(tail) if (m := ERROR.match(line.strip()))), None)
    if line is not None and "Traceback" not in "".join(tail).split("error: ")[0]:
        return WorkerFailed(line) if WORKER_DIED.match(line) else UserError(line)
    return RuntimeError(f"{' '.join(command)} exited with {returncode}:\n{''.join(tail)}")


def _relay(proc: subprocess.Popen) -> list[str]:
    """Print the child's output line by line until it exits; the last 150 lines. A KeyboardInterrupt
    is sent on to the child as SIGINT (a second one stops it at once) and the output read on."""
    assert proc.stdout is not None
    tail: list[str] = []
    while True:
        try:
            for line in proc.stdout:
                print(line, end="", flush=True)
                tail = (tail + [line])[-150:]
            proc.wait()
            return tail
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
