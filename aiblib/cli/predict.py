"""``python -m aiblib predict CHECKPOINT IMAGE_OR_FOLDER ... [--out DIR] [-f PARAMS] [-p NAME VALUE ...]``.

::

    python -m aiblib predict runs/dg-aib/checkpoints/last.pth my_frames/ --out results/predictions/my_frames
    python -m aiblib predict dg-r50-authors.pth street.jpg -f params/paper/dg-r50.yaml

The checkpoint's model on your own images: a colour prediction, the trainIds and (with attention) the attention
map of each, at its own size, and ``predictions.csv`` (:mod:`aiblib.tools.inferencer`). The test size is the
configuration's ``base_size`` (``-f`` or ``-p base_size [h,w]``; default 1024x2048, the reference's);
``-p test_samples N`` and ``-p mean_mask true`` set the attention's sampling. An MMSegmentation checkpoint needs
the parameter file of its recipe (``-f params/paper/...``) for what its weights do not say (output stride).
Relative paths are under the project root, wherever the command starts.
"""

from __future__ import annotations

import argparse

from aiblib.cli.common import add_config_arguments, command, config_from_args
from aiblib.config import Config
from aiblib.errors import MissingFile
from aiblib.paths import project_path
from aiblib.tools import predict_images


@command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib predict", description="Run a checkpoint on your own images.",
                                     epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="aiblib or MMSegmentation checkpoint")
    parser.add_argument("images", nargs="+", help="PNG or JPEG files, or folders of them")
    parser.add_argument("--out", default="results/predictions", help="output folder (default: results/predictions)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default: cpu)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.help_config:
        print(Config.describe())
        return 0
    checkpoint = project_path(args.checkpoint)
    if not checkpoint.is_file():
        raise MissingFile(f"checkpoint not found: {checkpoint}")
    cfg = config_from_args(args)
    out = project_path(args.out)
    table = predict_images(cfg, checkpoint, [project_path(p) for p in args.images], out=out, device=args.device)
    for row in table.itertuples():
        attention = f", attention mu {row.mu_mean:.3f} ± {row.mu_spatial_std:.3f}" if row.mu_mean is not None else ""
        print(f"{row.file}: {row.width}x{row.height}, confidence {row.confidence:.3f}{attention}")
    print(f"{len(table)} image(s): predictions, trainIds and attention maps in {out}, the table in "
          f"{out / 'predictions.csv'}")
    return 0
