"""Training on several processes from a notebook: torchrun as a subprocess.

``launch(cfg, 4)`` writes the configuration to a temporary YAML file and runs
``python -m torch.distributed.run --standalone --nproc_per_node=4 -m aiblib train -f FILE``,
printing its output line by line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from aiblib.config import Config

__all__ = ["launch", "torchrun_command"]


def torchrun_command(params_file: str | Path, nproc_per_node: int) -> list[str]:
    """The command line of a one-machine DDP run of a parameter file (what :func:`launch` runs)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
            "-m", "aiblib", "train", "-f", str(params_file)]


def launch(cfg: Config, nproc_per_node: int, *, env: dict[str, str] | None = None) -> Path:
    """Train ``cfg`` with ``nproc_per_node`` processes under torchrun, from a notebook.

    The configuration goes through a temporary YAML file; the processes' output is
    printed line by line. Returns the run directory; raises ``RuntimeError`` (with the
    last lines of output) when the run fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "config.yaml"
        cfg.save(params)
        command = torchrun_command(params, nproc_per_node)
        child_env = {**os.environ, **(env or {})}
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            child_env.pop(key, None)
        tail: list[str] = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                tail = (tail + [line])[-150:]
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}:\n{''.join(tail)}")
    return cfg.resolved_run_dir()
