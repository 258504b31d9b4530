"""``python -m aiblib evaluate -f PARAMS [--checkpoint FILE] [-p dataset NAME] [-p split NAME]``.

::

    python -m aiblib evaluate -f params/synthetic-dg.yaml --checkpoint runs/dg-aib/checkpoints/last.pth \\
        -p dataset bdd100k -p split val -p export_count 8
    torchrun --standalone --nproc_per_node=4 -m aiblib evaluate -f ... --checkpoint ...

``--checkpoint`` (or ``-p checkpoint``) takes an aiblib checkpoint or an MMSegmentation AIBR
checkpoint (converted on the fly); without it, the run's ``checkpoints/last.pth``.
``-p dataset`` / ``-p split`` (or ``--dataset`` / ``--split``) choose what is scored
(default: the config's ``val_dataset`` / ``val_split``); every other ``-p`` is a config key.
The output folder is described in :mod:`aiblib.evaluation.evaluate`. Relative paths (``-f``,
``--checkpoint``, ``--out``) are under the project root, wherever the command starts.
"""

from __future__ import annotations

import argparse
import os

from aiblib.cli.common import add_config_arguments, command, config_from_args, keep_traceback_in
from aiblib.config import Config
from aiblib.evaluation import evaluate_checkpoint


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib evaluate", description="Score a checkpoint on a dataset split.",
                                     epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", help="aiblib or MMSegmentation checkpoint (default: -p checkpoint, "
                        "else the run's last.pth)")
    parser.add_argument("--dataset", help="dataset to score (default: val_dataset); also -p dataset NAME")
    parser.add_argument("--split", help="split to score (default: val_split); also -p split NAME")
    parser.add_argument("--out", help="output folder (default: <run dir>/eval/<dataset>-<split>)")
    parser.add_argument("--export-indices", type=int, nargs="+", metavar="I",
                        help="export these images (dataset positions) instead of the first export_count")
    args = parser.parse_args(argv)
    if args.help_config:
        print(Config.describe())
        return 0
    picked = {"dataset": args.dataset, "split": args.split}
    pairs = []
    for name, value in args.parameters:
        if name in picked:
            picked[name] = value
        else:
            pairs.append((name, value))
    cfg = config_from_args(args, pairs)
    keep_traceback_in(cfg.resolved_run_dir())
    evaluate_checkpoint(cfg, args.checkpoint, dataset=picked["dataset"], split=picked["split"], out_dir=args.out,
                        export_indices=args.export_indices, quiet=int(os.environ.get("RANK", "0")) != 0)
    return 0
