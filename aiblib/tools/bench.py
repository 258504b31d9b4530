"""Timing helpers and the rows of the performance table ``python -m aiblib bench`` prints (:mod:`aiblib.cli.bench`).

A *mode* is one way of executing the same model (:data:`MODES`): ``reference`` is the
reference's execution (fp32 eager; every backbone stage repeated for the n attention samples,
the plain decode head run once per sample, as MMSegmentation AIBR does); ``fp32`` is fp32 eager
with the default multi-sample strategy for the device and size
(:func:`aiblib.model.segmentor.multisample_strategy`);
``looped`` and ``batched`` force a strategy; ``bf16`` (autocast), ``channels_last`` and ``compiled``
(``torch.compile``) use the default strategy.

:func:`compare_modes` times all the modes of one model side by side: every round runs each
mode once (training step, then inference), so that a machine shared with other work slows all of
them alike; times are medians over the rounds, "vs reference" the median of the per-round ratios.
Peak memory, from one more call of each mode after the timed rounds, is what the call adds above
what was in use when it started (weights, optimizer state and inputs are resident for every mode
alike): CUDA peak allocated, or this process's resident memory polled every 2 ms on the CPU.
FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (one step, counted once; a compiled
mode is counted on its eager twin); the fraction of peak divides the achieved FLOP/s by a large
matmul's, measured in the same rounds, in the mode's precision (on CUDA in the math mode the
convolutions use: TF32 where cuDNN allows it).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import gc
import statistics
import threading
import time
from typing import Callable

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aiblib.config import memory_mb, sync
from aiblib.errors import ConfigError
from aiblib.model import ModelConfig, build_model, multisample_strategy
from aiblib.reporting import markdown_table
from aiblib.training import segmentation_loss

__all__ = ["MODES", "count_parameters", "parameter_counts", "time_call", "PeakMemory", "release_memory",
           "default_strategy", "default_modes", "build_variants", "matmul_peak", "count_flops", "compare_modes",
           "bench_row", "format_table"]

MODES = ("reference", "fp32", "looped", "batched", "bf16", "channels_last", "compiled")
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
    counter is reset on entry), or this process's resident memory polled every 2 ms.
    ``start`` is the memory in use on entry (allocated, or resident)."""

    def __init__(self, device: torch.device = _CPU) -> None:
        self.device = device
        self.peak = self.start = 0.0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self._stop = threading.Event()
        self.peak = self.start = memory_mb(self.device)[0]

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


