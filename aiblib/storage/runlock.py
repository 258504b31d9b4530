"""One writer per run directory: ``run_dir/.lock``, held while a training runs.

The lock is a small JSON file created with ``O_EXCL``::

    {"pid": 4242, "host": "node7", "started": "2026-05-09T10:31:02", "pid_started": "8812345",
     "command": "python -m aiblib train -f params/synthetic-dg.yaml"}

(``pid_started`` is the process's start time from ``/proc``, so a reused process id is not
taken for the holder; null where ``/proc`` is missing). A lock whose process is gone, on this
host, is stale: it is taken over with a one-line warning. A lock held by a running process, or
by one on another host (which cannot be checked from here), refuses with
:class:`~aiblib.errors.RunLockedError` naming the process id and the host. Evaluation and the
notebooks read a run without the lock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from aiblib.errors import RunLockedError
from aiblib.storage.atomic import reporting

__all__ = ["RunLock", "LOCK_NAME", "read_lock"]

LOCK_NAME = ".lock"
UNREADABLE_GRACE_S = 10.0  # an unreadable lock younger than this may be one being written


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _parse(text: str) -> dict | None:
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def read_lock(run_dir: str | os.PathLike) -> dict | None:
    """The lock record of ``run_dir`` (None when unlocked or unreadable)."""
    text = _read(Path(run_dir) / LOCK_NAME)
    return None if text is None else _parse(text)


def _age(path: Path) -> float:
    """Seconds since ``path`` was written (0 when it is gone)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _running(holder: dict) -> bool:
    """Whether the holder may still run: on another host (unknowable), or its process alive here."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    started = holder.get("pid_started")
    return started is None or _start_time(pid) in (None, started)


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/.lock`` (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._text: str | None = None  # what this process wrote, while it holds the lock

    def _create(self) -> bool:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "pid_started": _start_time(os.getpid()), "command": " ".join(sys.argv)}
        text = json.dumps(record)
        with reporting(self.path, "; nothing was written"):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                self.path.unlink(missing_ok=True)
                raise
        self._text = text
        return True

    def _refuse(self, holder: dict | None) -> RunLockedError:
        run_dir = self.path.parent
        if holder is None:
            return RunLockedError(f"run directory {run_dir} is locked by {self.path}, which is unreadable (being "
                                  f"written?); if no training runs there, delete {self.path}")
        return RunLockedError(
            f"run directory {run_dir} is in use by process {holder['pid']} on {holder.get('host')} (training since "
            f"{holder.get('started')}); wait for it to finish or stop it; if no such process runs, delete {self.path}")

    def acquire(self) -> "RunLock":
        """Take the lock, taking over a stale one (with a warning on stderr); :class:`RunLockedError` when held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            if self._create():
                return self
            text = _read(self.path)
            if text is None:
                continue  # released meanwhile
            holder = _parse(text)
            if holder is None and _age(self.path) < UNREADABLE_GRACE_S:
                raise self._refuse(None)
            if holder is not None and _running(holder):
                raise self._refuse(holder)
            who = "unreadable" if holder is None else f"of process {holder['pid']} on {holder.get('host')}, not running"
            print(f"warning: taking over the stale lock {self.path} ({who})", file=sys.stderr, flush=True)
            if _read(self.path) == text:  # nobody took it over meanwhile
                self.path.unlink(missing_ok=True)
        raise RunLockedError(f"could not take the lock {self.path}: other processes keep taking it")

    def release(self) -> None:
        """Remove the lock if this process still holds it."""
        if self._text is not None and _read(self.path) == self._text:
            self.path.unlink(missing_ok=True)
        self._text = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
