"""Timing helpers: parameter counts, one training step, multi-sample inference batched vs looped,
and the rows of the performance table ``python -m aiblib bench`` prints (:mod:`aiblib.cli.bench`).

Times are wall-clock seconds, the median over ``iters`` runs after ``warmup`` runs
(:func:`time_call`, the one timer). Peak memory is the CUDA peak allocated, or this process's
peak resident memory on the CPU (polled every 2 ms), both read through
:func:`aiblib.runtime.memory_mb`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import statistics
import threading
import time
from typing import Callable

import torch
from torch import nn

from aiblib.losses import segmentation_loss
from aiblib.model import ModelConfig, build_model
from aiblib.runtime import memory_mb, sync

__all__ = ["count_parameters", "parameter_counts", "time_call", "PeakMemory", "time_train_step",
           "time_multisample", "release_memory", "bench_row", "format_rows"]

_CPU = torch.device("cpu")


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


class PeakMemory:
    """Peak memory of ``device`` in MiB while the block runs: the CUDA peak allocated (the
    counter is reset on entry), or this process's resident memory polled every 2 ms."""

    def __init__(self, device: torch.device = _CPU) -> None:
        self.device = device
        self.peak = 0.0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._stop = threading.Event()
        self.peak = memory_mb(self.device)[0]

        def poll() -> None:
            while not self._stop.wait(0.002):
                self.peak = max(self.peak, memory_mb(self.device)[0])

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak = memory_mb(self.device)[0]
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, memory_mb(self.device)[0])


def time_call(fn: Callable[[], object], *, iters: int, warmup: int, device: torch.device = _CPU,
              memory: bool = False) -> tuple[float, float | None]:
    """Median seconds per call of ``fn`` over ``iters`` calls after ``warmup`` calls (``device`` is
    synchronized after each timed call), and with ``memory`` the peak MiB during the timed calls
    (:class:`PeakMemory`; None without)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    with PeakMemory(device) if memory else contextlib.nullcontext() as peak:
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times), None if peak is None else peak.peak


def time_train_step(model: nn.Module, *, batch: int = 2, size: tuple[int, int] = (256, 512), repeats: int = 2,
                    warmup: int = 1, seed: int = 0) -> float:
    """Seconds for forward + loss + backward of one training batch (B, 3, H, W) on the CPU (no optimizer step)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, *size, generator=gen)
    labels = torch.randint(0, model.config.num_classes, (batch, *size), generator=gen)
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = segmentation_loss(model(images), labels, beta=model.config.beta)["loss"]
        loss.backward()

    return time_call(step, iters=repeats, warmup=warmup)[0]


def time_multisample(model: nn.Module, *, samples: int = 4, batch: int = 1, size: tuple[int, int] = (256, 512),
                     repeats: int = 2, warmup: int = 1, seed: int = 0) -> dict[str, float]:
    """Seconds of one eval forward on the CPU with ``samples`` masks: ``batched`` (heads once on n*B) and
    ``looped`` (heads once per sample, as the reference). Backbone and attention run once in both."""
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    model.eval()
    out = {}
    with torch.no_grad():
        for name, batched in (("batched", True), ("looped", False)):
            out[name] = time_call(lambda: model(images, samples=samples, batched=batched),
                                  iters=repeats, warmup=warmup)[0]
    return out


def release_memory() -> None:
    """Return freed heap memory to the OS, so that one row's peak RSS is not inflated by the previous rows."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _row_model(depth: int, attention: bool, mode: str, output_stride: int, samples: int, widths: dict,
               device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(depth=depth, attention=attention, output_stride=output_stride, test_samples=samples, **widths)
    model = build_model(cfg).to(device)
    if mode == "channels_last":
        model.to(memory_format=torch.channels_last)
    return model


def bench_row(*, depth: int, attention: bool, mode: str, crop: tuple[int, int], batch: int,
              test_size: tuple[int, int], samples: int, device: torch.device, output_stride: int,
              warmup: int, iters: int, widths: dict) -> dict:
    """One row: a training step (forward, loss, backward, SGD step) at ``crop`` x ``batch`` and
    eval-mode inference of one image at ``test_size`` with ``samples`` masks; ``mode`` is
    'fp32', 'bf16' (autocast) or 'channels_last' (fp32)."""
    release_memory()
    model = _row_model(depth, attention, mode, output_stride, samples, widths, device)
    bf16 = mode == "bf16"
    fmt = torch.channels_last if mode == "channels_last" else torch.contiguous_format
    images = torch.randn(batch, 3, *crop, device=device).contiguous(memory_format=fmt)
    labels = torch.randint(0, model.config.num_classes, (batch, *crop), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def train_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(images)
        out = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
        loss = segmentation_loss(out, labels, beta=model.config.beta)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    step_s, train_mem = time_call(train_step, device=device, warmup=warmup, iters=iters, memory=True)
    model.eval()
    test = torch.randn(1, 3, *test_size, device=device).contiguous(memory_format=fmt)

    @torch.no_grad()
    def infer() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model(test)

    infer_s, infer_mem = time_call(infer, device=device, warmup=max(1, warmup // 2), iters=iters, memory=True)
    del model, optimizer
    return {
        "device": device.type, "depth": depth, "attention": "on" if attention else "off", "mode": mode,
        "crop": f"{crop[0]}x{crop[1]}", "batch": batch, "step_ms": step_s * 1000, "train_img_s": batch / step_s,
        "train_peak_mb": train_mem, "test_size": f"{test_size[0]}x{test_size[1]}", "samples": samples if attention else 1,
        "infer_img_s": 1 / infer_s, "infer_peak_mb": infer_mem,
    }


def format_rows(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    memory = "CUDA peak MiB" if rows and rows[0]["device"] == "cuda" else "peak RSS MiB"
    header = ["device", "depth", "attn", "mode", "crop x batch", "train step ms", "train img/s", f"train {memory}",
              "test size (n)", "infer img/s", f"infer {memory}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["device"], f"R{r['depth']}", r["attention"], r["mode"], f"{r['crop']} x {r['batch']}",
                 f"{r['step_ms']:.0f}", f"{r['train_img_s']:.2f}", f"{r['train_peak_mb']:.0f}",
                 f"{r['test_size']} ({r['samples']})", f"{r['infer_img_s']:.2f}", f"{r['infer_peak_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
