"""``python -m aiblib bench``: the performance table the README quotes.

Training step (forward, loss, backward, SGD step) time and images/s, peak memory (CUDA peak
allocated, or this process's peak resident memory on the CPU), and eval-mode inference
images/s at the test size with n attention samples; attention on and off; fp32, bf16
autocast and channels_last. For example::

    flock /tmp/aibr-cpu.lock python -m aiblib bench --depths 18 50 --crop 256x512 --test-size 512x1024
    python -m aiblib bench --device cuda --depths 50 101 --crop 512x1024 --test-size 1024x2048
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from aiblib.bench import bench_row, format_rows
from aiblib.cli.common import command, fail, parse_size
from aiblib.model import ModelConfig

MODES = ("fp32", "bf16", "channels_last")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage mistakes raise ValueError (reported as one ``error:`` line by :func:`main`)."""

    def error(self, message: str):
        raise ValueError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m aiblib bench",
        description="Training step time, images/s and peak memory; inference images/s at the test size with n "
                    "samples; attention on/off; fp32, bf16 autocast and channels_last where the device has them.")
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--crop", default="256x512", metavar="HxW", help="training crop HxW (default 256x512)")
    parser.add_argument("--batch", type=int, default=2, help="training batch (default 2)")
    parser.add_argument("--test-size", default="512x1024", metavar="HxW", help="inference size HxW (default 512x1024)")
    parser.add_argument("--samples", type=int, default=4, help="attention samples at inference (default 4)")
    parser.add_argument("--attention", choices=("on", "off", "both"), default="both")
    parser.add_argument("--modes", nargs="+", choices=MODES,
                        default=None, help="default: fp32 bf16 channels_last (bf16 dropped where the GPU lacks it)")
    parser.add_argument("--output-stride", type=int, default=8, choices=(8, 16))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--narrow", action="store_true", help="CPU-sized heads (aspp 128, skip 24, aux 64)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    return parser


def _arguments(argv: list[str]) -> argparse.Namespace:
    """Parsed and checked arguments (``crop`` and ``test_size`` as (h, w)); ValueError on a user mistake."""
    args = _parser().parse_args(argv)
    args.crop = parse_size(args.crop, option="--crop")
    args.test_size = parse_size(args.test_size, option="--test-size")
    for option, value, least in (("--batch", args.batch, 1), ("--samples", args.samples, 1),
                                 ("--iters", args.iters, 1), ("--warmup", args.warmup, 0),
                                 ("--threads", args.threads, 0)):
        if value < least:
            raise ValueError(f"{option} {value}: expected at least {least}")
    for depth in args.depths:
        try:
            ModelConfig(depth=depth, output_stride=args.output_stride)
        except ValueError as exc:
            raise ValueError(f"--depths {depth}: {exc}") from None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return args


@command
def main(argv: list[str]) -> int:
    try:
        args = _arguments(argv)
    except ValueError as exc:
        return fail(exc)
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda" else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = args.modes or list(MODES)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        modes = [m for m in modes if m != "bf16"]
    attentions = {"on": [True], "off": [False], "both": [True, False]}[args.attention]
    widths = dict(aspp_channels=128, skip_channels=24, aux_channels=64) if args.narrow else {}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# aiblib bench on {name}, torch {torch.__version__}; output stride {args.output_stride}; "
          f"median of {args.iters} after {args.warmup} warm-up", flush=True)
    rows = []
    for depth in args.depths:
        for attention in attentions:
            for mode in modes:
                rows.append(bench_row(depth=depth, attention=attention, mode=mode, crop=args.crop, batch=args.batch,
                                      test_size=args.test_size, samples=args.samples, device=device,
                                      output_stride=args.output_stride, warmup=args.warmup, iters=args.iters,
                                      widths=widths))
                print(format_rows(rows[-1:]).splitlines()[-1] if len(rows) > 1 else format_rows(rows), flush=True)
    print()
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
