"""The errors a user can cause, as opposed to bugs.

The command line prints a :class:`UserError` as one line ``error: ...`` and exits with its
``exit_status`` (2 unless it says otherwise); anything else is a bug: one line naming its type and
the file that holds its traceback, exit status 1 (see :func:`aiblib.cli.common.command`).
A check of what the user gave raises one of these, never a bare builtin: :class:`ConfigError` for a
wrong value (it is also a ``ValueError``), :class:`MissingFile` for a file or folder that is not
there (also a ``FileNotFoundError``), :class:`AlreadyExists` for one that should not be (also a
``FileExistsError``), so that ``except ValueError`` and the like keep catching them.
This module imports nothing from aiblib: every floor may raise these.
"""

from __future__ import annotations

__all__ = ["UserError", "ConfigError", "MissingFile", "AlreadyExists", "StorageError", "RunLockedError", "WorkerFailed",
           "Interrupted"]


class UserError(Exception):
    """A mistake in what the user gave (a value, a file, a folder); the message names the culprit."""

    exit_status = 2


class ConfigError(UserError, ValueError):
    """A wrong value: a configuration key or its type or range, a command-line option, a parameter file
    that is not valid YAML, a file given as something it is not (a checkpoint, a table)."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named (or a step the user skipped should have written) does not exist."""


class AlreadyExists(UserError, FileExistsError):
    """A file or folder is in the way of what the user asked to write (a run folder that holds checkpoints)."""


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
