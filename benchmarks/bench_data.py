"""Data benchmarks: generator speed, loader + training-transform throughput, class frequencies,
(``--gap``) the synthetic domain gap seen by a small CNN, and (``--pipeline``, alone) the training
pipeline per worker at Cityscapes size.

    flock /tmp/aibr-cpu.lock .venv/bin/python benchmarks/bench_data.py [--gap] [--out DIR]
    flock /tmp/aibr-cpu.lock .venv/bin/python benchmarks/bench_data.py --pipeline

``--pipeline``: 2048x1024 PNGs (the synthetic generator's; its files, ~3.6 MB, are larger than
Cityscapes' ~2 MB, so decoding is if anything slower here), one thread as in a DataLoader worker, each step
timed in alternating rounds: image decode with torchvision.io (what :mod:`aiblib.data.files` uses)
and with PIL, label decode, the training transform (random resize, crop, flip, photometric
distortion, pad, normalize), and the whole dataset item. Images/s per worker = 1 / item seconds;
workers for 20 images/s = ceil(20 / that), each worker on its own core.

Prints markdown tables (sizes as HxW). Everything is written under a temporary folder unless
``--root`` names an existing prepared synthetic root (then the frequency table and the gap
experiment use it as is). mIoU is scored with :mod:`aiblib.evaluation.metrics`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's aiblib, not an installed one

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from aiblib.data import (
    CLASSES,
    IGNORE_INDEX,
    NUM_CLASSES,
    build_dataset,
    decode_image,
    decode_label,
    synth,
    test_transform,
    train_transform,
)
from aiblib.evaluation import confusion_matrix, metrics_from_confusion
from aiblib.tools import prepare

# Share of all pixels per trainId class in Cityscapes gtFine train, as tabulated in
# github.com/m-birke/automotive-segmentation-datasets (cityscapes.md, "pixel-wise occ [%]").
CITYSCAPES_PERCENT = (32.7, 5.3, 20.1, 0.59, 0.77, 1.1243, 0.1823, 0.5015, 14.3, 0.98, 3.5, 1.1, 0.1295,
                      6.0, 0.2406, 0.2271, 0.1907, 0.0848, 0.4030)


def bench_generator(tmp: Path, n: int, size: tuple[int, int], workers: int) -> dict:
    start = time.perf_counter()
    n_val = n // 5
    counts = synth.generate(tmp / f"gen-{size[0]}x{size[1]}", n_train=n - n_val, n_val=n_val, size=size, seed=0, workers=workers)
    seconds = time.perf_counter() - start
    total = sum(counts.values())
    return {"size": f"{size[0]}x{size[1]}", "images": total, "workers": workers, "seconds": seconds, "images_per_s": total / seconds}


def bench_loader(root: Path, base: tuple[int, int], crop: tuple[int, int], workers: int, batches: int,
                 batch_size: int = 2) -> dict:
    ds = build_dataset("cityscapes", root, "train", train_transform(crop_size=crop, base_size=base))
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=False)
    seen = 0
    start = None
    it = iter(loader)
    for i in range(batches + 1):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        if i == 0:  # leave out worker start-up and the first batch
            start = time.perf_counter()
            continue
        seen += batch["image"].shape[0]
    seconds = time.perf_counter() - start
    return {"image": f"{base[0]}x{base[1]}", "crop": f"{crop[0]}x{crop[1]}", "workers": workers,
            "images_per_s": seen / seconds, "ms_per_image": 1000 * seconds / seen}


def _pil_decode(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()


def bench_pipeline(tmp: Path, n: int = 6, rounds: int = 3) -> list[dict]:
    """Per-worker timings of the Cityscapes-size training pipeline (see the module docstring):
    rows ``{step, value, unit}``."""
    torch.set_num_threads(1)
    root = tmp / "cs-1024x2048"
    synth.generate(root, n_train=n, n_val=0, size=(1024, 2048), seed=0, domains=("cityscapes",), workers=1)
    prepare(root, verbose=False, splits=("train",))
    transform = train_transform(crop_size=(512, 1024), base_size=(1024, 2048))
    ds = build_dataset("cityscapes", root, "train", transform)
    pairs = [(ds.files[i][0], ds.files[i][1]) for i in range(len(ds))]
    decoded = [(decode_image(a), decode_label(b)) for a, b in pairs]
    steps = {"decode image (torchvision.io)": lambda i: decode_image(pairs[i][0]),
             "decode image (PIL)": lambda i: _pil_decode(pairs[i][0]),
             "decode label (torchvision.io)": lambda i: decode_label(pairs[i][1]),
             "training transform": lambda i: transform(*decoded[i]),
             "dataset item (decode + transform)": lambda i: ds[i]}
    times: dict[str, list[float]] = {k: [] for k in steps}
    torch.manual_seed(0)
    for _ in range(rounds):
        for i in range(len(pairs)):
            for step, fn in steps.items():
                start = time.perf_counter()
                fn(i)
                times[step].append(time.perf_counter() - start)
    item = statistics.median(times["dataset item (decode + transform)"])
    mb = statistics.mean(p[0].stat().st_size for p in pairs) / 2**20
    rows = [{"step": "image PNG size", "value": mb, "unit": "MiB"}]
    rows += [{"step": step, "value": 1000 * statistics.median(v), "unit": "ms"} for step, v in times.items()]
    rows += [{"step": "images/s per worker", "value": 1 / item, "unit": "images/s"},
             {"step": "workers for 20 images/s", "value": math.ceil(20 * item), "unit": "workers (one core each)"}]
    return rows


def class_frequencies(root: Path) -> dict[str, np.ndarray]:
    df = prepare(root, verbose=False)
    out = {}
    for domain in synth.DOMAINS:
        rows = df[(df["dataset"] == domain)]
        weights = rows["images"].to_numpy(dtype=float)
        freq = (rows[list(CLASSES)].to_numpy(dtype=float) * weights[:, None]).sum(0) / weights.sum()
        out[domain] = freq
    return out


def tiny_cnn() -> nn.Module:
    """A ~0.2 M-parameter fully convolutional net (stride 4, dilated context) for the gap test."""

    def block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    return nn.Sequential(block(3, 32, 2), block(32, 32), block(32, 64, 2), block(64, 64), block(64, 64, dilation=2),
                         block(64, 64, dilation=4), block(64, 64, dilation=8), nn.Conv2d(64, NUM_CLASSES, 1))


def miou(model: nn.Module, ds, max_items: int = 100) -> float:
    conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for i in range(min(len(ds), max_items)):
            item = ds[i]
            logits = model(item["image"][None])
            logits = nn.functional.interpolate(logits, size=item["label"].shape, mode="bilinear", align_corners=False)
            conf += confusion_matrix(logits.argmax(1)[0], item["label"], NUM_CLASSES)
    return metrics_from_confusion(conf)["mIoU"]


def gap_experiment(root: Path, iters: int, train_on: str, size: tuple[int, int]) -> dict:
    torch.manual_seed(0)
    crop = (size[0] // 2, size[1] // 2)
    train = build_dataset(train_on, root, "train", train_transform(crop_size=crop, base_size=size))
    loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=1, drop_last=True)
    model = tiny_cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=iters, pct_start=0.1)
    step, start = 0, time.perf_counter()
    while step < iters:
        for batch in loader:
            model.train()
            logits = nn.functional.interpolate(model(batch["image"]), size=batch["label"].shape[-2:], mode="bilinear", align_corners=False)
            loss = nn.functional.cross_entropy(logits, batch["label"], ignore_index=IGNORE_INDEX)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step >= iters:
                break
    result = {"train_on": train_on, "iters": iters, "train_s": time.perf_counter() - start, "final_loss": float(loss.detach())}
    test = test_transform(base_size=size)
    for name in synth.DOMAINS:
        result[name] = miou(model, build_dataset(name, root, "val", test))
    return result


def table(rows: list[dict], cols: list[str], fmt: dict | None = None) -> str:
    fmt = fmt or {}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.get(c, "{}").format(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="", help="an existing prepared synthetic root (256x512) to reuse")
    parser.add_argument("--n", type=int, default=500, help="images per domain (4/5 train, 1/5 val) for the generator timing")
    parser.add_argument("--batches", type=int, default=20, help="batches of 2 per loader measurement")
    parser.add_argument("--gap", action="store_true", help="also run the domain-gap experiment")
    parser.add_argument("--gap-iters", type=int, default=400)
    parser.add_argument("--out", default="", help="write results.json here")
    parser.add_argument("--pipeline", action="store_true", help="only the Cityscapes-size per-worker pipeline table")
    args = parser.parse_args()
    if args.pipeline:
        with tempfile.TemporaryDirectory(prefix="aibr-bench-pipeline-") as tmpdir:
            rows = bench_pipeline(Path(tmpdir))
        print("## Training pipeline per worker, 2048x1024 PNG -> 512x1024 crop (1 thread; median ms per image)\n")
        print(table(rows, ["step", "value", "unit"], {"value": "{:.1f}"}))
        return
    torch.set_num_threads(2)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="aibr-bench-data-") as tmpdir:
        tmp = Path(tmpdir)
        gen = [bench_generator(tmp, args.n, (256, 512), 2)]
        print("## Generator (3 domains, train + val)\n")
        print(table(gen, ["size", "images", "workers", "seconds", "images_per_s"], {"seconds": "{:.1f}", "images_per_s": "{:.1f}"}))
        root = Path(args.root) if args.root else tmp / "gen-256x512"
        big = tmp / "big"
        t0 = time.perf_counter()
        synth.generate(big, n_train=12, n_val=0, size=(1024, 2048), seed=0, domains=("cityscapes",), workers=2)
        gen_big = 12 / (time.perf_counter() - t0)
        prepare(big, verbose=False, splits=("train",))
        loader_rows = []
        for workers in (0, 2):
            loader_rows.append(bench_loader(big, (1024, 2048), (512, 1024), workers, args.batches // 2))
            loader_rows.append(bench_loader(root if args.root else _prepared(root), (256, 512), (128, 256), workers, args.batches))
        print(f"\n(generator at 1024x2048: {gen_big:.2f} images/s with 2 workers)\n")
        print("## Loader + training transform (cityscapes layout, batch 2, decode + resize/crop/flip/photometric/pad/normalize)\n")
        print(table(loader_rows, ["image", "crop", "workers", "images_per_s", "ms_per_image"], {"images_per_s": "{:.1f}", "ms_per_image": "{:.0f}"}))
        freqs = class_frequencies(root)
        real = np.array(CITYSCAPES_PERCENT) / sum(CITYSCAPES_PERCENT)
        rows = [{"class": c, **{d: 100 * f[i] for d, f in freqs.items()}, "Cityscapes": 100 * real[i]} for i, c in enumerate(CLASSES)]
        tv = {d: 0.5 * float(np.abs(f - real).sum()) for d, f in freqs.items()}
        rows.append({"class": "total variation vs Cityscapes", **tv, "Cityscapes": 0.0})
        print("\n## Class pixel frequencies (% of labelled pixels, train+val)\n")
        print(table(rows, ["class", *freqs, "Cityscapes"], {k: "{:.2f}" for k in [*freqs, "Cityscapes"]}))
        results.update(generator=gen, generator_2048_images_per_s=gen_big, loader=loader_rows,
                       frequencies={d: f.tolist() for d, f in freqs.items()}, total_variation=tv)
        if args.gap:
            gap_rows = [gap_experiment(root, args.gap_iters, src, (256, 512)) for src in synth.DOMAINS]
            print(f"\n## Domain gap: tiny CNN ({sum(p.numel() for p in tiny_cnn().parameters()) / 1e3:.0f} k params), "
                  f"{args.gap_iters} iterations of batch 8 at 128x256 crops, mIoU % on each val split\n")
            print(table(gap_rows, ["train_on", "cityscapes", "bdd100k", "nightcity", "train_s"],
                        {"cityscapes": "{:.1f}", "bdd100k": "{:.1f}", "nightcity": "{:.1f}", "train_s": "{:.0f}"}))
            results["gap"] = gap_rows
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "bench_data.json").write_text(json.dumps(results, indent=1))


def _prepared(root: Path) -> Path:
    if not (root / "aiblib_summary.csv").exists():
        prepare(root, verbose=False)
    return root


if __name__ == "__main__":
    main()
