"""Rank CamVid training recipes side by side on the validation split; the test splits are never read.

Each variant is ``params/camvid-dusk.yaml`` with a few keys changed (:data:`VARIANTS`): it trains the baseline
on ``camvid:train-day`` and is scored on ``camvid:val`` in CamVid's 11 classes. Two uses:

- ``--probe N``: on this machine, N iterations of each variant one after the other; prints the seconds per
  iteration (from the run log, start-up excluded) and the iterations that fit in ``--minutes`` of training.
- otherwise: every variant trained and scored, ``--jobs`` at a time (a GPU runs many side by side); prints
  the table and writes ``OUT/recipes.csv`` (one row per variant, per-class IoU included).

    python benchmarks/camvid_recipes.py --probe 30 --minutes 6
    python benchmarks/camvid_recipes.py --out results/camvid-recipes --jobs 8 --camvid data/camvid
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's aiblib, not an installed one

import pandas as pd

from aiblib.config import load_config
from aiblib.evaluation import evaluate_checkpoint
from aiblib.paths import project_path
from aiblib.reporting import markdown_table
from aiblib.storage import last_checkpoint, read_log
from aiblib.training import train

PARAMS = "params/camvid-dusk.yaml"
HALF = {"base_size": [180, 240], "crop_size": [128, 160]}
THREE_QUARTERS = {"base_size": [270, 360], "crop_size": [160, 224]}
FULL = {"base_size": [360, 480], "crop_size": [192, 256]}
THIRD = {"base_size": [120, 160], "crop_size": [96, 128]}
HEADS = {"aspp_channels": 128, "skip_channels": 32, "aux_channels": 64}
RATIO = {"ratio_range": [0.75, 1.5]}
# variant -> keys changed from PARAMS (iterations: what the probe measured to fit about 6 minutes here)
VARIANTS: dict[str, dict] = {
    "half": {**HALF, "iterations": 1500},
    "half-lr0.05": {**HALF, "iterations": 1500, "lr": 0.05},
    "half-ratio0.75-1.5": {**HALF, "iterations": 1500, "ratio_range": [0.75, 1.5]},
    "half-8img": {**HALF, "iterations": 780, "images_per_iteration": 8},
    "half-heads128": {**HALF, "iterations": 1200, "aspp_channels": 128, "skip_channels": 32, "aux_channels": 64},
    "3/4": {**THREE_QUARTERS, "iterations": 850},
    "3/4-lr0.05": {**THREE_QUARTERS, "iterations": 850, "lr": 0.05},
    "full": {**FULL, "iterations": 620},
    "half-12min": {**HALF, "iterations": 3000},
    "3/4-12min": {**THREE_QUARTERS, "iterations": 1700},
    # refinements of what ranked first on an H200 (half resolution; the steps count; wider heads and ratio 0.75-1.5
    # helped); iterations from --probe 30 on the 2-core CPU: 0.246, 0.203, 0.158, 0.172 s per iteration
    "half-heads-ratio": {**HALF, **HEADS, **RATIO, "iterations": 1464},
    "half-heads-ratio-lr0.2": {**HALF, **HEADS, **RATIO, "iterations": 1464, "lr": 0.2},
    "half-small-crops": {**HALF, **HEADS, **RATIO, "crop_size": [96, 128], "iterations": 1769},
    "half-2img": {**HALF, **HEADS, **RATIO, "images_per_iteration": 2, "iterations": 2275},
    "third-heads-ratio": {**THIRD, **HEADS, **RATIO, "iterations": 2096},
    # the same recipe for 3, 12 and 20 minutes of CPU training (0.246 s per iteration)
    "half-heads-ratio-3min": {**HALF, **HEADS, **RATIO, "iterations": 732},
    "half-heads-ratio-12min": {**HALF, **HEADS, **RATIO, "iterations": 2928},
    "half-heads-ratio-20min": {**HALF, **HEADS, **RATIO, "iterations": 4880},
}


def _config(name: str, changes: dict, args: argparse.Namespace, **more):
    safe = name.replace("/", "_")
    if args.iterations:
        changes = {**changes, "iterations": args.iterations}
    return load_config(PARAMS, {**changes, "name": f"recipe-{safe}", "runs_root": args.runs_root,
                                "camvid_root": args.camvid, "attention": False, "num_workers": args.workers,
                                "threads": args.threads, "progress": False, **more})


def probe(name: str, args: argparse.Namespace) -> dict:
    """Seconds per iteration of ``name`` on this machine over ``args.probe`` iterations (the first 10 skipped)."""
    cfg = _config(name, VARIANTS[name], args, iterations=args.probe, log_interval=5, checkpoint_interval=0,
                  resume=False, val_dataset="camvid", val_split="val")
    run_dir = train(cfg)
    log = read_log(run_dir, "train")
    steady = log[log["iteration"] > 10]
    seconds = float((cfg.images_per_iteration / steady["images_per_s"]).mean())
    return {"variant": name, "s_per_iteration": round(seconds, 4),
            "iterations_in_budget": int(args.minutes * 60 / seconds)}


def rank(name: str, args: argparse.Namespace) -> dict:
    """Train ``name`` and score it on camvid:val; its row of the table."""
    t0 = time.perf_counter()
    cfg = _config(name, VARIANTS[name], args, resume=False)
    run_dir = train(cfg)
    scores = evaluate_checkpoint(cfg, last_checkpoint(run_dir), dataset="camvid", split="val", quiet=True)
    row = {"variant": name, "iterations": cfg.iterations, "mIoU": round(scores["mIoU"], 2),
           "seconds": round(time.perf_counter() - t0)}
    row |= {c["class"]: None if c["IoU"] is None else round(c["IoU"], 1) for c in scores["per_class"]}
    print(f"{name}: mIoU {row['mIoU']:.2f} ({row['seconds']} s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--camvid", default="data/camvid", help="the CamVid folder (train/, trainannot/, val/, ...)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--probe", type=int, default=0, help="iterations per variant to time on this machine")
    parser.add_argument("--minutes", type=float, default=6.0, help="the training budget the probe sizes for")
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per variant")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per variant (0: torch's default)")
    parser.add_argument("--iterations", type=int, default=0, help="every variant's iterations (0: its own; a smoke test)")
    parser.add_argument("--runs-root", default="runs/camvid-recipes")
    parser.add_argument("--out", default="", help="folder for recipes.csv")
    args = parser.parse_args()
    job = probe if args.probe else rank
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        rows = list(pool.map(job, args.variants, [args] * len(args.variants)))
    table = pd.DataFrame(rows)
    print(markdown_table(table))
    if args.out:
        out = project_path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / ("probe.csv" if args.probe else "recipes.csv"), index=False)


if __name__ == "__main__":
    main()
