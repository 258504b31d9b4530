"""``python -m aiblib prepare --root DATA_ROOT``: Cityscapes labelTrainIds, label checks, a summary CSV.

``python -m aiblib prepare --camvid PATH``: the CamVid folder's splits counted and every label checked.

``python -m aiblib prepare --check-images [--root DATA_ROOT | --camvid PATH] [--workers N]``: every image
and label decoded as training reads them, in parallel, and every damaged file listed; run it once after
downloading or copying data, before a long run (:mod:`aiblib.tools.imagecheck`).

Exit status 0 when every file is fine, 1 when problems were found (listed on stderr and in
``DATA_ROOT/aiblib_problems.txt``), 2 on a user mistake (one ``error: ...`` line). Relative paths are
under the project root, wherever the command starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from aiblib.cli.common import command, fail
from aiblib.paths import project_path
from aiblib.tools import check_camvid, check_images
from aiblib.tools import preparation as preparing


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib prepare", description=preparing.__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data", help="data root holding cityscapes/, bdd100k/, nightcity-fine/ "
                        "(a relative path is under the project root)")
    parser.add_argument("--datasets", default="", help="comma-separated subset of cityscapes,bdd100k,nightcity (default: all found)")
    parser.add_argument("--full", action="store_true", help="decode whole images, not only their headers")
    parser.add_argument("--camvid", default="", metavar="PATH",
                        help="check this CamVid folder (train/, trainannot/, val/, ...) instead of a data root")
    parser.add_argument("--check-images", action="store_true",
                        help="decode every image and label (of --root, or of --camvid) as training reads them, in "
                             "parallel, and list every damaged file; nothing is written")
    parser.add_argument("--workers", type=int, default=0, help="processes for --check-images (default: one per CPU)")
    args = parser.parse_args(argv)
    args.root, args.camvid = project_path(args.root), args.camvid and project_path(args.camvid)
    if args.check_images:
        return _check_images(args)
    if args.camvid:
        return _camvid(args.camvid)
    datasets = [d for d in args.datasets.split(",") if d] or None
    try:
        df = preparing.prepare(args.root, datasets=datasets, full=args.full)
    except RuntimeError as exc:  # the official Cityscapes tool failed on a file
        return fail(exc)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(df.drop(columns=["signature"]).to_string(index=False))
    print(f"summary written to {Path(args.root) / preparing.SUMMARY}")
    return _problems(df.attrs["problems"], f" (also in {Path(args.root) / preparing.PROBLEMS})")


def _camvid(root: str) -> int:
    summary = check_camvid(root)
    print(f"CamVid at {root}:\n" + summary.to_string(index=False))
    for note in summary.attrs["notes"]:
        print(note)
    return _problems(summary.attrs["problems"], "")


def _check_images(args: argparse.Namespace) -> int:
    if args.workers < 0:
        return fail(f"--workers {args.workers}: expected 0 (one per CPU) or more")
    root = args.camvid or args.root
    datasets = [d for d in args.datasets.split(",") if d] or None
    start = time.perf_counter()
    summary = check_images(root, camvid=bool(args.camvid), datasets=datasets, workers=args.workers)
    print(f"images and labels under {root}, decoded in {time.perf_counter() - start:.1f} s:\n"
          + summary.to_string(index=False))
    return _problems(summary.attrs["problems"], "")


def _problems(problems: list[str], where: str) -> int:
    """List ``problems`` on stderr; the exit status (1 when there are any)."""
    if problems:
        print(f"\n{len(problems)} problem(s){where}:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0
