"""``python -m aiblib gpu-check`` (``make gpu-check``): the paper's recipe checked and measured on this
machine's CUDA GPUs (see :mod:`aiblib.tools.gpucheck`), the results printed as tables and written as JSON.

Without a CUDA device it says so and exits 0 having run nothing. ``--tiny-cpu`` runs the same
steps on the CPU at toy sizes, to see that the check itself works.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from aiblib.cli.common import command
from aiblib.paths import project_path
from aiblib.storage import write_text_atomic
from aiblib.tools import cuda_plan, format_report, run_gpu_check, tiny_plan


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aiblib gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/gpu-check/gpu-check.json", help="the JSON written (default %(default)s)")
    parser.add_argument("--work", default="", help="data and run folders (default: a temporary folder, removed after)")
    parser.add_argument("--tiny-cpu", action="store_true", help="run the steps on the CPU at toy sizes")
    return parser


@command
def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.tiny_cpu and not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU here (torch.cuda.is_available() is False); nothing was run. "
              "Run it on a machine with one or more NVIDIA GPUs.")
        return 0
    with tempfile.TemporaryDirectory(prefix="aibr-gpu-check-") as tmp:
        work = project_path(args.work) if args.work else Path(tmp)
        plan = tiny_plan(work) if args.tiny_cpu else cuda_plan(work)
        result = run_gpu_check(plan)
    out = project_path(args.out)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(format_report(result))
    print(f"\nwritten to {out}")
    return 0
