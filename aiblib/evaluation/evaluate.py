"""Evaluation: score a model on a dataset split, and a checkpoint into an output folder.

- :func:`score_dataset`: a model in memory on a dataset (what training's validation calls).
- :func:`evaluate_checkpoint`: a checkpoint file on ``dataset``/``split``, tables and maps written
  (what ``python -m aiblib evaluate`` and notebook 02 call).

Without test-time augmentation, predictions are made at the test size (the image resized
to fit ``base_size``), whole or slide. With it (``tta_scales`` other than ``[1.0]``, or
``tta_flip``; :func:`tta_enabled`) the dataset gives the *original-size* image and each
scale ``r`` resizes that original by ``r`` (mmcv's ``int(h * r + 0.5)``), flipped too with
``tta_flip``, the softmax averaged over views, as MMSegmentation 1.x's TTA; the one rule
is :func:`test_pipeline`, which every caller that builds a test dataset should use. Either
way with the model's
``test_samples`` masks per image (noise seeded by ``eval_seed`` and the image index, so
results do not depend on the number of processes) or its ``mean_mask`` mode; the scores are
resized (bilinear) to the label's original size, then argmax.

The output folder (default ``<run dir>/eval/<dataset>-<split>/``), written by rank 0::

    metrics.json     {"dataset", "split", "num_images", "mIoU", "mAcc", "aAcc",
                      "per_class": [{"class", "IoU", "Acc"}, ...], "checkpoint": {...},
                      "inference": {..., "environment": {precision, device, cpu, native_bf16, torch}},
                      "attention_stats": {...} (AIBR models: :mod:`aiblib.evaluation.attention_stats`; null for
                      a baseline), "model_config": {...}, "config": {...}, "seconds"}
                     (percent values; null = class absent)
    per_class.csv    class,IoU,Acc  (percent; empty = absent)
    confusion.npy    int64 (K, K), rows = label, columns = prediction
    config.yaml      the configuration that ran (:func:`checkpoint_config`: the checkpoint's model keys
                     over the given configuration's; metrics.json's "config" is the same)
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

import csv
import dataclasses
import io
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from aiblib.config import (
    Config,
    Process,
    compiled,
    environment,
    process_group,
    raise_on_every_rank,
    resolve_precision,
    torch_settings,
)
from aiblib.data import (
    Batches,
    DataError,
    Guarded,
    GuardedCollate,
    TestTransform,
    build_dataset,
    test_transform,
    worker_init,
)
from aiblib.errors import MissingFile, WorkerFailed
from aiblib.evaluation.attention_stats import AttentionStats, attention_outputs, has_attention
from aiblib.evaluation.inference import image_maps, noise_generator, predict_logits, predict_probs, prediction
from aiblib.evaluation.metrics import all_reduce_confusion, confusion_matrix, format_table, split_metrics
from aiblib.paths import project_path
from aiblib.reporting import viz
from aiblib.storage import (
    atomic_write,
    describe_checkpoint,
    json_safe,
    last_checkpoint,
    load_model,
    reporting,
    write_text_atomic,
)

__all__ = ["score_dataset", "evaluate_checkpoint", "checkpoint_config", "export_maps", "tta_enabled", "test_pipeline", "evaluation_amp"]

EXPORT_COLUMNS = ["index", "name", "height", "width", "pred", "mu", "entropy", "mi", "mi_max"]
# added to a full-disk line while writing results
NOTE = "; the checkpoint is untouched: free some space, then run the evaluation again"


def _first(items: list) -> Any:
    return items[0]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))[:80] or "image"


def tta_enabled(cfg: Config) -> bool:
    """Whether ``cfg`` asks for test-time augmentation: a scale other than the single 1.0, or the flip."""
    return bool(cfg.tta_flip) or [float(r) for r in cfg.tta_scales] != [1.0]


def test_pipeline(cfg: Config) -> TestTransform:
    """The test transform for :func:`score_dataset` under ``cfg``: the image fitted inside
    ``cfg.base_size``, or (with :func:`tta_enabled`) kept at its original size, because
    :func:`~aiblib.evaluation.inference.predict_probs` then scales the original by each ratio, as MMSegmentation."""
    return test_transform(base_size=tuple(cfg.base_size), fit=not tta_enabled(cfg))


test_pipeline.__test__ = False  # not a pytest test function


@torch.no_grad()
def score_dataset(model: nn.Module, dataset: Dataset, *, cfg: Config, device: torch.device, rank: int = 0,
                  world_size: int = 1, dataset_name: str = "", use_bf16: bool = False,
                  channels_last: bool = False, export_dir: str | Path | None = None, export_count: int = 0,
                  export_indices: Sequence[int] | None = None) -> dict:
    """Score ``dataset`` (items ``{"image": (3,h,w) normalized, "label": (H,W), "name"}``,
    label at its original size; build it with :func:`test_pipeline` so that the image's size
    suits ``cfg``'s TTA) with ``model`` in eval mode. With ``export_dir``, the images
    ``export_indices`` (or else the first ``export_count``) get their maps exported.

    Each process takes images ``rank, rank + world_size, ...``; the confusion matrix is
    summed over processes. Returns ``{"confusion": (K,K) int64 CPU tensor, "metrics":
    split_metrics(...) (in ``dataset_name``'s label space: CamVid's 11 classes for camvid),
    "num_images": int, "exports": [rows]}``; exports rows
    are gathered on every rank. The model's training mode is restored.
    """
    was_training = model.training
    model.eval()
    k = cfg.num_classes
    indices = list(range(rank, len(dataset), world_size))
    workers = min(cfg.num_workers, 4)
    loader = DataLoader(Guarded(Subset(dataset, indices)), batch_size=1, shuffle=False, num_workers=workers,
                        collate_fn=GuardedCollate(_first), worker_init_fn=worker_init,
                        generator=torch.Generator().manual_seed(0))
    conf = torch.zeros(k, k, dtype=torch.long, device=device)
    attention = AttentionStats(num_classes=k, dataset=dataset_name) if has_attention(model) else None
    failure = None
    with Batches(loader) as items:  # a file that cannot be read: DataError naming it, the workers ended
        try:
            conf, exports = _score_items(model, zip(indices, items), conf=conf, cfg=cfg, device=device,
                                         use_bf16=use_bf16, channels_last=channels_last, export_dir=export_dir,
                                         export_count=export_count, export_indices=export_indices, attention=attention)
        except (DataError, WorkerFailed) as exc:
            failure = exc
    if world_size > 1:  # every rank raises a rank's failure here, rather than wait in the reduction for one that stopped
        raise_on_every_rank(failure, device)
    if failure is not None:
        raise failure
    conf = all_reduce_confusion(conf).cpu()
    exports = _gather_rows(exports, world_size)
    if attention is not None:
        attention.reduce(device)
    if was_training:
        model.train()
    return {"confusion": conf, "metrics": split_metrics(conf, dataset=dataset_name, num_classes=k), "num_images": len(dataset),
            "exports": exports, "attention_stats": attention.result() if attention is not None else None}


def _score_items(model: nn.Module, items, *, conf: torch.Tensor, cfg: Config, device: torch.device, use_bf16: bool,
                 channels_last: bool, export_dir: str | Path | None, export_count: int,
                 export_indices: Sequence[int] | None,
                 attention: AttentionStats | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Add each ``(index, item)``'s confusion (K, K) to ``conf`` (and its attention to ``attention``); the export
    rows of the exported images."""
    k = cfg.num_classes
    exports: list[dict] = []
    for index, item in items:
        image = item["image"][None].to(device, non_blocking=True)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        label = torch.as_tensor(item["label"]).to(device).long()
        how = dict(mode=cfg.eval_mode, slide_crop=cfg.slide_crop, slide_stride=cfg.slide_stride,
                   generator=noise_generator(device, cfg.eval_seed, index), use_bf16=use_bf16)
        scores = (predict_probs(model, image, scales=cfg.tta_scales, flip=cfg.tta_flip, **how) if tta_enabled(cfg)
                  else predict_logits(model, image, **how))
        pred = prediction(scores, label.shape[-2:])[0]
        conf += confusion_matrix(pred, label, k)
        if attention is not None:
            attention.add(attention_outputs(model, image, use_bf16=use_bf16), label)
        if export_dir is not None and (index in export_indices if export_indices is not None else index < export_count):
            with reporting(Path(export_dir), NOTE):
                exports.append(export_maps(model, image, pred, item, index=index, out=Path(export_dir), cfg=cfg,
                                           use_bf16=use_bf16))
    return conf, exports


def _gather_rows(rows: list[dict], world_size: int) -> list[dict]:
    """Every process's rows, on every process, in image order."""
    if world_size == 1 or not dist.is_initialized():
        return rows
    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, rows)
    return sorted((row for part in gathered for row in part), key=lambda r: r["index"])


