"""Paired seeds at a larger scale on a CUDA GPU, without papermill.

For each seed, the baseline and AIBR are trained with the parameter file (by default
``params/synthetic-dg-r50.yaml``: ResNet-50, output stride 8) and scored on its
``eval_targets``; each run gets ``OUT/<name>/scores.json`` and ``per_class.csv``, as
``make run`` writes them. Then ``OUT/comparison.csv`` and ``OUT/comparison.png`` pair the
runs by seed (:mod:`aiblib.reporting.comparison`), and ``OUT/device.json`` records the card, the
versions and each run's seconds. A seed pair is not started when ``--budget-s`` would not
hold it (estimated from the pairs before), so a time-limited lease still ends with a table.

    python benchmarks/cuda_seeds.py --seeds 0 1 2 --out results/seeds-dg-r50-h200
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from aiblib.config import Config, load_config
from aiblib.data.synth import ensure_generated
from aiblib.evaluation import evaluate_checkpoint
from aiblib.paths import project_path, project_relative
from aiblib.reporting import comparison, report
from aiblib.storage import last_checkpoint
from aiblib.tools import prepare
from aiblib.training import train

METHODS = (("baseline", False), ("aib", True))


def one_run(cfg: Config, out_root: Path) -> float:
    """Train ``cfg``, score its targets, write its scores; returns the seconds taken."""
    t0 = time.perf_counter()
    run_dir = train(cfg)
    ckpt = last_checkpoint(run_dir)
    scores = {}
    for target in cfg.eval_targets:
        dataset, split = target.split(":")
        scores[target] = evaluate_checkpoint(cfg, ckpt, dataset=dataset, split=split, export_count=0, quiet=True)
    out = out_root / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    report.write_scores(out, cfg, scores, checkpoint=project_relative(ckpt))
    report.per_class_table(scores).to_csv(out / "per_class.csv")
    seconds = time.perf_counter() - t0
    print(f"{cfg.name}: " + "  ".join(f"{t} {s['mIoU']:.2f}" for t, s in scores.items()) + f"  ({seconds:.0f} s)", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params/synthetic-dg-r50.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True, help="results folder of the runs and the comparison")
    parser.add_argument("--runs-root", default="runs/seeds-r50")
    parser.add_argument("--budget-s", type=float, default=0.0, help="stop starting seed pairs past this (0: no limit)")
    args = parser.parse_args()
    start, out_root = time.perf_counter(), project_path(args.out)
    base = load_config(args.params)
    ensure_generated(project_path(base.data_root), n_train=base.synth_train, n_val=base.synth_val,
                     size=tuple(base.synth_size), seed=base.synth_seed, workers=8)
    prepare(project_path(base.data_root), verbose=False)
    seconds: dict[str, float] = {}
    for seed in args.seeds:
        spent = time.perf_counter() - start
        pair = sum(seconds.values()) / (len(seconds) // 2) if seconds else 0.0   # the mean of the pairs so far
        if args.budget_s and spent + pair > args.budget_s:
            print(f"seed {seed}: not started ({spent:.0f} s spent, a pair takes about {pair:.0f} s)", flush=True)
            break
        for method, attention in METHODS:
            name = f"{base.protocol}-{method}-s{seed}"
            cfg = load_config(args.params, {"attention": attention, "seed": seed, "name": name,
                                            "runs_root": args.runs_root})
            seconds[name] = one_run(cfg, out_root)
    write_comparison(out_root, args.params, seconds)


def write_comparison(out_root: Path, params: str, seconds: dict[str, float]) -> None:
    """comparison.csv / .png of the runs under ``out_root`` and device.json."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    table = comparison.gather([out_root])
    if table is not None:
        table.to_csv(out_root / "comparison.csv", index=False)
        fig = comparison.plot_comparison(table, title=f"AIBR - baseline, {Path(params).stem}, {device}")
        fig.savefig(out_root / "comparison.png", dpi=90, bbox_inches="tight")
        print(report.markdown_table(table))
    record = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda, "params": params,
              "seconds": seconds}
    (out_root / "device.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
