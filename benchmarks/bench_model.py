"""Print the model core's tables: parameter counts, and the multi-sample strategies side by side.

The strategies (reference: every stage repeated and the plain head per sample, as MMSegmentation
AIBR; looped; batched) are timed in alternating rounds for each depth and inference size, fp32
eager, training step and inference with n samples (:func:`aiblib.tools.bench.compare_modes`). One thread
by default: on a CPU shared with other work, two threads waiting on each other at every operation
make timings swing several-fold; one thread keeps the ratios steady.

Run (a few minutes on the CPU; serialise with other heavy jobs):
    flock /tmp/aibr-cpu.lock .venv/bin/python benchmarks/bench_model.py [--sizes 128x256 256x512] [--depths 18]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's aiblib, not an installed one

import torch

from aiblib.cli import parse_size
from aiblib.tools import compare_modes, format_table, parameter_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["256x512"], metavar="HxW", help="input sizes HxW")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--depths", type=int, nargs="+", default=(18,))
    parser.add_argument("--no-params", action="store_true", help="skip the parameter table")
    args = parser.parse_args()
    try:
        sizes = [parse_size(s, option="--sizes") for s in args.sizes]
    except ValueError as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"reference widths (ASPP 512, skip 48, aux 256), output stride 8, 19 classes\n")
    if not args.no_params:
        print("| backbone | attention | parameters (M) | attention parameters |")
        print("|---|---|---:|---:|")
        for row in parameter_counts():
            print(f"| R{row['depth']} | {'on' if row['attention'] else 'off'} | {row['params'] / 1e6:.3f} "
                  f"| {row['attention_params']:,} |", flush=True)
        print()
    rows = []
    for depth in args.depths:
        for size in sizes:
            rows += compare_modes(depth=depth, attention=True, modes=["reference", "looped", "batched"], crop=size,
                                  batch=args.batch, test_size=size, samples=args.samples, device=torch.device("cpu"),
                                  warmup=1, iters=args.rounds)
            print(f"# R{depth} {size[0]}x{size[1]} done", flush=True)
    print()
    print(format_table(rows))


if __name__ == "__main__":
    main()