def release_memory() -> None:
    """Return freed heap memory to the OS, so that one call's peak RSS is not inflated by the previous ones."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def default_strategy(device: torch.device, batch: int, size: tuple[int, int], output_stride: int = 8) -> str:
    """The strategy ``multisample='auto'`` picks for ``batch`` images of ``size`` (H, W) on ``device``."""
    return multisample_strategy("auto", device, batch * -(-size[0] // output_stride) * -(-size[1] // output_stride))


def default_modes(device: torch.device, batch: int, size: tuple[int, int], output_stride: int = 8) -> list[str]:
    """The table's modes: the reference, fp32 with the default strategy at the test size, fp32 with the
    other strategy, then bf16, channels_last and compiled (default strategy)."""
    other = "batched" if default_strategy(device, batch, size, output_stride) == "looped" else "looped"
    return ["reference", "fp32", other, "bf16", "channels_last", "compiled"]


@dataclasses.dataclass
class Variant:
    """One mode of one model: ``module`` is what is called (a compiled wrapper or ``model`` itself)."""

    mode: str
    strategy: str
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    bf16: bool
    memory_format: torch.memory_format

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Forward, loss, backward and SGD step on images (B, 3, H, W) and labels (B, H, W)."""
        self.model.train()
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.module(images, strategy=self.strategy)
        out = {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
        segmentation_loss(out, labels, beta=self.model.config.beta)["loss"].backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def infer(self, images: torch.Tensor, samples: int) -> None:
        """Eval-mode forward of images (B, 3, H, W) with ``samples`` masks, no gradients."""
        self.model.eval()
        with torch.no_grad(), torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            self.module(images, samples=samples, strategy=self.strategy)


def build_variants(model: nn.Module, modes: list[str], device: torch.device) -> list[Variant]:
    """A :class:`Variant` per mode. They share ``model`` and one SGD optimizer, except channels_last
    (a copy converted to channels_last, with its own optimizer)."""
    def sgd(m: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    shared, variants, last = sgd(model), [], None
    for mode in modes:
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        strategy = mode if mode in ("reference", "looped", "batched") else "auto"
        target, module, optimizer, fmt = model, model, shared, torch.contiguous_format
        if mode == "channels_last":
            fmt = torch.channels_last
            last = last or copy.deepcopy(model).to(memory_format=fmt)
            target = module = last
            optimizer = sgd(last)
        elif mode == "compiled":
            module = torch.compile(model)
        variants.append(Variant(mode, strategy, target, module, optimizer, mode == "bf16", fmt))
    return variants


def matmul_peak(device: torch.device, dtype: torch.dtype) -> tuple[Callable[[], None], float]:
    """``(call, flops)``: one large square matmul (2048 on the CPU, 8192 on CUDA) in ``dtype`` and its
    FLOPs; fp32 on CUDA runs in the precision cuDNN convolutions use (TF32 when allowed)."""
    n = 8192 if device.type == "cuda" else 2048
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)

    def call() -> None:
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
        try:
            torch.mm(a, b)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved

    return call, 2.0 * n**3


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` (forward and backward when it runs both), as FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _added_memory(fn: Callable[[], object], device: torch.device) -> float:
    """MiB one call of ``fn`` adds at its peak above what was in use when it started (freed heap
    memory is returned to the OS first, so that the CPU's resident memory starts low)."""
    release_memory()
    sync(device)
    with PeakMemory(device) as mem:
        fn()
        sync(device)
    return max(0.0, mem.peak - mem.start)


def _run_rounds(calls: dict[str, Callable[[], object]], *, rounds: int, warmup: int,
                device: torch.device) -> dict[str, list[float]]:
    """Each call once per round, in order, ``warmup`` untimed rounds then ``rounds`` timed ones:
    name -> [seconds per timed round]."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    results: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            results[name].append(time.perf_counter() - start)
    return results


def _inputs(device: torch.device, crop: tuple[int, int], batch: int, test_size: tuple[int, int],
            num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, 3, *crop, device=device, generator=gen)
    labels = torch.randint(0, num_classes, (batch, *crop), device=device, generator=gen)
    test = torch.randn(batch, 3, *test_size, device=device, generator=gen)
    return images, labels, test


def _calls(variants: list[Variant], images: torch.Tensor, labels: torch.Tensor, test: torch.Tensor,
           samples: int) -> tuple[dict[str, Callable[[], None]], dict[str, Callable[[], None]]]:
    """name -> call for the training steps and for the inferences, inputs in each variant's memory format."""
    train, infer = {}, {}
    for v in variants:
        x, t = images.contiguous(memory_format=v.memory_format), test.contiguous(memory_format=v.memory_format)
        train[v.mode] = lambda v=v, x=x: v.train_step(x, labels)
        infer[v.mode] = lambda v=v, t=t: v.infer(t, samples)
    return train, infer


def compare_modes(*, depth: int, attention: bool, modes: list[str], crop: tuple[int, int], batch: int,
                  test_size: tuple[int, int], samples: int, device: torch.device, output_stride: int = 8,
                  warmup: int = 1, iters: int = 3, widths: dict | None = None) -> list[dict]:
    """One row per mode (see the module docstring): training step (forward, loss, backward, SGD step)
    at ``crop`` x ``batch`` and eval-mode inference of ``batch`` images at ``test_size`` with ``samples``
    masks, timed side by side over ``iters`` rounds after ``warmup`` rounds (compiled modes get at least one)."""
    torch.manual_seed(0)
    cfg = ModelConfig(depth=depth, attention=attention, output_stride=output_stride, test_samples=samples,
                      **(widths or {}))
    model = build_model(cfg).to(device)
    variants = build_variants(model, modes, device)
    images, labels, test = _inputs(device, crop, batch, test_size, cfg.num_classes)
    train, infer = _calls(variants, images, labels, test, samples)
    eager_train, eager_infer = _calls([dataclasses.replace(v, module=v.model) for v in variants],
                                      images, labels, test, samples)   # compiled: its eager twin's FLOPs
    flops = {v.mode: (count_flops(eager_train[v.mode]), count_flops(eager_infer[v.mode])) for v in variants}
    peaks = {"peak fp32": matmul_peak(device, torch.float32), "peak bf16": matmul_peak(device, torch.bfloat16)}
    warmup = max(warmup, 1) if "compiled" in modes else warmup
    timed = _run_rounds({**{f"train {k}": f for k, f in train.items()}, **{f"infer {k}": f for k, f in infer.items()},
                         **{k: call for k, (call, _) in peaks.items()}}, rounds=iters, warmup=warmup, device=device)
    peak = {k: flop / statistics.median(timed[k]) for k, (_, flop) in peaks.items()}
    memory = {f"{phase} {k}": _added_memory(f, device) for phase, calls in (("train", train), ("infer", infer))
              for k, f in calls.items()}
    rows = []
    for v in variants:
        row = {"device": device.type, "depth": depth, "attention": "on" if attention else "off", "mode": v.mode,
               "strategy": (default_strategy(device, batch, test_size, output_stride) if v.strategy == "auto"
                            else v.strategy) if attention else "-", "crop": f"{crop[0]}x{crop[1]}", "batch": batch,
               "test_size": f"{test_size[0]}x{test_size[1]}", "samples": samples if attention else 1,
               "peak_flop_s": peak["peak bf16" if v.bf16 else "peak fp32"]}
        for phase, flop in zip(("train", "infer"), flops[v.mode]):
            runs, ref = timed[f"{phase} {v.mode}"], timed.get(f"{phase} reference")
            seconds = statistics.median(runs)
            row.update({f"{phase}_s": seconds, f"{phase}_img_s": batch / seconds,
                        f"{phase}_peak_mb": memory[f"{phase} {v.mode}"], f"{phase}_flops": flop,
                        f"{phase}_util": flop / seconds / row["peak_flop_s"],
                        f"{phase}_vs_ref": statistics.median(a / b for a, b in zip(runs, ref)) if ref else None})
        rows.append(row)
    return rows


def bench_row(*, depth: int, attention: bool, mode: str, crop: tuple[int, int], batch: int,
              test_size: tuple[int, int], samples: int, device: torch.device, output_stride: int,
              warmup: int, iters: int, widths: dict) -> dict:
    """One mode alone: a training step (forward, loss, backward, SGD step) at ``crop`` x ``batch`` and
    eval-mode inference of one image at ``test_size`` with ``samples`` masks; absolute peak memory
    (:class:`PeakMemory`). ``mode`` is one of :data:`MODES`."""
    release_memory()
    torch.manual_seed(0)
    cfg = ModelConfig(depth=depth, attention=attention, output_stride=output_stride, test_samples=samples, **widths)
    (v,) = build_variants(build_model(cfg).to(device), [mode], device)
    images, labels, test = _inputs(device, crop, batch, test_size, cfg.num_classes)
    train, infer = _calls([v], images, labels, test[:1], samples)
    step_s, train_mem = time_call(train[mode], device=device, warmup=warmup, iters=iters, memory=True)
    infer_s, infer_mem = time_call(infer[mode], device=device, warmup=max(1, warmup // 2), iters=iters, memory=True)
    del v
    return {
        "device": device.type, "depth": depth, "attention": "on" if attention else "off", "mode": mode,
        "crop": f"{crop[0]}x{crop[1]}", "batch": batch, "step_ms": step_s * 1000, "train_img_s": batch / step_s,
        "train_peak_mb": train_mem, "test_size": f"{test_size[0]}x{test_size[1]}", "samples": samples if attention else 1,
        "infer_img_s": 1 / infer_s, "infer_peak_mb": infer_mem,
    }


def format_table(rows: list[dict]) -> str:
    """:func:`compare_modes` rows as one markdown table."""
    header = ["device", "depth", "attn", "mode", "crop x batch", "heads", "train step ms", "train img/s",
              "train +MiB", "train GFLOP/s (% peak)", "test size (n)", "infer img/s", "infer +MiB",
              "infer GFLOP/s (% peak)", "time vs reference (train / infer)"]

    def util(r: dict, phase: str) -> str:
        rate = r[f"{phase}_flops"] / r[f"{phase}_s"] / 1e9
        return f"{rate:.0f} ({100 * r[f'{phase}_util']:.0f}%)" if r[f"{phase}_flops"] else "-"

    cells = []
    for r in rows:
        vs = "-" if r["train_vs_ref"] is None else f"{r['train_vs_ref']:.2f}x / {r['infer_vs_ref']:.2f}x"
        cells.append([r["device"], f"R{r['depth']}", r["attention"], r["mode"], f"{r['crop']} x {r['batch']}",
                      r["strategy"], f"{1000 * r['train_s']:.0f}", f"{r['train_img_s']:.2f}", f"{r['train_peak_mb']:.0f}",
                      util(r, "train"), f"{r['test_size']} ({r['samples']})", f"{r['infer_img_s']:.2f}",
                      f"{r['infer_peak_mb']:.0f}", util(r, "infer"), vs])
    return markdown_table(pd.DataFrame(cells, columns=header))
