"""Evaluation: score a checkpoint on a dataset split, print and write the tables.

::

    python -m aiblib evaluate -f params/synthetic-dg.yaml --checkpoint runs/dg-aib/checkpoints/last.pth \\
        -p dataset bdd100k -p split val -p export_count 8
    torchrun --standalone --nproc_per_node=4 -m aiblib evaluate -f ... --checkpoint ...

``--checkpoint`` (or ``-p checkpoint``) takes an aiblib checkpoint or an MMSegmentation AIBR
checkpoint (converted on the fly); without it, the run's ``checkpoints/last.pth``.
``-p dataset`` / ``-p split`` (or ``--dataset`` / ``--split``) choose what is scored
(default: the config's ``val_dataset`` / ``val_split``); every other ``-p`` is a config key.

Predictions are made at the test size (the image resized to fit ``base_size``),
whole or slide, optionally multi-scale + flip (softmax averaged over views), with the
model's ``test_samples`` masks per image (noise seeded by ``eval_seed`` and the image
index, so results do not depend on the number of processes) or its deterministic mode;
the scores are resized (bilinear) to the label's original size, then argmax.

The output folder (default ``<run dir>/eval/<dataset>-<split>/``), written by rank 0::

    metrics.json     {"dataset", "split", "num_images", "mIoU", "mAcc", "aAcc",
                      "per_class": [{"class", "IoU", "Acc"}, ...], "checkpoint": {...},
                      "inference": {...}, "model_config": {...}, "config": {...}, "seconds"}
                     (percent values; null = class absent)
    per_class.csv    class,IoU,Acc  (percent; empty = absent)
    confusion.npy    int64 (K, K), rows = label, columns = prediction
    config.yaml      the configuration used
    exports/         for the first export_count images (exports.csv lists them):
        NNNN_<name>_pred.png      colour prediction at the label's size
        NNNN_<name>_mu.png/.npy   attention mu at the image's original size (float16 in [0, 1])
        NNNN_<name>_entropy.png/.npy  predictive entropy of the sample-averaged softmax (nats, float16)
        NNNN_<name>_mi.png/.npy   mutual information between samples and prediction (nats, float16;
                                  0 with one sample). The entropy PNG spans [0, ln K]; the MI PNG
                                  spans [0, the image's max MI] (exports.csv column mi_max), since
                                  MI is often tiny; mu PNG spans [0, 1].
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from aiblib.config import Config
from aiblib.metrics import all_reduce_confusion, confusion_matrix, format_table, metrics_from_confusion

__all__ = ["evaluate", "evaluate_model", "predict", "uncertainty", "analyze", "main"]


# ----------------------------------------------------------------------
# inference
def _forward(model: nn.Module, x: torch.Tensor, *, generator: torch.Generator | None, use_bf16: bool) -> dict:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        out = model(x, generator=generator)
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}


def _logits_at_input(model: nn.Module, x: torch.Tensor, *, generator, use_bf16: bool) -> torch.Tensor:
    """(1,3,h,w) -> (1,K,h,w): the model's (sample-averaged) logits resized to its input."""
    out = _forward(model, x, generator=generator, use_bf16=use_bf16)["out"]
    return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _slide(model: nn.Module, x: torch.Tensor, *, crop: Sequence[int], stride: Sequence[int], generator,
           use_bf16: bool) -> torch.Tensor:
    """MMSegmentation's slide inference: windows of ``crop``, logits averaged where they overlap."""
    _, _, h, w = x.shape
    ch, cw = min(crop[0], h), min(crop[1], w)
    sh, sw = stride
    rows = max(h - ch + sh - 1, 0) // sh + 1
    cols = max(w - cw + sw - 1, 0) // sw + 1
    total = None
    count = x.new_zeros((1, 1, h, w))
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            logits = _logits_at_input(model, x[:, :, y1:y2, x1:x2], generator=generator, use_bf16=use_bf16)
            if total is None:
                total = x.new_zeros((1, logits.shape[1], h, w))
            total[:, :, y1:y2, x1:x2] += logits
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


@torch.no_grad()
def predict(model: nn.Module, image: torch.Tensor, *, mode: str = "whole", slide_crop: Sequence[int] = (512, 1024),
            slide_stride: Sequence[int] = (341, 341), scales: Sequence[float] = (1.0,), flip: bool = False,
            generator: torch.Generator | None = None, use_bf16: bool = False) -> torch.Tensor:
    """Scores for one normalized image (1,3,H,W) at its own size: (1,K,H,W).

    One view: the logits. Several views (scales x flip): the mean of their softmax.
    The model must be in eval mode.
    """
    _, _, h, w = image.shape
    views = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
    result = None
    for scale, flipped in views:
        x = image
        if scale != 1.0:
            x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                              align_corners=False)
        if flipped:
            x = x.flip(-1)
        if mode == "slide":
            logits = _slide(model, x, crop=slide_crop, stride=slide_stride, generator=generator, use_bf16=use_bf16)
        elif mode == "whole":
            logits = _logits_at_input(model, x, generator=generator, use_bf16=use_bf16)
        else:
            raise ValueError(f"eval_mode must be 'whole' or 'slide', got {mode!r}")
        if flipped:
            logits = logits.flip(-1)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        if len(views) == 1:
            return logits
        probs = logits.softmax(1)
        result = probs if result is None else result + probs
    return result / len(views)


