"""Timing helpers: parameter counts, one training step, multi-sample inference batched vs looped.

Times are wall-clock seconds, the median over ``repeats`` runs after ``warmup`` runs.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch import nn

from aiblib.losses import segmentation_loss
from aiblib.model import ModelConfig, build_model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (BN buffers not included)."""
    return sum(p.numel() for p in model.parameters())


def parameter_counts(depths: tuple[int, ...] = (18, 50, 101), **cfg) -> list[dict]:
    """Rows ``{depth, attention, params, attention_params}`` for the given depths, attention off and on."""
    rows = []
    for depth in depths:
        for attention in (False, True):
            model = build_model(ModelConfig(depth=depth, attention=attention, **cfg))
            att = count_parameters(model.attention) if model.attention is not None else 0
            rows.append({"depth": depth, "attention": attention, "params": count_parameters(model),
                         "attention_params": att})
            del model
    return rows


def _timeit(fn: Callable[[], object], *, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_train_step(model: nn.Module, *, batch: int = 2, size: tuple[int, int] = (256, 512), repeats: int = 2,
                    warmup: int = 1, seed: int = 0) -> float:
    """Seconds for forward + loss + backward of one training batch (B, 3, H, W) (no optimizer step)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, *size, generator=gen)
    labels = torch.randint(0, model.config.num_classes, (batch, *size), generator=gen)
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = segmentation_loss(model(images), labels, beta=model.config.beta)["loss"]
        loss.backward()

    return _timeit(step, repeats=repeats, warmup=warmup)


def time_multisample(model: nn.Module, *, samples: int = 4, batch: int = 1, size: tuple[int, int] = (256, 512),
                     repeats: int = 2, warmup: int = 1, seed: int = 0) -> dict[str, float]:
    """Seconds of one eval forward with ``samples`` masks: ``batched`` (heads once on n*B) and
    ``looped`` (heads once per sample, as the reference). Backbone and attention run once in both."""
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    model.eval()
    out = {}
    with torch.no_grad():
        for name, batched in (("batched", True), ("looped", False)):
            out[name] = _timeit(lambda: model(images, samples=samples, batched=batched), repeats=repeats, warmup=warmup)
    return out
