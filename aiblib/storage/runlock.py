"""One writer per run directory: ``run_dir/.lock``, held while a training runs.

The lock is the kernel's ``flock`` on that file, taken without waiting; the file holds the holder's
record, for the message of whoever is refused::

    {"pid": 4242, "host": "node7", "started": "2026-05-09T10:31:02",
     "command": "python -m aiblib train -f params/synthetic-dg.yaml"}

Why ``flock`` (and not a file created with ``O_EXCL``, judged stale from its record and unlinked, which
let two processes both take over one stale lock): taking it is atomic, so of any number of processes
racing for a lock exactly one gets it, and the kernel lets go of it when its holder dies, however it
dies (``kill -9``, the OOM killer, a power cut), so staleness needs no judging: a lock file whose
``flock`` is free is stale and is taken over, with a one-line warning naming the dead holder. A held
lock refuses with :class:`~aiblib.errors.RunLockedError` naming the holder's process id and host.
A link- or rename-based takeover would be atomic on any file system too, but it must still judge from
the record whether the holder runs, which no machine can do for a process on another one.

Several machines: Linux's NFS client turns ``flock`` into NFS byte-range locks, which the server
arbitrates between machines (GPFS, CephFS and Lustre mounted with ``-o flock`` do the same); a file
system without locks refuses in one line. A record of another host is never taken over, even with its
``flock`` free (a file system whose locks are local to each machine could not tell whether that
process runs): delete it by hand. Releasing unlinks the file before letting go of the ``flock``; a
process that locked the unlinked file finds another file at the path and locks that one instead.
A data-loader worker forked by the training shares its ``flock``; workers die with the training
(:func:`aiblib.data.worker_init`). Evaluation and the notebooks read a run without the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from aiblib.errors import RunLockedError, UserError
from aiblib.storage.atomic import reporting

__all__ = ["RunLock", "LOCK_NAME"]

LOCK_NAME = ".lock"
_RECORD_MAX = 1 << 16  # bytes of the record read back (a record is about 200)
_HOLDER_WAIT_S = 1.0  # how long a refused process waits for the holder's record to be written


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


def _flock(fd: int, path: Path) -> bool:
    """Take ``fd``'s exclusive ``flock`` without waiting: False when another open file holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # ENOLCK, EOPNOTSUPP: a file system without locks
        raise UserError(f"cannot lock {path}: {exc.strerror}; put the run directory on a file system that offers "
                        "file locks (NFS with its lock service running, Lustre mounted with -o flock)") from None
    return True


def _alive(holder: dict) -> bool:
    """Whether the process a record names may run: on another host (unknowable), or alive here."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return holder["pid"] > 0
    return holder["pid"] > 0


def _at_path(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (a release unlinks it)."""
    try:
        here = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/.lock`` (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None  # the lock file, its flock held, while this process holds the lock

    def _refuse(self, holder: dict | None) -> RunLockedError:
        run_dir = self.path.parent
        if holder is None:
            return RunLockedError(f"run directory {run_dir} is locked by {self.path}, which is unreadable (being "
                                  f"written?); if no training runs there, delete {self.path}")
        return RunLockedError(
            f"run directory {run_dir} is in use by process {holder['pid']} on {holder.get('host')} (training since "
            f"{holder.get('started')}); wait for it to finish or stop it; if no such process runs, delete {self.path}")

    def _holder(self) -> tuple[dict | None, bool]:
        """The record of the process that holds the flock (None: unreadable) and whether the file is gone meanwhile.

        A holder that has just taken a stale lock over writes its record a moment later: till then the file
        holds the dead process's record, or none; it is read again, for up to a second, to name the live one.
        """
        end = time.monotonic() + _HOLDER_WAIT_S
        while True:
            text = _read(self.path)
            if text is None:
                return None, True
            holder = _parse(text)
            if (holder is not None and _alive(holder)) or time.monotonic() > end:
                return holder, False
            time.sleep(0.02)

    def _take(self, fd: int) -> None:
        """With ``fd``'s flock held: refuse a record of another host, warn of a stale one, write this process's."""
        text = os.pread(fd, _RECORD_MAX, 0).decode("utf-8", "replace")
        holder = _parse(text)
        if holder is not None and holder.get("host") != socket.gethostname():
            raise self._refuse(holder)  # its process cannot be checked from here
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "command": " ".join(sys.argv)}
        with reporting(self.path, "; nothing was written"):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
        if text.strip():
            who = "unreadable" if holder is None else f"of process {holder['pid']} on {holder.get('host')}, not running"
            print(f"warning: taking over the stale lock {self.path} ({who})", file=sys.stderr, flush=True)

    def acquire(self) -> "RunLock":
        """Take the lock, taking over a stale one (with a warning on stderr); :class:`RunLockedError` when held."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            with reporting(self.path, "; nothing was written"):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _flock(fd, self.path):
                    holder, gone = self._holder()
                    if not gone:  # else released meanwhile: try again
                        raise self._refuse(holder)
                elif _at_path(fd, self.path):  # else released (unlinked) between the open and the flock
                    self._take(fd)
                    self._fd, fd = fd, None
                    return self
            finally:
                if fd is not None:
                    os.close(fd)
        raise RunLockedError(f"could not take the lock {self.path}: other processes keep taking and releasing it")

    def release(self) -> None:
        """Remove the lock file and let go of its flock, if this process holds it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _at_path(fd, self.path):
                self.path.unlink(missing_ok=True)  # before the flock goes: a process waiting then finds no file
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
