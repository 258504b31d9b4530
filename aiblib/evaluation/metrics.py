"""Segmentation metrics from a confusion matrix accumulated over a whole split.

``conf[t, p]`` counts the labelled pixels of true class ``t`` predicted as ``p``
(pixels labelled ``ignore_index`` are not counted). Per class:

- IoU = TP / (TP + FP + FN); NaN when the class is in neither the labels nor the
  predictions (then it is skipped by the mean);
- Acc = TP / (TP + FN); NaN when the class is absent from the labels.

mIoU and mAcc are the NaN-skipping means, aAcc = trace / total (MMSegmentation's
``IoUMetric`` semantics). Values are percentages (as the paper reports them), unrounded;
display rounds to 2 decimals. The matrix is counted by torchmetrics
(``multiclass_confusion_matrix``) and summed over processes with torchmetrics'
``gather_all_tensors``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torchmetrics.functional.classification import multiclass_confusion_matrix
from torchmetrics.utilities.distributed import gather_all_tensors

from aiblib.data import CAMVID_CLASSES, CLASSES, IGNORE_INDEX, camvid_confusion

__all__ = ["confusion_matrix", "all_reduce_confusion", "metrics_from_confusion", "split_metrics", "format_table",
           "class_names"]


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``pred`` and ``label``: integer tensors of the same shape (any, e.g. (B,H,W)).

    Returns an int64 (K, K) matrix on ``label``'s device, rows = true class, columns = prediction.
    Label values outside ``[0, K)`` other than ``ignore_index`` raise ``ValueError``.
    """
    if pred.shape != label.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != label shape {tuple(label.shape)}")
    label = label.reshape(-1).long()
    pred = pred.reshape(-1).long().to(label.device)
    keep = label != ignore_index
    label, pred = label[keep], pred[keep]
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes):
        raise ValueError(f"label values must be in [0, {num_classes}) or {ignore_index}; found {label.unique().tolist()}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"prediction values must be in [0, {num_classes})")
    return multiclass_confusion_matrix(pred, label, num_classes, validate_args=False).long()


def all_reduce_confusion(conf: torch.Tensor) -> torch.Tensor:
    """Sum a confusion matrix over all processes (the matrix itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return conf
    return torch.stack(gather_all_tensors(conf)).sum(0)


def metrics_from_confusion(conf: torch.Tensor, class_names: list[str] | None = None) -> dict:
    """Metrics of a (K, K) confusion matrix (rows true, columns predicted).

    Returns ``{"aAcc", "mIoU", "mAcc"}`` (percent floats, NaN when nothing is
    labelled) plus ``"IoU"`` and ``"Acc"``: lists of K per-class percents (NaN = absent),
    and ``"classes"`` (names, or "0".."K-1").
    """
    conf = conf.detach().to("cpu", torch.float64)
    tp = conf.diag()
    gt = conf.sum(1)
    pr = conf.sum(0)
    union = gt + pr - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan)) * 100
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, math.nan)) * 100
    total = conf.sum()
    k = conf.shape[0]
    return {
        "aAcc": float(tp.sum() / total * 100) if total > 0 else math.nan,
        "mIoU": _nanmean(iou),
        "mAcc": _nanmean(acc),
        "IoU": iou.tolist(),
        "Acc": acc.tolist(),
        "classes": list(class_names) if class_names is not None else [str(i) for i in range(k)],
    }


def split_metrics(conf: torch.Tensor, *, dataset: str, num_classes: int) -> dict:
    """The metrics of a split in its dataset's own label space, from the model's (K, K) confusion matrix.

    CamVid (``dataset == "camvid"``) is scored over its 11 classes, the standard CamVid number: the
    19 trainIds are folded into CamVid's groups (:func:`aiblib.data.camvid_confusion`), so a wall
    predicted on a building counts as building. Every other dataset is scored over the model's
    classes (:func:`class_names`). Returns :func:`metrics_from_confusion`'s dict.
    """
    if dataset == "camvid":
        return metrics_from_confusion(camvid_confusion(conf), list(CAMVID_CLASSES))
    return metrics_from_confusion(conf, class_names(num_classes))


def format_table(metrics: dict) -> str:
    """A fixed-width text table: one row per class, then the summary (2 decimals, '-' for NaN)."""
    names = metrics["classes"]
    width = max(12, *(len(n) for n in names))

    def num(x: float) -> str:
        return "      -" if math.isnan(x) else f"{x:7.2f}"

    lines = [f"{'class':<{width}}     IoU     Acc"]
    for name, iou, acc in zip(names, metrics["IoU"], metrics["Acc"]):
        lines.append(f"{name:<{width}} {num(iou)} {num(acc)}")
    lines.append("-" * (width + 16))
    lines.append(f"{'mIoU':<{width}} {num(metrics['mIoU'])}")
    lines.append(f"{'mAcc':<{width}} {num(metrics['mAcc'])}")
    lines.append(f"{'aAcc':<{width}} {num(metrics['aAcc'])}")
    return "\n".join(lines)


def _nanmean(x: torch.Tensor) -> float:
    valid = ~torch.isnan(x)
    return float(x[valid].mean()) if valid.any() else math.nan


def class_names(num_classes: int) -> list[str]:
    """Names of ``num_classes`` classes: the Cityscapes ones when there are 19, else "0".."K-1"."""
    return list(CLASSES) if len(CLASSES) == num_classes else [str(i) for i in range(num_classes)]
