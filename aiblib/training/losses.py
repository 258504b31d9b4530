"""Training objective: CE(decode) + aux_weight * CE(aux) + beta * KL (bits)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from aiblib.data import IGNORE_INDEX


def cross_entropy(logits: Tensor, labels: Tensor, *, reduction: str = "all") -> Tensor:
    """CE of logits (B, K, h, w) against labels (B, H, W) int64, after bilinear upsampling to (H, W).

    ``reduction="all"`` (reference, MMSegmentation 1.x): mean over all pixels, ignored (IGNORE_INDEX) ones
    counting zero. ``"valid"``: mean over the non-ignored pixels only.
    """
    if reduction not in ("all", "valid"):
        raise ValueError(f"reduction must be 'all' or 'valid', got {reduction!r}")
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits, labels.long(), ignore_index=IGNORE_INDEX, reduction="none")
    if reduction == "all":
        return per_pixel.mean()
    valid = (labels != IGNORE_INDEX).sum().clamp(min=1)
    return per_pixel.sum() / valid


def segmentation_loss(outputs: dict[str, Tensor], labels: Tensor, *, beta: float, aux_weight: float = 0.4,
                      reduction: str = "all") -> dict[str, Tensor]:
    """Loss terms from the model's output dict and labels (B, H, W).

    Returns ``loss_ce``, ``loss_aux`` (already times ``aux_weight``; 0 without ``aux``),
    ``loss_kl`` (``beta * kl``, kl already in bits; 0 without attention) and ``loss`` (their sum).
    """
    zero = outputs["out"].new_zeros(())
    loss_ce = cross_entropy(outputs["out"], labels, reduction=reduction)
    loss_aux = aux_weight * cross_entropy(outputs["aux"], labels, reduction=reduction) if "aux" in outputs else zero
    loss_kl = beta * outputs["kl"] if "kl" in outputs else zero
    return {"loss_ce": loss_ce, "loss_aux": loss_aux, "loss_kl": loss_kl, "loss": loss_ce + loss_aux + loss_kl}
