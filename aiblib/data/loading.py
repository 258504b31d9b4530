"""Data-loader batches that never hang a run: a damaged file, a dead worker or a read that never returns ends it in
one line.

A ``DataLoader`` with workers re-raises a worker's exception as its whole traceback, and a worker
that ignores SIGTERM (as ours do, see :func:`worker_init`) outlives ``DataLoader``'s own shutdown, so
a failed run used to wait on its workers forever. Here:

- :class:`Guarded` wraps a dataset: an item whose file cannot be read (a :class:`DataError` or an
  ``OSError``: a damaged or truncated image or label, a file gone since the listing, a label of the
  wrong size) comes back as a :class:`LoadFailure` holding the one-line message, and
  :class:`GuardedCollate` makes a batch holding one a failure too; nothing is raised in the worker.
- :class:`Batches` iterates the loader in the main process: a failure raises ``DataError`` (exit
  status 2) with that message, a worker that died (the OOM killer's SIGKILL) raises
  :class:`~aiblib.errors.WorkerFailed` (exit status 1) naming it; :meth:`Batches.close` (also on
  leaving ``with``) ends the workers within seconds, with SIGKILL for any that did not stop.
- A read that never returns (a stalled network file system, a file that blocks when opened): with the
  loader's ``timeout``, a batch that does not come in time raises ``DataError`` (exit status 2) naming
  the files a worker is stuck on, which each worker notes in a :class:`Reading` (shared memory) before
  it reads an item; the workers are killed at once (a read that never returns is not interrupted by a
  request to stop). Only workers are timed out: with ``num_workers`` 0 the main process reads, and a
  read that blocks it cannot be interrupted from the process itself.
- :func:`worker_init` is the workers' ``worker_init_fn``: SIGINT and SIGTERM are ignored (the main
  process finishes its step on them; a Ctrl-C or torchrun's ``killpg`` reaches the workers too), and
  a worker dies with its parent (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` leaves none behind.

Any other exception in a worker is a bug: it keeps DataLoader's traceback, and the workers still end.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from aiblib.data.facts import DataError
from aiblib.errors import WorkerFailed

__all__ = ["LoadFailure", "Reading", "Guarded", "GuardedCollate", "Batches", "worker_init", "STOP_SIGNALS",
           "CHECK_HINT"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CHECK_HINT = "python -m aiblib prepare --check-images lists every damaged file of a data root"
_PR_SET_PDEATHSIG = 1
_JOIN_S = 2.0  # how long a worker that was asked to stop gets before SIGKILL


@dataclass(frozen=True)
class LoadFailure:
    """An item that could not be loaded: ``message`` names the file and the cause (one line)."""

    message: str


class Reading:
    """The item each data-loader worker is reading, in memory shared with the main process: :class:`Guarded`
    notes an item's position before it reads it (and -1 after); :meth:`stuck` names the files of those
    still being read. ``files[i]`` is what item ``i`` reads: a dataset's (image, label) pairs."""

    def __init__(self, files: Sequence[tuple[Path, Path]], workers: int) -> None:
        self.files = files
        self._slots = multiprocessing.RawArray(ctypes.c_int64, [-1] * max(workers, 1))

    def note(self, position: int) -> None:
        """In a worker: it reads item ``position`` now (-1: none); in the main process nothing is noted."""
        info = get_worker_info()
        if info is not None:
            self._slots[info.id] = position

    def stuck(self) -> list[str]:
        """The items the workers are reading now, each as ``image PATH (label PATH)``."""
        return [f"image {self.files[i][0]} (label {self.files[i][1]})" for i in self._slots if i >= 0]


class Guarded(Dataset):
    """``dataset``'s items, or a :class:`LoadFailure` where reading a file failed (``DataError``, ``OSError``);
    with ``reading``, each item's position is noted there while it is read."""

    def __init__(self, dataset: Dataset, *, reading: Reading | None = None) -> None:
        self.dataset = dataset
        self.reading = reading

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def get(self, key: Any, *, generator: torch.Generator | None = None) -> Any:
        """Item ``key`` (with ``generator``: the dataset's ``get``, its random draws taken from it), or a failure."""
        if self.reading is not None:
            self.reading.note(key)
        try:
            return self.dataset[key] if generator is None else self.dataset.get(key, generator=generator)
        except (DataError, OSError) as exc:
            return LoadFailure(" ".join(str(exc).split()))
        finally:
            if self.reading is not None:
                self.reading.note(-1)


