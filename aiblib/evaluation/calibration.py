"""Scoring per-pixel uncertainty: calibration of the confidence and detection of misclassified pixels.

Pure tensor math on flat per-pixel tensors (N,) pooled over a split:

- :func:`pixel_sample`: a seeded subset of an image's labelled pixels (keeps memory bounded).
- :func:`expected_calibration_error`: ECE of the max-softmax confidence against correctness,
  equal-width bins on [0, 1], L1 (torchmetrics ``binary_calibration_error``).
- :func:`reliability_bins`: per bin, the pixel count, mean confidence and accuracy (the
  reliability diagram; the same bins).
- :func:`misclassification_auroc`: AUROC of an uncertainty measure for telling misclassified
  pixels (positives) from correct ones (torchmetrics ``binary_auroc``, exact); 1 when every
  error is more uncertain than every correct pixel, 0.5 for chance, 0 reversed.

ECE and AUROC are fractions in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc, binary_calibration_error

from aiblib.data import IGNORE_INDEX

__all__ = ["pixel_sample", "expected_calibration_error", "reliability_bins", "misclassification_auroc"]


def pixel_sample(label: torch.Tensor, count: int, *, seed: int = 0, index: int = 0,
                 ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Flat indices (M,) int64, ascending, of labelled pixels of ``label`` (H, W) (not ``ignore_index``).

    ``count`` <= 0 or at least the number of labelled pixels: all of them; else ``count`` drawn
    without replacement by a generator seeded from ``(seed, index)`` (the same pixels every run).
    """
    valid = (label.reshape(-1) != ignore_index).nonzero().squeeze(1).cpu()
    if count <= 0 or count >= valid.numel():
        return valid
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
    return valid[torch.randperm(valid.numel(), generator=g)[:count]].sort().values


def _check(name: str, values: torch.Tensor, flags: torch.Tensor) -> None:
    if values.dim() != 1 or values.shape != flags.shape:
        raise ValueError(f"{name}: expected two flat tensors (N,) of one length, got {tuple(values.shape)} "
                         f"and {tuple(flags.shape)}")


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> float:
    """ECE = sum over ``bins`` equal-width bins of (pixels in bin / N) * |accuracy - mean confidence|.

    ``confidence`` (N,) in [0, 1] (the predicted class's probability), ``correct`` (N,) bool.
    NaN when N is 0.
    """
    _check("expected_calibration_error", confidence, correct)
    if confidence.numel() == 0:
        return math.nan
    return float(binary_calibration_error(confidence.float(), correct.long(), n_bins=bins, norm="l1"))


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> dict[str, torch.Tensor]:
    """The reliability diagram of ``confidence`` (N,) in [0, 1] and ``correct`` (N,) bool.

    Returns (bins,) float64 tensors: ``lower``, ``upper`` (bin edges), ``count`` (pixels),
    ``confidence`` (mean confidence) and ``accuracy`` (fraction correct); NaN for an empty bin.
    The bins are ECE's (left-closed; a confidence of exactly 1 counts in the last bin).
    """
    _check("reliability_bins", confidence, correct)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    conf = confidence.double().cpu()
    which = (torch.bucketize(conf, edges, right=True) - 1).clamp(0, bins - 1)
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, torch.ones_like(conf))
    conf_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, conf)
    right = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, correct.double().cpu())
    empty = count == 0
    mean_conf = torch.where(empty, math.nan, conf_sum / count.clamp_min(1))
    accuracy = torch.where(empty, math.nan, right / count.clamp_min(1))
    return {"lower": edges[:-1], "upper": edges[1:], "count": count, "confidence": mean_conf, "accuracy": accuracy}


def misclassification_auroc(uncertainty: torch.Tensor, error: torch.Tensor) -> float:
    """AUROC of ``uncertainty`` (N,) (higher = less sure) for detecting ``error`` (N,) bool pixels.

    Exact (every distinct value a threshold; ties count half). The measure is rescaled to
    [0, 1] in float64 first (min-max: the ranking is unchanged), since torchmetrics would read
    values outside [0, 1] as logits. NaN when there is no error or no correct pixel.
    """
    _check("misclassification_auroc", uncertainty, error)
    error = error.bool().cpu()
    if error.all() or not error.any():
        return math.nan
    u = uncertainty.double().cpu()
    low, high = u.min(), u.max()
    scaled = (u - low) / (high - low) if high > low else torch.full_like(u, 0.5)
    return float(binary_auroc(scaled, error.long()))
