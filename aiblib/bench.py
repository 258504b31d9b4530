"""Timing helpers: parameter counts, one training step, multi-sample inference batched vs looped.

Times are wall-clock seconds, the median over ``repeats`` runs after ``warmup`` runs.

``python -m aiblib bench`` (:func:`main`) prints the performance table the README quotes:
training step (forward, loss, backward, SGD step) time and images/s, peak memory (CUDA
peak allocated, or this process's peak resident memory on the CPU), and eval-mode
inference images/s at the test size with n attention samples; attention on and off;
fp32, bf16 autocast and channels_last. For example::

    flock /tmp/aibr-cpu.lock python -m aiblib bench --depths 18 50 --crop 256x512 --test-size 512x1024
    python -m aiblib bench --device cuda --depths 50 101 --crop 512x1024 --test-size 1024x2048
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path
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

# ----------------------------------------------------------------------
# the table of `python -m aiblib bench` (engine)
class _PeakRSS:
    """Peak resident memory of this process while the block runs (polled every 2 ms), in MiB."""

    def __init__(self) -> None:
        self.peak = 0.0

    @staticmethod
    def current() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:  # not Linux
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def __enter__(self) -> "_PeakRSS":
        self._stop = threading.Event()
        self.peak = self.current()

        def poll() -> None:
            while not self._stop.wait(0.002):
                self.peak = max(self.peak, self.current())

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def _measure(fn, *, device: torch.device, warmup: int, iters: int) -> tuple[float, float]:
    """Median seconds per call of ``fn`` and peak memory (CUDA peak allocated, or process RSS) in MiB."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times), torch.cuda.max_memory_allocated(device) / 2**20
    with _PeakRSS() as rss:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), rss.peak


def _release_memory() -> None:
    """Return freed heap memory to the OS, so that one row's peak RSS is not inflated by the previous rows."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _size(text: str) -> tuple[int, int]:
    """'HxW' -> (h, w)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (height x width), got {text!r}") from None
    return h, w


def bench_row(*, depth: int, attention: bool, mode: str, crop: tuple[int, int], batch: int,
              test_size: tuple[int, int], samples: int, device: torch.device, output_stride: int,
              warmup: int, iters: int, widths: dict) -> dict:
    """One row: a training step (forward, loss, backward, SGD step) at ``crop`` x ``batch`` and
    eval-mode inference of one image at ``test_size`` with ``samples`` masks; ``mode`` is
    'fp32', 'bf16' (autocast) or 'channels_last' (fp32)."""
    _release_memory()
    torch.manual_seed(0)
    cfg = ModelConfig(depth=depth, attention=attention, output_stride=output_stride, test_samples=samples, **widths)
    model = build_model(cfg).to(device)
    cl = mode == "channels_last"
    bf16 = mode == "bf16"
    if cl:
        model.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if cl else torch.contiguous_format
    images = torch.randn(batch, 3, *crop, device=device).contiguous(memory_format=fmt)
    labels = torch.randint(0, cfg.num_classes, (batch, *crop), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def train_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(images)
        out = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
        loss = segmentation_loss(out, labels, beta=cfg.beta)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    step_s, train_mem = _measure(train_step, device=device, warmup=warmup, iters=iters)
    model.eval()
    test = torch.randn(1, 3, *test_size, device=device).contiguous(memory_format=fmt)

    @torch.no_grad()
    def infer() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model(test)

    infer_s, infer_mem = _measure(infer, device=device, warmup=max(1, warmup // 2), iters=iters)
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiblib bench",
        description="Training step time, images/s and peak memory; inference images/s at the test size with n "
                    "samples; attention on/off; fp32, bf16 autocast and channels_last where the device has them.")
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--crop", type=_size, default=(256, 512), help="training crop HxW (default 256x512)")
    parser.add_argument("--batch", type=int, default=2, help="training batch (default 2)")
    parser.add_argument("--test-size", type=_size, default=(512, 1024), help="inference size HxW (default 512x1024)")
    parser.add_argument("--samples", type=int, default=4, help="attention samples at inference (default 4)")
    parser.add_argument("--attention", choices=("on", "off", "both"), default="both")
    parser.add_argument("--modes", nargs="+", choices=("fp32", "bf16", "channels_last"),
                        default=None, help="default: fp32 bf16 channels_last (bf16 dropped where the GPU lacks it)")
    parser.add_argument("--output-stride", type=int, default=8, choices=(8, 16))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--narrow", action="store_true", help="CPU-sized heads (aspp 128, skip 24, aux 64)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda" else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.modes or ["fp32", "bf16", "channels_last"]
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        modes = [m for m in modes if m != "bf16"]
    attentions = {"on": [True], "off": [False], "both": [True, False]}[args.attention]
    widths = dict(aspp_channels=128, skip_channels=24, aux_channels=64) if args.narrow else {}
    rows = []
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# aiblib bench on {name}, torch {torch.__version__}; output stride {args.output_stride}; "
          f"median of {args.iters} after {args.warmup} warm-up", flush=True)
    for depth in args.depths:
        for attention in attentions:
            for mode in modes:
                row = bench_row(depth=depth, attention=attention, mode=mode, crop=args.crop, batch=args.batch,
                                test_size=args.test_size, samples=args.samples, device=device,
                                output_stride=args.output_stride, warmup=args.warmup, iters=args.iters, widths=widths)
                rows.append(row)
                print(format_rows([row]).splitlines()[-1] if len(rows) > 1 else format_rows([row]), flush=True)
    print()
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