def export_maps(model: nn.Module, image: torch.Tensor, pred: torch.Tensor, item: dict, *, index: int, out: Path,
                cfg: Config, use_bf16: bool) -> dict:
    """Write the prediction, mu, entropy and MI maps of one image (see the module docstring); its exports.csv row."""
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(pred.shape[-2:])
    stem = f"{index:04d}_{_safe_name(item.get('name', index))}"
    row: dict[str, Any] = {"index": index, "name": item.get("name", str(index)), "height": size[0], "width": size[1]}
    viz.save_png(viz.colorize(pred.cpu()), out / f"{stem}_pred.png")
    row["pred"] = f"{stem}_pred.png"
    maps = image_maps(model, image, size=size, seed=cfg.eval_seed, index=index, use_bf16=use_bf16)
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
def evaluation_amp(cfg: Config, identity: dict) -> str:
    """The ``amp`` an evaluation runs with: the configuration's, except that an MMSegmentation
    checkpoint is scored in fp32 (as the reference) unless bf16 is asked for by name."""
    return "off" if identity.get("format") != "aiblib" and cfg.amp == "auto" else cfg.amp


def _test_switches(cfg: Config, identity: dict) -> dict[str, Any]:
    """The model keys the configuration sets on a checkpoint's model: the test-time switches, and for an
    MMSegmentation file the output stride and beta (its weights tell neither; beta is only recorded)."""
    overrides: dict[str, Any] = {"test_samples": cfg.test_samples, "mean_mask": cfg.mean_mask}
    if identity.get("format") != "aiblib":
        overrides.update(output_stride=cfg.output_stride, beta=cfg.beta)
    return overrides


