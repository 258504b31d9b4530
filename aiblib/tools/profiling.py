"""Where a training iteration's time goes: ``python -m aiblib profile`` (``make gpu-profile``).

One table per machine: for each precision/layout *variant* (``fp32``, ``fp32+channels_last``,
``bf16``, ``bf16+channels_last``, ``bf16+compile``) and each place of the augmentation
(``cpu``: DataLoader workers run the whole training transform; ``device``: the workers decode and
draw, the training device resizes, crops, flips and distorts, :func:`aiblib.data.apply_batch`),
a short training of the paper's model (DeepLabV3+ R50-D8 with the attention, 8 images of 512x1024
cropped from 1024x2048 scenes per iteration, SGD as in training) is timed and broken into phases:

- ``data wait``: the time ``next(batches)`` blocks (the workers did not keep up), on the CPU clock;
- ``to device``: the copy to the device, and with ``device`` augmentation the augmentation itself;
- ``forward`` (with the loss), ``backward`` and ``optimizer``: CUDA events around each phase
  (a CPU has no such events: those columns are left empty there).

Images/s is measured over the timed iterations with one synchronisation at the end, so phases
overlap as in training. A few more iterations run under ``torch.profiler``: the top kernels by
device time (CPU operators on a CPU) go to the JSON. The scenes are synthetic (the BDD100K-layout
domain of :mod:`aiblib.data.synth`, JPEG images and trainId masks), written to a temporary folder
at the full size, so decoding is part of the data cost.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from aiblib.config import Config, Process, resolve_precision, sync, torch_settings
from aiblib.data import build_dataset, train_transform
from aiblib.data.synth import generate
from aiblib.errors import ConfigError
from aiblib.evaluation import forward
from aiblib.model import build_model
from aiblib.reporting import markdown_table
from aiblib.training import device_batch, make_optimizer, segmentation_loss, training_batches

__all__ = ["VARIANTS", "ProfilePlan", "tiny_profile_plan", "variant_settings", "profile_training", "format_profile"]

# variant -> (bf16 autocast, channels_last, torch.compile)
VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "fp32": (False, False, False),
    "fp32+channels_last": (False, True, False),
    "bf16": (True, False, False),
    "bf16+channels_last": (True, True, False),
    "bf16+compile": (True, False, True),
}
PHASES = ("data wait", "to device", "forward", "backward", "optimizer")


@dataclasses.dataclass(frozen=True)
class ProfilePlan:
    """What to profile: the model, the scene and crop sizes (h, w), images per iteration, DataLoader
    workers, iterations (warm-up, timed, under the profiler), the variants and augmentation places."""

    depth: int = 50
    output_stride: int = 8
    attention: bool = True
    scene_size: tuple[int, int] = (1024, 2048)
    crop_size: tuple[int, int] = (512, 1024)
    images: int = 8
    scenes: int = 16
    workers: int = 8
    warmup: int = 5
    iterations: int = 20
    profiled: int = 3
    variants: tuple[str, ...] = tuple(VARIANTS)
    augment: tuple[str, ...] = ("cpu", "device")

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS] + [a for a in self.augment if a not in ("cpu", "device")]
        if unknown:
            raise ConfigError(f"unknown variant or augmentation place {unknown}; variants: {', '.join(VARIANTS)}; "
                             "augmentation: cpu, device")


def tiny_profile_plan() -> ProfilePlan:
    """A plan that runs in seconds on a CPU (R18 at 64x128): checks the code path, measures nothing useful."""
    return ProfilePlan(depth=18, output_stride=16, scene_size=(64, 128), crop_size=(32, 64), images=2, scenes=4,
                       workers=0, warmup=1, iterations=2, profiled=1, variants=("fp32", "bf16+channels_last"))


def variant_settings(variant: str) -> dict:
    """The configuration keys of ``variant``: ``amp``, ``channels_last`` and ``compile``."""
    bf16, channels_last, compile_ = VARIANTS[variant]
    return {"amp": "bf16" if bf16 else "off", "channels_last": channels_last, "compile": compile_}


def _config(plan: ProfilePlan, root: Path, variant: str, augment: str) -> Config:
    """The run configuration of one measurement (training keys as a paper run, data from ``root``)."""
    return Config(depth=plan.depth, output_stride=plan.output_stride, attention=plan.attention, data_root=str(root),
                  train_dataset="bdd100k", crop_size=list(plan.crop_size), base_size=list(plan.scene_size),
                  images_per_iteration=plan.images, num_workers=plan.workers, augment_on=augment, lr=0.01,
                  iterations=plan.warmup + plan.iterations + plan.profiled, **variant_settings(variant))


def _batches(cfg: Config, proc: Process):
    transform = train_transform(crop_size=tuple(cfg.crop_size), base_size=tuple(cfg.base_size),
                                draw_only=cfg.augment_on == "device")
    train_set = build_dataset(cfg.train_dataset, cfg.data_root, "train", transform)
    return training_batches(cfg, proc, train_set, 0, cfg.images_per_iteration)


def _iteration(net: nn.Module, optimizer, batches, cfg: Config, proc: Process, bf16: bool, channels_last: bool,
               events: list | None) -> float:
    """One training iteration, its phases marked by ``events`` (CUDA) when given; the data wait in s."""
    def mark() -> None:
        if events is not None:
            events.append(torch.cuda.Event(enable_timing=True))
            events[-1].record()

    start = time.perf_counter()
    batch = next(batches)
    wait = time.perf_counter() - start
    mark()
    images, labels = device_batch(batch, crop_size=tuple(cfg.crop_size), device=proc.device,
                                  channels_last=channels_last)
    mark()
    outputs = forward(net, images, generator=None, use_bf16=bf16)
    loss = segmentation_loss(outputs, labels, beta=cfg.beta, aux_weight=cfg.aux_weight,
                             reduction=cfg.loss_reduction)["loss"]
    mark()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    mark()
    optimizer.step()
    mark()
    return wait


def _top_operations(prof, *, device: torch.device, iterations: int, top: int = 8) -> list[dict]:
    """The ``top`` kernels by device time per iteration (CUDA), or CPU operators by self CPU time."""
    rows = []
    for event in prof.key_averages():
        if device.type == "cuda":
            if event.device_type != torch.autograd.DeviceType.CUDA:
                continue
            ms = event.self_device_time_total / 1000 / iterations
        else:
            ms = event.self_cpu_time_total / 1000 / iterations
        rows.append({"name": event.key[:120], "ms_per_iteration": round(ms, 3),
                     "calls_per_iteration": round(event.count / iterations, 1)})
    return sorted(rows, key=lambda r: -r["ms_per_iteration"])[:top]


def measure(plan: ProfilePlan, root: Path, variant: str, augment: str, proc: Process) -> dict:
    """One row of the table: images/s, median phase times (ms), peak memory and the top operations."""
    cfg = _config(plan, root, variant, augment)
    bf16, channels_last = resolve_precision(cfg.amp, cfg.channels_last, proc.device)
    model = build_model(cfg.model_config()).to(proc.device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if cfg.compile else model
    optimizer = make_optimizer(model, cfg)
    batches = _batches(cfg, proc)
    try:
        for _ in range(plan.warmup):
            _iteration(net, optimizer, batches, cfg, proc, bf16, channels_last, None)
        sync(proc.device)
        if proc.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(proc.device)
        cuda = proc.device.type == "cuda"
        events, waits = [], []
        start = time.perf_counter()
        for _ in range(plan.iterations):
            waits.append(_iteration(net, optimizer, batches, cfg, proc, bf16, channels_last, events if cuda else None))
        sync(proc.device)
        seconds = time.perf_counter() - start
        phases = {"data wait": statistics.median(waits) * 1000, **{name: float("nan") for name in PHASES[1:]}}
        if cuda:
            per = [events[i:i + 5] for i in range(0, len(events), 5)]
            for k, name in enumerate(PHASES[1:]):
                phases[name] = statistics.median(e[k].elapsed_time(e[k + 1]) for e in per)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            for _ in range(plan.profiled):
                _iteration(net, optimizer, batches, cfg, proc, bf16, channels_last, None)
            sync(proc.device)
        return {"variant": variant, "augment": augment, "images_per_s": plan.images * plan.iterations / seconds,
                "ms_per_iteration": seconds / plan.iterations * 1000, **{f"{k} ms": v for k, v in phases.items()},
                "peak_gb": torch.cuda.max_memory_allocated(proc.device) / 2**30 if cuda else float("nan"),
                "top": _top_operations(prof, device=proc.device, iterations=plan.profiled)}
    finally:
        batches.close()  # its workers end


def profile_training(plan: ProfilePlan, *, scratch: Path, device: torch.device,
                     on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Every (variant, augmentation place) of ``plan`` measured on ``device``, each row passed to ``on_row`` as
    it is measured; the scenes are written under ``scratch``."""
    generate(scratch, n_train=plan.scenes, n_val=0, size=plan.scene_size, seed=0, domains=("bdd100k",),
             workers=max(1, min(plan.workers, 16)))
    proc = Process(rank=0, world_size=1, local_rank=0, device=device)
    rows = []
    with torch_settings(device=device):
        for augment in plan.augment:
            for variant in plan.variants:
                rows.append(measure(plan, scratch, variant, augment, proc))
                fp32 = next(r for r in rows if r["augment"] == augment and r["variant"] == rows[0]["variant"])
                rows[-1]["vs first"] = rows[-1]["images_per_s"] / fp32["images_per_s"]
                if on_row is not None:
                    on_row(rows[-1])
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def format_profile(rows: list[dict], *, title: str) -> str:
    """The rows as a markdown table (the top operations are left to the JSON)."""
    columns = ["variant", "augment", "images_per_s", "vs first", "ms_per_iteration",
               *[f"{p} ms" for p in PHASES], "peak_gb"]
    table = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
    return f"{title}\n\n" + markdown_table(table)
