"""Data-loader batches that never hang a run: a damaged file or a dead worker ends it in seconds, in one line.

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
- :func:`worker_init` is the workers' ``worker_init_fn``: SIGINT and SIGTERM are ignored (the main
  process finishes its step on them; a Ctrl-C or torchrun's ``killpg`` reaches the workers too), and
  a worker dies with its parent (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` leaves none behind.

Any other exception in a worker is a bug: it keeps DataLoader's traceback, and the workers still end.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from torch.utils.data import DataLoader, Dataset, default_collate

from aiblib.data.facts import DataError
from aiblib.errors import WorkerFailed

__all__ = ["LoadFailure", "Guarded", "GuardedCollate", "Batches", "worker_init", "STOP_SIGNALS", "CHECK_HINT"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CHECK_HINT = "python -m aiblib prepare --check-images lists every damaged file of a data root"
_PR_SET_PDEATHSIG = 1
_JOIN_S = 2.0  # how long a worker that was asked to stop gets before SIGKILL


@dataclass(frozen=True)
class LoadFailure:
    """An item that could not be loaded: ``message`` names the file and the cause (one line)."""

    message: str


class Guarded(Dataset):
    """``dataset``'s items, or a :class:`LoadFailure` where reading a file failed (``DataError``, ``OSError``)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.dataset[key]
        except (DataError, OSError) as exc:
            return LoadFailure(" ".join(str(exc).split()))


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
    batch as the loader gives it; ``DataError`` for a failed item, ``WorkerFailed`` for a dead worker.

    Use as ``with Batches(loader) as batches: ...`` or call :meth:`close`: the workers are ended
    either way, within seconds (a worker ignores SIGTERM, so one that does not stop gets SIGKILL).
    """

    # DataLoader's iterator has no public way to reach its worker processes: ``_workers``, ``_shutdown`` and
    # ``_shutdown_workers`` are its private names (unchanged since torch 1.x); without workers none is used
    def __init__(self, loader: DataLoader) -> None:
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
            if not str(exc).startswith("DataLoader worker"):
                raise
            self._check_workers()
            raise WorkerFailed(f"a data-loader worker stopped: {exc}") from exc
        if isinstance(batch, LoadFailure):
            raise DataError(f"{batch.message} ({CHECK_HINT})")
        return batch

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