def _as_run(cfg: Config, model: nn.Module) -> Config:
    """``cfg`` with the model keys of the model that runs (but ``pretrained``, which a checkpoint clears):
    the configuration a record holds."""
    return cfg.replace(**{k: v for k, v in model.config.to_dict().items() if k != "pretrained"})


def checkpoint_config(cfg: Config, checkpoint: str | Path) -> Config:
    """The configuration that scores ``checkpoint`` under ``cfg``, as :func:`evaluate_checkpoint` records it:
    the checkpoint's model keys (its architecture, which a parameter file does not change) override ``cfg``'s,
    but for :func:`_test_switches` and ``pretrained`` (how its training started: the checkpoint's
    ``model_config`` clears it, the weights being inside). Reads the file."""
    path = project_path(checkpoint)
    return _as_run(cfg, load_model(path, **_test_switches(cfg, describe_checkpoint(path))))


def _load_for_evaluation(cfg: Config, path: Path, identity: dict, proc: Process, channels_last: bool) -> nn.Module:
    """The checkpoint's model on the process's device, in eval mode, with :func:`_test_switches`."""
    model = load_model(path, **_test_switches(cfg, identity))
    model.to(proc.device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return compiled(model, cfg.compile)


def _summary(cfg: Config, *, dataset: str, split: str, result: dict, identity: dict, model: nn.Module,
             precision: tuple[bool, bool], proc: Process, seconds: float) -> dict:
    """The metrics.json content."""
    m = result["metrics"]
    mc = getattr(model, "config", None)
    return {
        "dataset": dataset, "split": split, "num_images": result["num_images"],
        "mIoU": json_safe(m["mIoU"]), "mAcc": json_safe(m["mAcc"]), "aAcc": json_safe(m["aAcc"]),
        "per_class": [{"class": c, "IoU": json_safe(i), "Acc": json_safe(a)}
                      for c, i, a in zip(m["classes"], m["IoU"], m["Acc"])],
        "checkpoint": identity,
        "inference": {
            "mode": cfg.eval_mode, "slide_crop": cfg.slide_crop, "slide_stride": cfg.slide_stride,
            "tta_scales": cfg.tta_scales, "tta_flip": cfg.tta_flip, "test_samples": cfg.test_samples,
            "mean_mask": cfg.mean_mask, "eval_seed": cfg.eval_seed, "base_size": cfg.base_size,
            "bf16": precision[0], "channels_last": precision[1], "device": str(proc.device),
            "world_size": proc.world_size, "environment": environment(proc.device, use_bf16=precision[0]),
        },
        "attention_stats": json_safe(result.get("attention_stats")),
        "model_config": dataclasses.asdict(mc) if dataclasses.is_dataclass(mc) else None,
        "config": cfg.to_dict(),
        "seconds": round(seconds, 3),
    }


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _csv_text(header: list[str], rows: list[list] | list[dict], *, dict_rows: bool = False) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header) if dict_rows else csv.writer(buffer)
    if dict_rows:
        writer.writeheader()
    else:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_outputs(out: Path, summary: dict, result: dict, cfg: Config) -> None:
    """metrics.json, per_class.csv, confusion.npy, config.yaml and exports/exports.csv in ``out``,
    each written whole or not at all (a full disk is one line naming the file)."""
    per_class = [[row["class"], _fmt(row["IoU"]), _fmt(row["Acc"])] for row in summary["per_class"]]
    write_text_atomic(out / "metrics.json", json.dumps(summary, indent=2, allow_nan=False) + "\n", note=NOTE)
    write_text_atomic(out / "per_class.csv", _csv_text(["class", "IoU", "Acc"], per_class), note=NOTE)
    atomic_write(out / "confusion.npy", lambda f: np.save(f, result["confusion"].numpy()), note=NOTE)
    write_text_atomic(out / "config.yaml", cfg.dump(), note=NOTE)
    if result["exports"]:
        write_text_atomic(out / "exports" / "exports.csv",
                          _csv_text(EXPORT_COLUMNS, result["exports"], dict_rows=True), note=NOTE)


