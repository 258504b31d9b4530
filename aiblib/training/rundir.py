"""A training's run directory: one writer, the checkpoint to resume from, the log and configuration.

- :func:`exclusive`: ``run_dir/.lock`` (:mod:`aiblib.storage.runlock`) held while inside, by rank 0
  under torchrun; when rank 0 cannot take it, every rank raises the same one-line error.
- :func:`resume_point`: the newest checkpoint that verifies (the size and CRC-32 of every record,
  :func:`aiblib.storage.checkpoint.verify_checkpoint`) and loads; each file skipped is named, with why,
  in one line; ``last.pth`` is restored from the one chosen when it was not ``last.pth``. Rank 0 chooses
  and sends every rank the path and iteration, so all ranks start from the same file.
- :func:`open_run_dir`: create the folders, start or trim the log, save the configuration.
- :func:`restore_rng`: each rank's RNG states as saved.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

import torch.distributed as dist

from aiblib.config import Config, Process, barrier, check_resumable, raise_on_every_rank, set_rng_state
from aiblib.errors import AlreadyExists, ConfigError, RunLockedError, UserError
from aiblib.storage import (
    LOG_NAME,
    RunLock,
    RunLog,
    atomic_copy,
    checkpoint_dir,
    last_checkpoint,
    safe_load,
    training_checkpoints,
    verify_checkpoint,
    write_text_atomic,
)

__all__ = ["exclusive", "resume_point", "open_run_dir", "restore_rng"]

TRAINING_KEYS = frozenset({"iteration", "model", "optimizer", "config"})


@contextlib.contextmanager
def exclusive(run_dir: Path, proc: Process) -> Iterator[None]:
    """Hold ``run_dir``'s lock while inside (rank 0 takes it; every rank raises when it cannot)."""
    lock = RunLock(run_dir) if proc.is_main else None
    error: Exception | None = None
    if lock is not None:
        try:
            lock.acquire()
        except Exception as exc:  # noqa: BLE001 - every rank must learn of it before raising
            error = exc
    if proc.distributed:
        box = [None if error is None else str(error)]
        dist.broadcast_object_list(box, src=0)
        if error is None and box[0] is not None:
            error = RunLockedError(box[0])
    if error is not None:
        raise error
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _one_line(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load(path: Path) -> tuple[dict | None, str]:
    """The training checkpoint at ``path``, or None and why it cannot be one."""
    why = verify_checkpoint(path)
    if why:
        return None, f"damaged: {why}"
    try:
        state = safe_load(path)
    except RuntimeError as exc:
        return None, f"does not load: {_one_line(exc.__cause__ or exc)}"
    if not isinstance(state, dict) or not TRAINING_KEYS <= state.keys():
        return None, f"not a training checkpoint (it lacks one of {sorted(TRAINING_KEYS)})"
    return state, ""


def _newest(files: list[Path]) -> tuple[dict | None, Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of ``files`` (``training_checkpoints``) that loads: (state, path, skipped).

    ``last.pth`` is tried first; an ``iter_*`` file newer than it (``last.pth`` could not be
    replaced, or is damaged) wins when it loads.
    """
    skipped: list[tuple[Path, str]] = []
    last = files[0] if files[0].name == "last.pth" else None
    state, why = _load(last) if last is not None else (None, "")
    if why:
        skipped.append((last, why))
    newest = int(state["iteration"]) if state is not None else -1
    for path in files:
        if path == last or int(path.stem[5:]) <= newest:
            continue
        kept, why = _load(path)
        if kept is not None:
            return kept, path, skipped
        skipped.append((path, why))
    return state, (last if state is not None else None), skipped


def _choose(cfg: Config, run_dir: Path) -> tuple[dict, Path] | None:
    """Rank 0's choice: the checkpoint to resume from, loaded, and its path (None for a fresh run); each file
    skipped is named; ``last.pth`` becomes a copy of the one chosen when it was not ``last.pth``."""
    ckpt_dir = checkpoint_dir(run_dir)
    files = training_checkpoints(ckpt_dir)
    if not files:
        return None
    if not cfg.resume:
        raise AlreadyExists(
            f"{run_dir} already holds checkpoints and resume is false; choose another name/run_dir, "
            "delete the folder, or set resume true to continue"
        )
    state, path, skipped = _newest(files)
    if state is None:
        listing = "; ".join(f"{p.name}: {why}" for p, why in skipped)
        raise UserError(f"cannot resume {run_dir}: no checkpoint in {ckpt_dir} is whole ({listing}); to start "
                        f"afresh, delete {ckpt_dir} (or train under another name)")
    for p, why in skipped:
        print(f"warning: skipped {p} ({why}); resuming from {path.name} at iteration {state['iteration']}",
              file=sys.stderr, flush=True)
    check_resumable(state["config"], cfg, path)
    if state["iteration"] > cfg.iterations:
        raise ConfigError(f"{path} is at iteration {state['iteration']} > iterations={cfg.iterations}")
    last = last_checkpoint(run_dir)
    if path != last:  # evaluation reads last.pth
        atomic_copy(path, last, note=f"; {path} is whole: run the same command again to resume from it")
    return state, path


def resume_point(cfg: Config, run_dir: Path, proc: Process) -> dict | None:
    """The checkpoint to resume from (None for a fresh run), the same on every rank.

    Rank 0 chooses it (:func:`_choose`) and sends every rank its path and iteration, or its error; each
    rank loads that file. Ranks never list the folder themselves: on a shared file system with attribute
    caching their listings can differ, and ranks starting at different iterations would wait on each
    other's collectives forever. A rank that cannot read the file rank 0 chose stops every rank, in one line.
    """
    chosen, error = None, None
    if proc.is_main:
        try:
            chosen = _choose(cfg, run_dir)
        except Exception as exc:  # noqa: BLE001 - every rank must learn of it before raising
            error = exc
    if not proc.distributed:
        if error is not None:
            raise error
        return None if chosen is None else chosen[0]
    box = [None if error is None else (str(error), getattr(error, "exit_status", 1)),
           None if chosen is None else (str(chosen[1]), int(chosen[0]["iteration"]))]
    dist.broadcast_object_list(box, src=0)
    failed, point = box
    if failed is not None:
        if error is None:  # rank 0 prints the line
            error = UserError(f"rank 0 could not choose the checkpoint to resume from: {failed[0]}")
            error.exit_status, error.every_rank = failed[1], True
        raise error
    if point is None:
        return None
    path, iteration = Path(point[0]), point[1]
    if proc.is_main:
        state, failure = chosen[0], None
    else:
        state, why = _load(path)
        failure = None
        if state is None or int(state["iteration"]) != iteration:
            why = why or f"it holds iteration {state['iteration']}, rank 0 read {iteration}"
            failure = UserError(f"rank {proc.rank} cannot resume from {path}, the checkpoint rank 0 chose ({why}); "
                                "every rank must see the run directory on one shared file system")
    raise_on_every_rank(failure, proc.device)
    return state


def open_run_dir(cfg: Config, proc: Process, run_dir: Path, checkpoint: dict | None) -> int:
    """Create the run directory, start or trim its log, save the configuration; the start iteration."""
    start = int(checkpoint["iteration"]) if checkpoint else 0
    if proc.is_main:
        checkpoint_dir(run_dir).mkdir(parents=True, exist_ok=True)
        log = RunLog(run_dir / LOG_NAME, enabled=True)
        if checkpoint is None:
            log.path.unlink(missing_ok=True)
        else:
            log.truncate_after(start)
        write_text_atomic(run_dir / "config.yaml", cfg.dump())
    barrier(proc)
    return start


def restore_rng(checkpoint: dict, proc: Process, source: Path) -> None:
    """Each rank's RNG states as saved, when the run had the same number of processes."""
    states = checkpoint.get("rng") or []
    if checkpoint.get("world_size", 1) == proc.world_size and proc.rank < len(states):
        set_rng_state(states[proc.rank])
    elif proc.is_main:
        print(f"warning: {source} was written by {checkpoint.get('world_size')} processes; "
              f"RNG states are not restored for {proc.world_size}", file=sys.stderr)
