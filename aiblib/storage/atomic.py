"""Writing files that must never be left half-written, and saying so when the disk is full.

- :func:`atomic_write` / :func:`write_text_atomic` / :func:`atomic_copy`: write a temporary file
  beside the target, fsync it, then ``os.replace`` it into place; on any failure (Ctrl-C
  included) the temporary file is removed and the previous file is untouched.
- :func:`reporting`: inside it, running out of space (ENOSPC, EFBIG, EDQUOT) becomes one
  :class:`~aiblib.errors.StorageError` line naming the file and the cause.
- :func:`ensure_free_space`: refuse before a long write that the file system says will not fit.
- :func:`verify_zip`: why a ``torch.save`` file (a zip archive) is damaged, or None when the size
  and CRC-32 of every record, which ``torch.save`` writes into the archive, check out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from aiblib.errors import StorageError

__all__ = ["atomic_write", "write_text_atomic", "atomic_copy", "reporting", "out_of_space", "ensure_free_space",
           "verify_zip"]

_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "file too large for a size limit of this process or file system",
    getattr(errno, "EDQUOT", -1): "disk quota exceeded",
}


def out_of_space(exc: BaseException | None) -> OSError | None:
    """The out-of-space ``OSError`` behind ``exc`` (itself, or its cause or context), if any.

    ``torch.save`` reports a failed write as a ``RuntimeError`` whose context is the ``OSError``.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _CAUSES:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@contextlib.contextmanager
def reporting(path: str | os.PathLike, note: str = "") -> Iterator[None]:
    """Raise :class:`StorageError` ``cannot write PATH: CAUSE [ENOSPC]NOTE`` for running out of space inside."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        cause = out_of_space(exc)
        if cause is None:
            raise
        code = errno.errorcode[cause.errno]
        raise StorageError(f"cannot write {path}: {_CAUSES[cause.errno]} [{code}]{note}") from exc


class _Recorder:
    """A binary file that remembers the ``OSError`` of a failed write (``torch.save`` replaces it)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()

    def fileno(self) -> int:
        return self.file.fileno()


def _umask() -> int:
    """This process's umask (read without changing it where /proc tells it)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], *, note: str = "") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then move it into place.

    Out of space raises :class:`StorageError` (naming ``path``, then ``note``); whatever
    happens, no temporary file is left and the previous ``path`` is untouched until the move.
    """
    path = Path(path)
    with reporting(path, note):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(fd, 0o666 & ~_umask())  # the mode of a file written plainly (mkstemp's is 0600)
                recorder = _Recorder(f)
                try:
                    write(recorder)
                except Exception as exc:
                    if recorder.error is not None and out_of_space(exc) is None:
                        raise exc from recorder.error
                    raise
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    _sync_folder(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str, *, note: str = "") -> Path:
    """``Path.write_text`` (UTF-8) as :func:`atomic_write` writes."""
    data = text.encode()
    return atomic_write(path, lambda f: f.write(data), note=note)


def atomic_copy(source: str | os.PathLike, path: str | os.PathLike, *, note: str = "") -> Path:
    """Copy ``source`` to ``path`` as :func:`atomic_write` writes: a file of its own, never half-copied."""
    with open(source, "rb") as src:
        return atomic_write(path, lambda f: shutil.copyfileobj(src, f, 1 << 24), note=note)


def ensure_free_space(folder: str | os.PathLike, needed: int, what: str, note: str = "") -> None:
    """:class:`StorageError` when the file system of ``folder`` says fewer than ``needed`` bytes are free
    (nothing is checked where it does not say; quotas show up when writing)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise StorageError(f"not enough free space in {folder} for {what}: {_mb(free)} free, "
                           f"about {_mb(needed)} needed{note}")


def verify_zip(path: str | os.PathLike) -> str | None:
    """Why the zip archive at ``path`` is damaged (a short phrase), or None when it is whole: its
    directory reads and every record has the size and CRC-32 written with it."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        return f"not a complete archive ({exc}; truncated?)"
    except (OSError, EOFError, ValueError, NotImplementedError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None if bad is None else f"checksum mismatch in its record {bad}"
