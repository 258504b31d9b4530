"""``python -m aiblib convert SRC DST``: an MMSegmentation AIBR / DeepLabV3+ checkpoint to aiblib (relative paths
are under the project root, wherever the command starts)."""

from __future__ import annotations

import argparse

from aiblib.cli.common import command, fail
from aiblib.paths import project_path
from aiblib.storage import convert_file


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib convert",
                                     description="Convert an MMSegmentation AIBR / DeepLabV3+ checkpoint to aiblib.")
    parser.add_argument("src", help="MMSegmentation checkpoint (.pth)")
    parser.add_argument("dst", help="aiblib checkpoint to write")
    parser.add_argument("--beta", type=float, default=None, help="beta to record in the config (default 1e-3)")
    parser.add_argument("--output-stride", type=int, default=8, choices=(8, 16))
    args = parser.parse_args(argv)
    try:
        cfg, report = convert_file(project_path(args.src), project_path(args.dst), output_stride=args.output_stride,
                                   beta=args.beta)
    except ValueError as exc:
        return fail(f"{args.src}: {exc}")
    print(f"{args.src}: {len(report['mapped'])} keys mapped; model {cfg.to_dict()}")
    for key in report["unmapped"]:
        print(f"  unmapped source key: {key}")
    for key in report["missing"]:
        print(f"  missing model key (left at initialisation): {key}")
    print(f"wrote {args.dst}")
    return 0 if not report["missing"] else 1
