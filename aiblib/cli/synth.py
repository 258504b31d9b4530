"""``python -m aiblib synth --root data/synthetic --n-train N --n-val M --size HxW --seed S``.

Writes the synthetic three-domain street scenes of :mod:`aiblib.data.synth`. ``--size`` is
height x width, as the configuration's ``[h, w]``; a relative ``--root`` is under the project root,
wherever the command starts. A user mistake is one ``error: ...`` line
and exit status 2 (a malformed option is argparse's usage error, also status 2).
"""

from __future__ import annotations

import argparse
import os
import time

from aiblib.cli.common import command, parse_size
from aiblib.data import synth
from aiblib.paths import project_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aiblib synth", description=synth.__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data/synthetic", help="output data root (a relative path is under the "
                        "project root)")
    parser.add_argument("--n-train", type=int, default=500, help="training images per domain")
    parser.add_argument("--n-val", type=int, default=100, help="validation images per domain")
    parser.add_argument("--size", default="256x512", help="image size HxW (default 256x512)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default=",".join(synth.DOMAINS), help="comma-separated subset of " + ",".join(synth.DOMAINS))
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    return parser


@command
def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.size, option="--size")
    except ValueError as exc:
        parser.error(str(exc))  # usage and the message on stderr, exit status 2
    start = time.perf_counter()
    counts = synth.generate(project_path(args.root), n_train=args.n_train, n_val=args.n_val, size=size, seed=args.seed,
                            domains=tuple(d for d in args.domains.split(",") if d), workers=args.workers)
    total = sum(counts.values())
    seconds = time.perf_counter() - start
    print(f"wrote {total} images to {args.root} in {seconds:.1f} s ({total / max(seconds, 1e-9):.1f} images/s): "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