def evaluate_checkpoint(cfg: Config, checkpoint: str | Path | None = None, *, dataset: str | None = None,
                        split: str | None = None, out_dir: str | Path | None = None, export_count: int | None = None,
                        export_indices: Sequence[int] | None = None, quiet: bool = False) -> dict:
    """Score ``checkpoint`` on ``dataset``/``split`` and write the output folder.

    ``checkpoint``: aiblib or MMSegmentation file (default ``cfg.checkpoint``, or else the
    run's :func:`~aiblib.storage.checkpoint.last_checkpoint`); ``dataset``/``split`` default to
    ``cfg.val_dataset``/``cfg.val_split``; ``out_dir`` to ``<run dir>/eval/<dataset>-<split>``;
    ``export_count`` to ``cfg.export_count``; ``export_indices`` (dataset positions) replaces
    it with an explicit list. The model's architecture comes from the checkpoint;
    ``test_samples`` and ``mean_mask`` from ``cfg``; the records hold :func:`checkpoint_config`, the
    configuration that ran (its model keys are ``model_config``'s). Returns the ``metrics.json`` content
    (also on ranks > 0, which write nothing). Runs distributed when launched by torchrun.
    """
    t0 = time.perf_counter()
    dataset, split = dataset or cfg.val_dataset, split or cfg.val_split
    export_count = cfg.export_count if export_count is None else export_count
    checkpoint = checkpoint or cfg.checkpoint
    path = project_path(checkpoint) if checkpoint else last_checkpoint(cfg.resolved_run_dir())
    if not path.is_file():
        raise MissingFile(f"checkpoint not found: {path}")
    out = project_path(out_dir) if out_dir else cfg.resolved_run_dir() / "eval" / f"{dataset}-{split}"
    with process_group(cfg.device) as proc, torch_settings(threads=cfg.threads):
        identity = describe_checkpoint(path)
        precision = resolve_precision(evaluation_amp(cfg, identity), cfg.channels_last, proc.device)
        model = _load_for_evaluation(cfg, path, identity, proc, precision[1])
        cfg = _as_run(cfg, model)  # what runs, and what the records say: the checkpoint's model keys
        data = build_dataset(dataset, cfg.data_root, split, test_pipeline(cfg), camvid_root=cfg.camvid_root)
        if proc.is_main:
            out.mkdir(parents=True, exist_ok=True)
        result = score_dataset(model, data, cfg=cfg, device=proc.device, rank=proc.rank, world_size=proc.world_size,
                               dataset_name=dataset, use_bf16=precision[0],
                               channels_last=precision[1],
                               export_dir=out / "exports" if export_count or export_indices else None,
                               export_count=export_count,
                               export_indices=set(export_indices) if export_indices is not None else None)
        summary = _summary(cfg, dataset=dataset, split=split, result=result, identity=identity, model=model,
                           precision=precision, proc=proc, seconds=time.perf_counter() - t0)
        if proc.is_main:
            write_outputs(out, summary, result, cfg)
            if not quiet:
                print(f"{dataset}/{split}: {result['num_images']} images, checkpoint {path}")
                print(format_table(result["metrics"]))
                print(f"written to {out}")
        return summary
