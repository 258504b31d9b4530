"""``python -m aiblib profile`` (``make gpu-profile``): where a training iteration of the paper's model
goes on this machine's GPU (see :mod:`aiblib.tools.profiling`): images/s and the phases for each
precision/layout variant with the augmentation on the CPU and on the device, as a table, and the
top kernels in the JSON.

Without a CUDA device it says so and exits 0 having run nothing; ``--tiny-cpu`` runs the same code
on the CPU at toy sizes (R18 at 64x128), to see that the profile itself works.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from aiblib.cli.common import command
from aiblib.paths import project_path
from aiblib.storage import write_text_atomic
from aiblib.tools import VARIANTS, ProfilePlan, format_profile, profile_training, tiny_profile_plan


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aiblib profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/gpu-profile/profile.json", help="the JSON written (default %(default)s)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="variants to measure (default: all)")
    parser.add_argument("--augment", nargs="+", choices=["cpu", "device"], help="augmentation places (default: both)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default 8)")
    parser.add_argument("--iterations", type=int, help="timed iterations per row (default 20)")
    parser.add_argument("--tiny-cpu", action="store_true", help="run on the CPU at toy sizes")
    return parser


def _plan(args: argparse.Namespace) -> ProfilePlan:
    plan = tiny_profile_plan() if args.tiny_cpu else ProfilePlan()
    chosen = {"variants": tuple(args.variants or ()), "augment": tuple(args.augment or ()),
              "workers": args.workers, "iterations": args.iterations}
    return dataclasses.replace(plan, **{k: v for k, v in chosen.items() if v})


def _print_row(row: dict) -> None:
    phases = ", ".join(f"{k} {row[k]:.1f}" for k in row if k.endswith(" ms"))
    print(f"{row['variant']} / augment {row['augment']}: {row['images_per_s']:.1f} images/s "
          f"({row['vs first']:.2f}x the first variant); {phases}", flush=True)


@command
def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.tiny_cpu and not torch.cuda.is_available():
        print("profile: no CUDA GPU here (torch.cuda.is_available() is False); nothing was run. "
              "Run it on a machine with an NVIDIA GPU (or pass --tiny-cpu to check the code on the CPU).")
        return 0
    plan = _plan(args)
    device = torch.device("cpu" if args.tiny_cpu else "cuda")
    name = "CPU" if args.tiny_cpu else torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory(prefix="aibr-profile-") as tmp:
        rows = profile_training(plan, scratch=Path(tmp), device=device, on_row=_print_row)
    result = {"device": name, "torch": torch.__version__, "plan": dataclasses.asdict(plan), "rows": rows}
    out = project_path(args.out)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    title = (f"Training iteration of R{plan.depth}-D{plan.output_stride} (attention {plan.attention}), {plan.images} "
             f"images of {plan.crop_size[0]}x{plan.crop_size[1]} from {plan.scene_size[0]}x{plan.scene_size[1]}, "
             f"{plan.workers} workers, on {name} (torch {torch.__version__})")
    print(format_profile(rows, title=title))
    for row in rows:
        top = "; ".join(f"{t['name'][:60]} {t['ms_per_iteration']:.1f} ms" for t in row["top"][:3])
        print(f"top, {row['variant']} / {row['augment']}: {top}")
    print(f"\nwritten to {out}")
    return 0
