"""``python -m aiblib bench``: the performance table the README quotes, one table.

For each depth and attention setting, every mode of :mod:`aiblib.tools.bench` (``reference``: the
reference's execution; fp32 eager with the default and the other multi-sample strategy; bf16
autocast; channels_last; torch.compile) timed side by side in alternating rounds: training
step (forward, loss, backward, SGD step) time and images/s, inference images/s at the test size
with n attention samples, the memory each call adds at its peak, achieved GFLOP/s as a fraction
of a large matmul's, and the time against the reference's. Without attention the strategies are
the same computation, so only fp32, bf16, channels_last and compiled are run. For example::

    flock /tmp/aibr-cpu.lock python -m aiblib bench --depths 18 --attention on --test-size 256x512
    python -m aiblib bench --device cuda --depths 50 --crop 512x1024 --test-size 1024x2048

With ``--data`` it prints the training data pipeline's table instead (:mod:`aiblib.tools.databench`): per image
at Cityscapes size, one thread, this project's pipeline beside MMSegmentation's steps written with cv2/numpy::

    python -m aiblib bench --data --rounds 20
"""

from __future__ import annotations

import argparse
import json

import cv2
import torch

from aiblib.cli.common import command, fail, parse_size
from aiblib.errors import ConfigError
from aiblib.model import ModelConfig
from aiblib.paths import project_path
from aiblib.tools import MODES, compare_modes, data_rows, default_modes, format_data_table, format_table

SAME_WITHOUT_ATTENTION = ("reference", "looped", "batched")   # one computation when there is no mask


class _Parser(argparse.ArgumentParser):
    """argparse whose usage mistakes raise ValueError (reported as one ``error:`` line by :func:`main`)."""

    def error(self, message: str):
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m aiblib bench",
        description="One table: training step and inference time, images/s, added peak memory and GFLOP/s "
                    "(fraction of a matmul's) per mode, timed side by side against the reference's execution.")
    parser.add_argument("--depths", type=int, nargs="+", default=[18, 50])
    parser.add_argument("--crop", default="256x512", metavar="HxW", help="training crop HxW (default 256x512)")
    parser.add_argument("--batch", type=int, default=2, help="training and inference batch (default 2)")
    parser.add_argument("--test-size", default="512x1024", metavar="HxW", help="inference size HxW (default 512x1024)")
    parser.add_argument("--samples", type=int, default=4, help="attention samples at inference (default 4)")
    parser.add_argument("--attention", choices=("on", "off", "both"), default="both")
    parser.add_argument("--modes", nargs="+", choices=MODES,
                        default=None, help="default: reference fp32, the other strategy, bf16 channels_last compiled "
                                           "(bf16 dropped where the GPU lacks it)")
    parser.add_argument("--output-stride", type=int, default=8, choices=(8, 16))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (compiled modes get at least 1)")
    parser.add_argument("--iters", type=int, default=3, help="timed rounds; each runs every mode once")
    parser.add_argument("--narrow", action="store_true", help="CPU-sized heads (aspp 128, skip 24, aux 64)")
    parser.add_argument("--json", help="also write the rows to this JSON file (a relative path is under the project root)")
    parser.add_argument("--data", action="store_true",
                        help="time the training data pipeline (one thread) beside MMSegmentation's, not the model")
    parser.add_argument("--data-size", default="1024x2048", metavar="HxW", help="--data: image size (default 1024x2048)")
    parser.add_argument("--data-crop", default="512x1024", metavar="HxW", help="--data: crop size (default 512x1024)")
    parser.add_argument("--rounds", type=int, default=10, help="--data: timed images (default 10)")
    return parser


def _arguments(argv: list[str]) -> argparse.Namespace:
    """Parsed and checked arguments (``crop`` and ``test_size`` as (h, w)); ValueError on a user mistake."""
    args = _parser().parse_args(argv)
    args.crop = parse_size(args.crop, option="--crop")
    args.test_size = parse_size(args.test_size, option="--test-size")
    args.data_size = parse_size(args.data_size, option="--data-size")
    args.data_crop = parse_size(args.data_crop, option="--data-crop")
    for option, value, least in (("--batch", args.batch, 1), ("--samples", args.samples, 1),
                                 ("--iters", args.iters, 1), ("--warmup", args.warmup, 0),
                                 ("--threads", args.threads, 0), ("--rounds", args.rounds, 1)):
        if value < least:
            raise ConfigError(f"{option} {value}: expected at least {least}")
    for depth in args.depths:
        try:
            ModelConfig(depth=depth, output_stride=args.output_stride)
        except ValueError as exc:
            raise ConfigError(f"--depths {depth}: {exc}") from None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    return args


def _modes(args: argparse.Namespace, device: torch.device, attention: bool) -> list[str]:
    modes = list(args.modes or default_modes(device, args.batch, args.test_size, args.output_stride))
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        modes = [m for m in modes if m != "bf16"]
    if not attention:
        modes = [m for m in modes if m not in SAME_WITHOUT_ATTENTION] or ["fp32"]
    return modes


def _data_table(args: argparse.Namespace) -> int:
    """``--data``: the data pipeline's table, one thread for torch and cv2."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"# aiblib bench --data: torch {torch.__version__}, OpenCV {cv2.__version__}, one thread; mean of "
          f"{args.rounds} images (each pipeline with the same draws) after {args.warmup} warm-up", flush=True)
    rows = data_rows(size=args.data_size, crop=args.data_crop, rounds=args.rounds, warmup=args.warmup)
    print()
    print(format_data_table(rows))
    if args.json:
        project_path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


@command
def main(argv: list[str]) -> int:
    try:
        args = _arguments(argv)
    except ValueError as exc:
        return fail(exc)
    if args.data:
        return _data_table(args)
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) or args.device == "cuda" else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    attentions = {"on": [True], "off": [False], "both": [True, False]}[args.attention]
    widths = dict(aspp_channels=128, skip_channels=24, aux_channels=64) if args.narrow else {}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# aiblib bench on {name}, torch {torch.__version__}; output stride {args.output_stride}; "
          f"median of {args.iters} alternating rounds after {args.warmup} warm-up", flush=True)
    rows = []
    for depth in args.depths:
        for attention in attentions:
            rows += compare_modes(depth=depth, attention=attention, modes=_modes(args, device, attention),
                                  crop=args.crop, batch=args.batch, test_size=args.test_size, samples=args.samples,
                                  device=device, output_stride=args.output_stride, warmup=args.warmup,
                                  iters=args.iters, widths=widths)
            print(f"# R{depth} attention {'on' if attention else 'off'} done", flush=True)
    peaks = {("bf16" if r["mode"] == "bf16" else "fp32"): r["peak_flop_s"] / 1e9 for r in rows}
    print("# matmul peak GFLOP/s (same rounds): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(peaks.items())))
    print("# +MiB: memory a call adds at its peak above what was in use before it; "
          "time vs reference: median of per-round ratios")
    print()
    print(format_table(rows))
    if args.json:
        project_path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
