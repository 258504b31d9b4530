"""Stopping a training cleanly on Ctrl-C (SIGINT) or pre-emption (SIGTERM).

While :class:`StopRequests` is entered (in the main thread), the first SIGINT or SIGTERM is
only noted: the loop asks :func:`agreed_stop` before each step, finishes the step under way,
writes ``last.pth`` and raises :class:`~aiblib.errors.Interrupted`. A second SIGINT raises
``KeyboardInterrupt`` at once (a repeated SIGTERM, e.g. torchrun forwarding the one it got,
changes nothing). The previous handlers come back on exit: a notebook kernel lives on.

Under torchrun every rank calls :func:`agreed_stop` at the top of every iteration: one scalar
``all_reduce`` (MAX) of the signal number, so all ranks stop after the same iteration whichever
of them got the signal. The same scalar carries a failure to load this iteration's batch (a
damaged file, a dead data-loader worker): every rank then raises the failure of the lowest
failing rank, so none waits on a collective for a rank that has stopped. Data-loader workers
ignore both signals (:func:`aiblib.data.worker_init`, their ``worker_init_fn``): a Ctrl-C or
torchrun's ``killpg`` reaches them too, and a worker that died of it would take the step under way with it.
"""

from __future__ import annotations

import signal
import threading

import torch
import torch.distributed as dist

from aiblib.config import Process, raise_on_every_rank
from aiblib.data import STOP_SIGNALS

__all__ = ["StopRequests", "agreed_stop"]


class StopRequests:
    """``with StopRequests() as stop:`` notes SIGINT / SIGTERM in ``stop.signal_number`` (0: none yet)."""

    def __init__(self) -> None:
        self.signal_number = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal_number and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop at once
        if not self.signal_number:
            self.signal_number = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


def agreed_stop(stop: StopRequests, proc: Process, failure: Exception | None = None) -> int:
    """The signal number every rank stops on now (0: go on): the largest any rank has noted.

    ``failure``: this rank's error loading its batch, or None. When any rank has one, every rank
    raises the lowest failing rank's (marked ``every_rank``, so only rank 0 prints its line).
    """
    if not proc.distributed:
        raise_on_every_rank(failure, proc.device)
        return stop.signal_number
    flag = torch.tensor([stop.signal_number, int(failure is not None)], dtype=torch.int32, device=proc.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    raise_on_every_rank(failure, proc.device, failed=bool(flag[1].item()))
    return int(flag[0].item())