def uncertainty(outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictive entropy and mutual information (nats), (B,1,h,w) at logit resolution.

    With per-sample logits ``sample_logits`` (n,B,K,h,w): p_k = softmax of sample k,
    p = mean_k p_k; entropy = H(p); MI = H(p) - mean_k H(p_k) >= 0. With one sample
    (``out`` only) MI is 0.
    """
    if "sample_logits" in outputs and outputs["sample_logits"] is not None:
        logp = outputs["sample_logits"].float().log_softmax(2)  # (n,B,K,h,w)
    else:
        logp = outputs["out"].float().log_softmax(1)[None]
    p = logp.exp()
    mean_p = p.mean(0)
    entropy = -(mean_p * mean_p.clamp_min(1e-12).log()).sum(1, keepdim=True)
    expected = -(p * logp).sum(2).mean(0).unsqueeze(1)
    mi = (entropy - expected).clamp_min(0) if logp.shape[0] > 1 else torch.zeros_like(entropy)
    return entropy, mi


# ----------------------------------------------------------------------
def _image_generator(device: torch.device, seed: int, index: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
    return g


def _first(items: list) -> Any:
    return items[0]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))[:80] or "image"


@torch.no_grad()
def evaluate_model(model: nn.Module, dataset, *, cfg: Config, device: torch.device, rank: int = 0, world_size: int = 1,
                   class_names: list[str] | None = None, use_bf16: bool = False, channels_last: bool = False,
                   export_dir: str | Path | None = None, export_count: int = 0,
                   export_indices: Sequence[int] | None = None) -> dict:
    """Score ``dataset`` (items ``{"image": (3,h,w) normalized, "label": (H,W), "name"}``,
    label at its original size) with ``model`` in eval mode. With ``export_dir``, the images
    ``export_indices`` (or else the first ``export_count``) get their maps exported.

    Each process takes images ``rank, rank + world_size, ...``; the confusion matrix is
    summed over processes. Returns ``{"confusion": (K,K) int64 CPU tensor, "metrics":
    metrics_from_confusion(...), "num_images": int, "exports": [rows]}``; exports rows
    are gathered on every rank. The model is left in eval mode.
    """
    from torch.utils.data import DataLoader, Subset

    was_training = model.training
    model.eval()
    k = cfg.num_classes
    indices = list(range(rank, len(dataset), world_size))
    loader = DataLoader(Subset(dataset, indices), batch_size=1, shuffle=False, num_workers=min(cfg.num_workers, 4),
                        collate_fn=_first, generator=torch.Generator().manual_seed(0))
    conf = torch.zeros(k, k, dtype=torch.long, device=device)
    exports: list[dict] = []
    for index, item in zip(indices, loader):
        image = item["image"][None].to(device, non_blocking=True)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        label = torch.as_tensor(item["label"]).to(device).long()
        scores = predict(model, image, mode=cfg.eval_mode, slide_crop=cfg.slide_crop, slide_stride=cfg.slide_stride,
                         scales=cfg.tta_scales, flip=cfg.tta_flip,
                         generator=_image_generator(device, cfg.eval_seed, index), use_bf16=use_bf16)
        scores = F.interpolate(scores, size=label.shape[-2:], mode="bilinear", align_corners=False)
        pred = scores.argmax(1)[0]
        conf += confusion_matrix(pred, label, k)
        if export_dir is not None and (index in export_indices if export_indices is not None else index < export_count):
            exports.append(_export(model, image, pred, item, index=index, out=Path(export_dir), cfg=cfg,
                                   device=device, use_bf16=use_bf16))
    conf = all_reduce_confusion(conf).cpu()
    if world_size > 1 and dist.is_initialized():
        gathered: list = [None] * world_size
        dist.all_gather_object(gathered, exports)
        exports = sorted((row for part in gathered for row in part), key=lambda r: r["index"])
    if was_training:
        model.train()
    return {"confusion": conf, "metrics": metrics_from_confusion(conf, class_names), "num_images": len(dataset),
            "exports": exports}


@torch.no_grad()
def analyze(model: nn.Module, image: torch.Tensor, *, size: Sequence[int] | None = None, seed: int = 0, index: int = 0,
            use_bf16: bool = False) -> dict[str, np.ndarray]:
    """Prediction, attention and uncertainty maps of one image, as numpy arrays at ``size``.

    ``image``: normalized (3,H,W) or (1,3,H,W) on the model's device; ``size`` (h, w)
    defaults to (H, W). The attention noise is seeded by (``seed``, ``index``) as in
    :func:`evaluate`. Returns ``pred`` (h,w) int64 trainIds, ``entropy`` and ``mi`` (h,w)
    float32 in nats (see :func:`uncertainty`), and with attention ``mu`` (h,w) and the
    sampled ``masks`` (n,h,w), float32.
    """
    x = image if image.dim() == 4 else image[None]
    size = tuple(size or x.shape[-2:])
    device = next(model.parameters()).device
    outputs = _forward(model, x.to(device), generator=_image_generator(device, seed, index), use_bf16=use_bf16)

    def up(t: torch.Tensor) -> np.ndarray:  # (N,1 or K,h,w) -> (N,C,size) float32, bilinear
        return F.interpolate(t.float(), size=size, mode="bilinear", align_corners=False).cpu().numpy()

    entropy, mi = uncertainty(outputs)
    maps = {"pred": up(outputs["out"][:1]).argmax(1)[0].astype(np.int64), "entropy": up(entropy[:1])[0, 0],
            "mi": up(mi[:1])[0, 0]}
    if outputs.get("mu") is not None:
        maps["mu"] = up(outputs["mu"][:1])[0, 0]
        maps["masks"] = up(outputs["masks"])[:, 0]
    return maps


def _export(model, image, pred, item, *, index: int, out: Path, cfg: Config, device, use_bf16: bool) -> dict:
    """Write the prediction, mu, entropy and MI maps of one image (see the module docstring)."""
    from aiblib import viz

    out.mkdir(parents=True, exist_ok=True)
    size = tuple(pred.shape[-2:])
    stem = f"{index:04d}_{_safe_name(item.get('name', index))}"
    row: dict[str, Any] = {"index": index, "name": item.get("name", str(index)), "height": size[0], "width": size[1]}
    viz.save_png(viz.colorize(pred.cpu()), out / f"{stem}_pred.png")
    row["pred"] = f"{stem}_pred.png"
    maps = analyze(model, image, size=size, seed=cfg.eval_seed, index=index, use_bf16=use_bf16)
    ln_k = math.log(cfg.num_classes)
    for key, vmax, cmap in (("mu", 1.0, "viridis"), ("entropy", ln_k, "magma"), ("mi", None, "magma")):
        if key not in maps:
            continue
        full = maps[key]
        np.save(out / f"{stem}_{key}.npy", full.astype(np.float16))
        if key == "mi":  # MI is tiny when the learned std is small: scale its picture by its own maximum
            vmax = max(float(full.max()), 1e-12)
            row["mi_max"] = float(full.max())
        viz.save_png(viz.heatmap(full, vmin=0.0, vmax=vmax, cmap=cmap), out / f"{stem}_{key}.png")
        row[key] = f"{stem}_{key}.png"
    return row


# ----------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _checkpoint_identity(path: Path) -> dict:
    from aiblib.checkpoint import safe_load

    info: dict[str, Any] = {"path": str(path.resolve()), "sha256": _sha256(path), "bytes": path.stat().st_size}
    try:
        data = safe_load(path)
    except Exception as exc:  # identity is informative only; load_model reports real problems
        info["note"] = f"metadata unreadable: {exc}"
        return info
    if isinstance(data, dict):
        info["format"] = data.get("format", "mmsegmentation" if "state_dict" in data else "unknown")
        iteration = data.get("iteration")
        if iteration is None and isinstance(data.get("meta"), dict):
            iteration = data["meta"].get("iter")
        if iteration is not None:
            try:
                info["iteration"] = int(iteration)
            except (TypeError, ValueError):  # a placeholder for a numpy scalar, say
                info["iteration"] = str(iteration)
    return info


def evaluate(cfg: Config, checkpoint: str | Path | None = None, *, dataset: str | None = None,
             split: str | None = None, out_dir: str | Path | None = None, export_count: int | None = None,
             export_indices: Sequence[int] | None = None, quiet: bool = False) -> dict:
    """Score ``checkpoint`` on ``dataset``/``split`` and write the output folder.

    ``checkpoint``: aiblib or MMSegmentation file (default ``cfg.checkpoint``, or else
    ``<run dir>/checkpoints/last.pth``);
    ``dataset``/``split`` default to ``cfg.val_dataset``/``cfg.val_split``; ``out_dir`` to
    ``<run dir>/eval/<dataset>-<split>``; ``export_count`` to ``cfg.export_count``;
    ``export_indices`` (dataset positions) replaces it with an explicit list.
    The model's architecture comes from the checkpoint; ``test_samples`` and
    ``deterministic`` from ``cfg`` (and ``output_stride`` too for MMSegmentation files,
    whose weights do not tell it). Returns the ``metrics.json`` content (also on ranks > 0,
    which write nothing). Runs distributed when launched by torchrun.
    """
    from aiblib.checkpoint import load_model
    from aiblib.data import build_dataset
    from aiblib.train import _class_names, _resolve_precision, setup_distributed

    t0 = time.perf_counter()
    dataset = dataset or cfg.val_dataset
    split = split or cfg.val_split
    export_count = cfg.export_count if export_count is None else export_count
    checkpoint = checkpoint or cfg.checkpoint
    ckpt = Path(checkpoint) if checkpoint else cfg.resolved_run_dir() / "checkpoints" / "last.pth"
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt.resolve()}")
    out = Path(out_dir) if out_dir else cfg.resolved_run_dir() / "eval" / f"{dataset}-{split}"

    created = not (dist.is_available() and dist.is_initialized())
    info = setup_distributed(cfg.device)
    created = created and info.distributed
    threads = torch.get_num_threads()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        use_bf16, channels_last = _resolve_precision(cfg, info.device)
        identity = _checkpoint_identity(ckpt)
        overrides: dict[str, Any] = {"test_samples": cfg.test_samples, "deterministic": cfg.deterministic}
        if identity.get("format") != "aiblib":  # weights do not tell the output stride: the config does
            overrides["output_stride"] = cfg.output_stride
        model = load_model(ckpt, **overrides)
        model.to(info.device).eval()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        from aiblib.transforms import test_transform

        data = build_dataset(dataset, cfg.data_root, split, test_transform(base_size=tuple(cfg.base_size)))
        class_names = _class_names(cfg.num_classes)
        if info.is_main:
            out.mkdir(parents=True, exist_ok=True)
        result = evaluate_model(model, data, cfg=cfg, device=info.device, rank=info.rank, world_size=info.world_size,
                                class_names=class_names, use_bf16=use_bf16, channels_last=channels_last,
                                export_dir=out / "exports" if export_count or export_indices else None,
                                export_count=export_count,
                                export_indices=set(export_indices) if export_indices is not None else None)
        m = result["metrics"]
        mc = getattr(model, "config", None)
        summary = {
            "dataset": dataset, "split": split, "num_images": result["num_images"],
            "mIoU": _none_nan(m["mIoU"]), "mAcc": _none_nan(m["mAcc"]), "aAcc": _none_nan(m["aAcc"]),
            "per_class": [{"class": c, "IoU": _none_nan(i), "Acc": _none_nan(a)}
                          for c, i, a in zip(m["classes"], m["IoU"], m["Acc"])],
            "checkpoint": identity,
            "inference": {
                "mode": cfg.eval_mode, "slide_crop": cfg.slide_crop, "slide_stride": cfg.slide_stride,
                "tta_scales": cfg.tta_scales, "tta_flip": cfg.tta_flip, "test_samples": cfg.test_samples,
                "deterministic": cfg.deterministic, "eval_seed": cfg.eval_seed, "base_size": cfg.base_size,
                "bf16": use_bf16, "channels_last": channels_last, "device": str(info.device),
                "world_size": info.world_size,
            },
            "model_config": _asdict(mc),
            "config": cfg.to_dict(),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if info.is_main:
            (out / "metrics.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
            with open(out / "per_class.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["class", "IoU", "Acc"])
                for row in summary["per_class"]:
                    writer.writerow([row["class"], _fmt(row["IoU"]), _fmt(row["Acc"])])
            np.save(out / "confusion.npy", result["confusion"].numpy())
            cfg.save(out / "config.yaml")
            if result["exports"]:
                with open(out / "exports" / "exports.csv", "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=["index", "name", "height", "width", "pred", "mu", "entropy", "mi",
                                                           "mi_max"])
                    writer.writeheader()
                    for row in result["exports"]:
                        writer.writerow(row)
            if not quiet:
                print(f"{dataset}/{split}: {result['num_images']} images, checkpoint {ckpt}")
                print(format_table(m))
                print(f"written to {out}")
        return summary
    finally:
        torch.set_num_threads(threads)
        if created and dist.is_initialized():
            dist.destroy_process_group()


def _none_nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _asdict(mc: Any) -> dict | None:
    import dataclasses

    return dataclasses.asdict(mc) if dataclasses.is_dataclass(mc) else None


# ----------------------------------------------------------------------
def main(argv: list[str]) -> int:
    from aiblib.train import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(prog="python -m aiblib evaluate", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    try:
        cfg = config_from_args(args, pairs)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    evaluate(cfg, args.checkpoint, dataset=picked["dataset"], split=picked["split"], out_dir=args.out,
             export_indices=args.export_indices, quiet=int(os.environ.get("RANK", "0")) != 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
