"""The run log: ``log.jsonl`` in a run directory, one JSON object per line.

Records all have ``kind``, ``iteration`` and ``time`` (unix seconds); NaN and infinite
numbers are written as ``null`` and read back as NaN. Training writes:

- ``event``: ``event`` = "start" (world_size, the :data:`ENVIRONMENT_KEYS` — precision, device, cpu,
  native_bf16, torch —, bf16, channels_last, batch_norm, parameters, train_images, val_images), "pretrained"
  (path, report), "resume" (world_size and the :data:`ENVIRONMENT_KEYS` of the process that resumed),
  "nonfinite_loss" (message, lr), "nonfinite_weights" (message), "interrupted" (signal, message: SIGINT or
  SIGTERM; ``last.pth`` holds the iteration), "end" (replica_digests, replicas_identical);
- ``train`` (every log_interval iterations; means since the previous record, over ranks):
  loss, loss_ce, loss_aux, loss_kl, kl_bits, lr, mu_mean, mu_min, mu_max, std_mean,
  time_per_iter, data_time (s per iteration), images_per_s (all ranks), memory_mb,
  memory_kind ("cuda_peak" since the previous record, or "rss");
- ``val`` (every val_interval iterations and at the end): dataset, split, mIoU, mAcc,
  aAcc (percent), IoU {class: percent}, seconds, and for a model with attention ``attention`` {mu_mean,
  mu_spatial_std, std_mean, selectivity_to_noise, kl_bits} over the split
  (:mod:`aiblib.evaluation.attention_stats`).

Out of space while writing is a one-line :class:`~aiblib.errors.StorageError` naming the log;
a line cut short (by that, or by kill -9) is skipped when read and dropped on resume.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aiblib.errors import MissingFile
from aiblib.storage.atomic import reporting, write_text_atomic

__all__ = ["RunLog", "read_log", "training_environment", "json_safe", "LOG_NAME", "ENVIRONMENT_KEYS"]

LOG_NAME = "log.jsonl"
# what the start and resume events say of where the training computed (aiblib.config.runtime.environment)
ENVIRONMENT_KEYS = ("precision", "device", "cpu", "native_bf16", "torch")


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None, numpy scalars as Python ones, sets as sorted lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return json_safe(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (set, frozenset)):
        return sorted(json_safe(v) for v in value)
    return str(value)


class RunLog:
    """Appends records to ``path`` (a no-op when ``enabled`` is false, i.e. on ranks > 0)."""

    def __init__(self, path: Path, *, enabled: bool) -> None:
        self.path, self.enabled = Path(path), enabled

    def write(self, kind: str, iteration: int, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "iteration": iteration, "time": round(time.time(), 3), **fields}
        line = json.dumps(json_safe(record), allow_nan=False) + "\n"
        with reporting(self.path, "; free some space, then run the same command again to resume"):
            with open(self.path, "a") as f:
                f.write(line)

    def truncate_after(self, iteration: int) -> None:
        """Drop train/val records past ``iteration`` (written after the checkpoint a resume starts from)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [line for line, record in _records(self.path)
                if record.get("kind") == "event" or record.get("iteration", 0) <= iteration]
        write_text_atomic(self.path, "".join(line + "\n" for line in keep), note="; the log is unchanged")


def _records(path: Path) -> list[tuple[str, dict]]:
    """(line, record) pairs of a log file; a line cut short by kill -9 is skipped."""
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            continue
    return out


def read_log(run_dir: str | Path, kind: str = "train") -> pd.DataFrame:
    """The ``kind`` records of ``run_dir/log.jsonl``, one row each (null read as NaN).

    Validation records have their per-class IoU dict flattened into ``IoU/<class>`` columns and their
    attention statistics into ``attention/<statistic>`` columns.
    """
    path = Path(run_dir) / LOG_NAME
    if not path.exists():
        raise MissingFile(f"no training log at {path.resolve()}")
    records = [record for _, record in _records(path) if record.get("kind") == kind]
    if kind == "val":
        for record in records:
            for group in ("IoU", "attention"):
                for name, value in (record.pop(group, None) or {}).items():
                    record[f"{group}/{name}"] = value
    records = [{k: math.nan if v is None else v for k, v in r.items()} for r in records]
    return pd.DataFrame.from_records(records)


def training_environment(run_dir: str | Path) -> list[dict[str, Any]]:
    """Where the training of ``run_dir`` computed: the :data:`ENVIRONMENT_KEYS` of its start event and of
    every resume event that computed elsewhere or otherwise (one entry per distinct environment, in order,
    each with the ``iteration`` it started at). Empty when there is no log, or the log predates these keys."""
    path = Path(run_dir) / LOG_NAME
    if not path.is_file():
        return []
    found: list[dict[str, Any]] = []
    for _, record in _records(path):
        if record.get("kind") != "event" or record.get("event") not in ("start", "resume"):
            continue
        if "precision" not in record:
            continue
        env = {k: record.get(k) for k in ENVIRONMENT_KEYS}
        if not found or {k: found[-1][k] for k in ENVIRONMENT_KEYS} != env:
            found.append({"iteration": record.get("iteration", 0), **env})
    return found
