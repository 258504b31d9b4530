"""Stopping a training cleanly on Ctrl-C (SIGINT) or pre-emption (SIGTERM).

While :class:`StopRequests` is entered (in the main thread), the first SIGINT or SIGTERM is
only noted: the loop asks :func:`agreed_stop` before each step, finishes the step under way,
writes ``last.pth`` and raises :class:`~aiblib.errors.Interrupted`. A second SIGINT raises
``KeyboardInterrupt`` at once (a repeated SIGTERM, e.g. torchrun forwarding the one it got,
changes nothing). The previous handlers come back on exit: a notebook kernel lives on.

Under torchrun every rank calls :func:`agreed_stop` at the top of every iteration: one scalar
``all_reduce`` (MAX) of the signal number, so all ranks stop after the same iteration whichever
of them got the signal. Data-loader workers ignore both signals (:func:`ignore_stop_signals`,
their ``worker_init_fn``): a Ctrl-C or torchrun's ``killpg`` reaches them too, and a worker
that died of it would take the step under way with it.
"""

from __future__ import annotations

import signal
import threading

import torch
import torch.distributed as dist

from aiblib.config import Process

__all__ = ["StopRequests", "agreed_stop", "ignore_stop_signals", "STOP_SIGNALS"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


def agreed_stop(stop: StopRequests, proc: Process) -> int:
    """The signal number every rank stops on now (0: go on): the largest any rank has noted."""
    if not proc.distributed:
        return stop.signal_number
    flag = torch.tensor([stop.signal_number], dtype=torch.int32, device=proc.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def ignore_stop_signals(worker_id: int) -> None:
    """A data-loader worker's ``worker_init_fn``: SIGINT and SIGTERM are for the training process to handle."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
