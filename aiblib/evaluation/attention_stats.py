"""Does the attention attend? Its level, its selectivity, its noise and its information over a split.

From the model's ``mu`` and ``std`` (B, 1, h, w at c4's size; :mod:`aiblib.model.attention`) on each image,
:class:`AttentionStats` accumulates, and :meth:`AttentionStats.result` returns::

    mu_mean               mean of mu over every position of every image
    mu_spatial_std        the standard deviation of mu over one image's positions, averaged over images:
                          the attention's selectivity (0: one gain for the whole image)
    std_mean              mean of std: the scale of the sampling noise added to mu
    selectivity_to_noise  mu_spatial_std / std_mean: above 1 the mask's spatial structure is larger than its noise
    kl_bits               the KL term (bits per position, not times beta), averaged over images
    mu_per_class          {class: mean of mu over the labelled pixels of that class}, mu resized (bilinear) to the
                          label; in the dataset's label space (CamVid's 11 classes for camvid), None where absent
    num_images

Sums are kept in float64 and added over processes (:func:`torch.distributed.all_reduce`), so the result does
not depend on how images were split among them. A model without attention has no stats (``None``).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

from torch import nn

from aiblib.data import CAMVID_CLASSES, CAMVID_GROUPS, IGNORE_INDEX
from aiblib.evaluation.metrics import class_names
from aiblib.model import kl_bits

__all__ = ["AttentionStats", "STAT_KEYS", "attention_outputs", "has_attention"]

# the scalar statistics, in the order tables print them
STAT_KEYS = ("mu_mean", "mu_spatial_std", "std_mean", "selectivity_to_noise", "kl_bits")


def _bare(model: nn.Module) -> nn.Module:
    """The segmentor inside a ``torch.compile`` wrapper (the model itself otherwise)."""
    return getattr(model, "_orig_mod", model)


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` has the AIB attention (a baseline has none)."""
    return getattr(_bare(model), "attention", None) is not None


@torch.no_grad()
def attention_outputs(model: nn.Module, image: torch.Tensor, *, use_bf16: bool) -> dict:
    """``mu``, ``std`` (B, 1, h, w, float32) and ``kl`` (bits) of the attention on ``image`` (B, 3, H, W) as given:
    the backbone and the attention's distribution only (no head, no sampling: none of the three depends on the
    noise). The model must have attention."""
    bare = _bare(model)
    with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        mu, std = bare.attention.distribution(bare.backbone(image))
    mu, std = mu.float(), std.float()
    return {"mu": mu, "std": std, "kl": kl_bits(mu, std)}


class AttentionStats:
    """Accumulates the attention's statistics over the images of a split (see the module docstring)."""

    def __init__(self, *, num_classes: int, dataset: str = "") -> None:
        self.num_classes, self.dataset = num_classes, dataset
        # images, sum of per-image mean mu, of per-image spatial std of mu, of per-image mean std, of kl
        self.totals = torch.zeros(5, dtype=torch.float64)
        self.class_sum = torch.zeros(num_classes, dtype=torch.float64)
        self.class_count = torch.zeros(num_classes, dtype=torch.float64)

    def add(self, outputs: dict, label: torch.Tensor | None = None) -> None:
        """Add the images of one forward pass: ``outputs`` holds ``mu``, ``std`` (B, 1, h, w) and ``kl``;
        ``label`` (B, H, W) or (H, W) trainIds (``IGNORE_INDEX`` unlabelled) adds the per-class means."""
        if "mu" not in outputs:
            return
        mu, std = outputs["mu"].detach().double(), outputs["std"].detach().double()
        b = mu.shape[0]
        flat = mu.flatten(1)
        spread = flat.std(dim=1, unbiased=False)
        self.totals += torch.stack([
            torch.tensor(float(b), dtype=torch.float64), flat.mean(1).sum().cpu(), spread.sum().cpu(),
            std.flatten(1).mean(1).sum().cpu(), (outputs["kl"].detach().double() * b).cpu(),
        ])
        if label is not None:
            label = label.reshape(b, *label.shape[-2:]).to(mu.device).long()
            resized = F.interpolate(mu, size=label.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
            valid = (label != IGNORE_INDEX) & (label >= 0) & (label < self.num_classes)
            self.class_sum += torch.bincount(label[valid], weights=resized[valid], minlength=self.num_classes).cpu()
            self.class_count += torch.bincount(label[valid], minlength=self.num_classes).double().cpu()

    def reduce(self, device: torch.device) -> None:
        """Add up every process's sums (a no-op in one process)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        packed = torch.cat([self.totals, self.class_sum, self.class_count]).to(device)
        dist.all_reduce(packed)
        packed = packed.cpu()
        k = self.num_classes
        self.totals, self.class_sum, self.class_count = packed[:5], packed[5:5 + k], packed[5 + k:]

    def result(self) -> dict | None:
        """The statistics (see the module docstring); None when no image with attention was added."""
        images = float(self.totals[0])
        if images == 0:
            return None
        mu_mean, spread, std_mean, kl = (float(v) / images for v in self.totals[1:])
        return {"mu_mean": mu_mean, "mu_spatial_std": spread, "std_mean": std_mean,
                "selectivity_to_noise": spread / std_mean if std_mean > 0 else math.inf, "kl_bits": kl,
                "mu_per_class": self._per_class(), "num_images": int(images)}

    def _per_class(self) -> dict[str, float | None]:
        """Mean mu per class in the dataset's label space (CamVid's groups add up their trainIds)."""
        if self.dataset == "camvid" and self.num_classes == 19:
            groups = {name: list(CAMVID_GROUPS[name]) for name in CAMVID_CLASSES}
        else:
            groups = {name: [i] for i, name in enumerate(class_names(self.num_classes))}
        out: dict[str, float | None] = {}
        for name, ids in groups.items():
            count = float(self.class_count[ids].sum())
            out[name] = float(self.class_sum[ids].sum()) / count if count else None
        return out