class GuardedCollate:
    """``collate`` of the items, or the first :class:`LoadFailure` among them (a picklable callable)."""

    def __init__(self, collate: Callable[[list], Any] = default_collate) -> None:
        self.collate = collate

    def __call__(self, items: list) -> Any:
        failures = [item for item in items if isinstance(item, LoadFailure)]
        return failures[0] if failures else self.collate(items)


def worker_init(worker_id: int) -> None:
    """A data-loader worker's ``worker_init_fn``: ignore SIGINT / SIGTERM; die with the parent (Linux)."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's close() still ends the workers
        pass


class Batches:
    """Iterate ``loader`` (built on a :class:`Guarded` dataset with a :class:`GuardedCollate`): each
    batch as the loader gives it; ``DataError`` for a failed item or for no batch within the loader's
    ``timeout`` (naming what ``reading``, the Guarded dataset's, says the workers are stuck on),
    ``WorkerFailed`` for a dead worker.

    Use as ``with Batches(loader) as batches: ...`` or call :meth:`close`: the workers are ended
    either way, within seconds (a worker ignores SIGTERM, so one that does not stop gets SIGKILL).
    """

    # DataLoader's iterator has no public way to reach its worker processes: ``_workers``, ``_shutdown`` and
    # ``_shutdown_workers`` are its private names (unchanged since torch 1.x); without workers none is used
    def __init__(self, loader: DataLoader, *, reading: Reading | None = None) -> None:
        self._timeout, self._reading = loader.timeout, reading
        previous = signal.getsignal(signal.SIGCHLD)
        self._iterator = iter(loader)
        self._workers = list(getattr(self._iterator, "_workers", []))
        if self._workers and threading.current_thread() is threading.main_thread():
            # DataLoader's SIGCHLD handler raises in whatever the main process is doing (a forward pass,
            # a checkpoint being written); a dead worker is found at the next batch instead
            ours = previous is None or getattr(previous, "__module__", "").startswith("torch.utils.data")
            signal.signal(signal.SIGCHLD, signal.SIG_DFL if ours else previous)

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        self._check_workers()
        try:
            batch = next(self._iterator)
        except RuntimeError as exc:
            if str(exc).startswith("DataLoader timed out"):
                message = self._stalled()
                for worker in self._workers:  # one stuck in a read would not come to a request to stop
                    worker.kill()
                raise DataError(message) from None
            if not str(exc).startswith("DataLoader worker"):
                raise
            self._check_workers()
            raise WorkerFailed(f"a data-loader worker stopped: {exc}") from exc
        if isinstance(batch, LoadFailure):
            raise DataError(f"{batch.message} ({CHECK_HINT})")
        return batch

    def _stalled(self) -> str:
        """The line for no batch within the timeout: the files the workers are stuck on, where noted."""
        stuck = self._reading.stuck() if self._reading is not None else []
        where = f"a data-loader worker is stuck reading {'; '.join(stuck)}" if stuck else "the workers are stuck"
        return (f"no batch within data_timeout={self._timeout:g} s: {where} (a stalled network file system, or a file "
                "that blocks when opened?); the run stopped")

    def _check_workers(self) -> None:
        if getattr(self._iterator, "_shutdown", False):  # the loader ended its workers itself (an epoch's end)
            return
        for worker in self._workers:
            if worker.exitcode is not None:
                raise WorkerFailed(_death(worker.pid, worker.exitcode))

    def close(self) -> None:
        """End the workers: asked first, then SIGKILL for any still alive after a moment."""
        shutdown = getattr(self._iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        for worker in self._workers:
            worker.join(timeout=_JOIN_S)
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=_JOIN_S)

    def __enter__(self) -> "Batches":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _death(pid: int | None, exitcode: int) -> str:
    """The line for a worker that ended with ``exitcode`` (negative: killed by that signal)."""
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        cause = " (the kernel's OOM killer sends SIGKILL when memory runs out: lower num_workers)" \
            if -exitcode == signal.SIGKILL else ""
        return f"data-loader worker {pid} was killed by {name}{cause}; the run stopped"
    return f"data-loader worker {pid} exited with status {exitcode}; the run stopped"
