"""Running sums of the quantities training logs, over one log interval, reduced over processes."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from aiblib.config import Process

__all__ = ["TrainStats"]


class TrainStats:
    """Running sums of the logged quantities over one log interval."""

    def __init__(self) -> None:
        self.count = 0
        self.data_time = 0.0
        self.sums: dict[str, torch.Tensor] = {}
        self.mu_min: torch.Tensor | None = None
        self.mu_max: torch.Tensor | None = None

    def _add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    def add(self, terms: dict, outputs: dict, lr: float) -> None:
        self.count += 1
        self.lr = lr
        for key, value in terms.items():
            self._add(key, value)
        if "kl" in outputs:
            self._add("kl_bits", outputs["kl"])
        if "mu" in outputs:
            mu = outputs["mu"].detach().float()
            self._add("mu_mean", mu.mean())
            self.mu_min = mu.min() if self.mu_min is None else torch.minimum(self.mu_min, mu.min())
            self.mu_max = mu.max() if self.mu_max is None else torch.maximum(self.mu_max, mu.max())
        if "std" in outputs:
            self._add("std_mean", outputs["std"].detach().float().mean())

    def summary(self, proc: Process) -> dict:
        """Means over the interval (and over ranks), mu min / max over both."""
        keys = sorted(self.sums)
        means = torch.stack([self.sums[k] for k in keys]) / self.count if keys else torch.zeros(0)
        extremes = None
        if self.mu_min is not None:
            extremes = torch.stack([-self.mu_min, self.mu_max])
        if proc.distributed:
            dist.all_reduce(means, op=dist.ReduceOp.SUM)
            means /= proc.world_size
            if extremes is not None:
                dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
        record: dict[str, Any] = {"lr": self.lr}
        record.update({k: float(v) for k, v in zip(keys, means.tolist())})
        if extremes is not None:
            record["mu_min"], record["mu_max"] = -float(extremes[0]), float(extremes[1])
        return record
