"""Print the model core's table: parameter counts, CPU training-step time, multi-sample inference.

Run (takes a few minutes on 2 cores; serialise with other heavy jobs):
    PYTHONPATH=. flock /tmp/aibr-cpu.lock .venv/bin/python benchmarks/bench_model.py [--size 256x512]
"""

from __future__ import annotations

import argparse
import platform

import torch

from aiblib.bench import parameter_counts, time_multisample, time_train_step
from aiblib.cli.common import parse_size
from aiblib.model import ModelConfig, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x512", metavar="HxW", help="input size HxW (default 256x512)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--depths", type=int, nargs="+", default=(18, 50))
    args = parser.parse_args()
    try:
        size = parse_size(args.size, option="--size")
    except ValueError as exc:
        parser.error(str(exc))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"reference widths (ASPP 512, skip 48, aux 256), output stride 8, 19 classes\n")

    print("| backbone | attention | parameters (M) | attention parameters |")
    print("|---|---|---:|---:|")
    for row in parameter_counts():
        print(f"| R{row['depth']} | {'on' if row['attention'] else 'off'} | {row['params'] / 1e6:.3f} | {row['attention_params']:,} |")

    print(f"\n| backbone | attention | train step fwd+bwd, batch {args.batch} at {size[0]}x{size[1]} (s) |")
    print("|---|---|---:|")
    for depth in args.depths:
        for attention in (False, True):
            torch.manual_seed(0)
            model = build_model(ModelConfig(depth=depth, attention=attention))
            t = time_train_step(model, batch=args.batch, size=size, repeats=args.repeats)
            print(f"| R{depth} | {'on' if attention else 'off'} | {t:.2f} |", flush=True)

    print(f"\n| backbone | n samples | eval forward, batch 1 at {size[0]}x{size[1]}: batched (s) | looped (s) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for depth in args.depths:
        torch.manual_seed(0)
        model = build_model(ModelConfig(depth=depth))
        t = time_multisample(model, samples=4, size=size, repeats=args.repeats)
        print(f"| R{depth} | 4 | {t['batched']:.2f} | {t['looped']:.2f} | {t['looped'] / t['batched']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
