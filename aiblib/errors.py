"""The errors a user can cause, as opposed to bugs.

The command line prints a :class:`UserError` as one line ``error: ...`` and exits with its
``exit_status`` (2 unless it says otherwise); anything else is a bug and keeps its traceback.
This module imports nothing from aiblib: every floor may raise these.
"""

from __future__ import annotations

__all__ = ["UserError", "StorageError", "RunLockedError", "WorkerFailed", "Interrupted"]


class UserError(Exception):
    """A mistake in what the user gave (a value, a file, a folder); the message names the culprit."""

    exit_status = 2


class StorageError(UserError, OSError):
    """Writing a file failed for lack of room (ENOSPC, EFBIG, EDQUOT); nothing good was damaged."""


class RunLockedError(UserError):
    """Another live process holds the run directory's lock."""


class WorkerFailed(UserError):
    """A data-loader worker died (killed by a signal, e.g. the OOM killer's SIGKILL): exit status 1."""

    exit_status = 1


class Interrupted(Exception):
    """Training stopped on a signal after writing ``last.pth``: exit status 128 + the signal number."""

    def __init__(self, message: str, *, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_status = 128 + signal_number
