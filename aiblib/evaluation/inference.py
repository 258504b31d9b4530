"""Inference on one image: the model's scores, its uncertainty, and its maps.

- :func:`forward`: the model's output dict in float32 (under bf16 autocast if asked).
- :func:`predict_logits`: the logits (1, K, H, W) of one normalized image at its own size, whole or
  slide (logits averaged over the attention samples, and over the windows where they overlap).
- :func:`predict_probs`: multi-scale + flip test-time augmentation: the softmax (1, K, H, W) averaged
  over the views; each scale ``r`` resizes the given image as MMSegmentation's TTA resizes the
  original one (:func:`aiblib.data.transforms.scale_size`; evaluation then gives the original image).
- :func:`prediction`: the one rule from either to classes: resized (bilinear) to the label's size, then argmax.
- :func:`uncertainty`: predictive entropy and mutual information over the attention samples.
- :func:`image_maps`: prediction, confidence, attention and uncertainty maps of one image as numpy arrays.
- :func:`noise_generator`: the attention noise of image ``index``, seeded so that results
  do not depend on the number of processes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aiblib.data import scale_size

__all__ = ["forward", "logits_at_input", "slide", "predict_logits", "predict_probs", "prediction", "uncertainty",
           "image_maps", "noise_generator"]


def forward(model: nn.Module, x: torch.Tensor, *, generator: torch.Generator | None, use_bf16: bool) -> dict:
    """``model(x)`` with floating outputs in float32 (x: (B, 3, H, W) normalized)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        out = model(x, generator=generator)
    return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}


def logits_at_input(model: nn.Module, x: torch.Tensor, *, generator: torch.Generator | None,
                    use_bf16: bool) -> torch.Tensor:
    """(1, 3, h, w) -> (1, K, h, w): the model's (sample-averaged) logits resized to its input."""
    out = forward(model, x, generator=generator, use_bf16=use_bf16)["out"]
    return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def slide(model: nn.Module, x: torch.Tensor, *, crop: Sequence[int], stride: Sequence[int],
          generator: torch.Generator | None, use_bf16: bool) -> torch.Tensor:
    """MMSegmentation's slide inference: windows of ``crop`` (h, w), logits averaged where they overlap."""
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
            logits = logits_at_input(model, x[:, :, y1:y2, x1:x2], generator=generator, use_bf16=use_bf16)
            if total is None:
                total = x.new_zeros((1, logits.shape[1], h, w))
            total[:, :, y1:y2, x1:x2] += logits
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


@torch.no_grad()
def predict_logits(model: nn.Module, image: torch.Tensor, *, mode: str = "whole",
                   slide_crop: Sequence[int] = (512, 1024), slide_stride: Sequence[int] = (341, 341),
                   generator: torch.Generator | None = None, use_bf16: bool = False) -> torch.Tensor:
    """The logits (1, K, H, W) of one normalized image (1, 3, H, W) as given: ``mode`` 'whole' (the model's
    logits resized to (H, W), bilinear) or 'slide' (:func:`slide`). The model must be in eval mode."""
    if mode == "slide":
        return slide(model, image, crop=slide_crop, stride=slide_stride, generator=generator, use_bf16=use_bf16)
    if mode == "whole":
        return logits_at_input(model, image, generator=generator, use_bf16=use_bf16)
    raise ValueError(f"eval_mode must be 'whole' or 'slide', got {mode!r}")


@torch.no_grad()
def predict_probs(model: nn.Module, image: torch.Tensor, *, scales: Sequence[float] = (1.0,), flip: bool = False,
                  mode: str = "whole", slide_crop: Sequence[int] = (512, 1024), slide_stride: Sequence[int] = (341, 341),
                  generator: torch.Generator | None = None, use_bf16: bool = False) -> torch.Tensor:
    """Test-time augmentation of one normalized image (1, 3, H, W): the softmax (1, K, H, W) averaged over
    the views ``scales`` x (unflipped, and flipped with ``flip``), as MMSegmentation 1.x's TTA.

    Each view's :func:`predict_logits` are flipped back and resized (bilinear) to (H, W) before the
    softmax. Scale ``r`` feeds the image resized to :func:`~aiblib.data.transforms.scale_size`
    ((H, W), r) (mmcv's rule, ``int(H * r + 0.5)``), bilinear, align_corners=False, no anti-aliasing.
    MMSegmentation's TTA scales the *original* image, so pass the original-size image
    (``aiblib.evaluation.evaluate.test_pipeline`` does). The model must be in eval mode.
    """
    _, _, h, w = image.shape
    views = [(s, f) for s in scales for f in ((False, True) if flip else (False,))]
    total = None
    for scale, flipped in views:
        x = image
        size = scale_size((h, w), float(scale))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        logits = predict_logits(model, x.flip(-1) if flipped else x, mode=mode, slide_crop=slide_crop,
                                slide_stride=slide_stride, generator=generator, use_bf16=use_bf16)
        if flipped:
            logits = logits.flip(-1)
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        probs = logits.softmax(1)
        total = probs if total is None else total + probs
    return total / len(views)


def prediction(scores: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The classes (B, h, w) that ``scores`` (B, K, H, W) predict at ``size`` (h, w): the scores resized
    (bilinear) to ``size``, then argmax, as the reference resizes logits to the label's size. The one rule:
    evaluation scores this of :func:`predict_logits` (or of :func:`predict_probs` with TTA), and
    :func:`image_maps` draws it."""
    return F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=False).argmax(1)


def uncertainty(outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictive entropy and mutual information (nats), (B, 1, h, w) at logit resolution.

    With per-sample logits ``sample_logits`` (n, B, K, h, w): p_k = softmax of sample k,
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


def noise_generator(device: torch.device, seed: int, index: int) -> torch.Generator:
    """The generator of the attention noise for image ``index`` of a split (seeded by ``seed`` and ``index``)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
    return g


@torch.no_grad()
def image_maps(model: nn.Module, image: torch.Tensor, *, size: Sequence[int] | None = None, seed: int = 0,
               index: int = 0, use_bf16: bool = False) -> dict[str, np.ndarray]:
    """Prediction, confidence, attention and uncertainty maps of one image, as numpy arrays at ``size``.

    ``image``: normalized (3, H, W) or (1, 3, H, W); ``size`` (h, w) defaults to (H, W). The
    attention noise is that of :func:`noise_generator` (``seed``, ``index``), as in evaluation.
    Returns ``pred`` (h, w) int64 trainIds, the :func:`prediction` of the sample-averaged logits at the
    image's size (what evaluation scores of :func:`predict_logits`, whole image, one view); ``confidence``
    (h, w) float32, the probability of that class under the predictive distribution (the mean of the
    samples' softmax, resized bilinear as the logits);
    ``entropy`` and ``mi`` (h, w) float32 in nats (see :func:`uncertainty`); and with attention ``mu``
    (h, w) and the sampled ``masks`` (n, h, w), float32.
    """
    x = image if image.dim() == 4 else image[None]
    size = tuple(size or x.shape[-2:])
    device = next(model.parameters()).device
    outputs = forward(model, x.to(device), generator=noise_generator(device, seed, index), use_bf16=use_bf16)

    def up(t: torch.Tensor) -> np.ndarray:  # (N, 1 or K, h, w) -> (N, C, *size) float32, bilinear
        return F.interpolate(t.float(), size=size, mode="bilinear", align_corners=False).cpu().numpy()

    def at_input(t: torch.Tensor) -> torch.Tensor:  # as :func:`logits_at_input`: first at the input's size
        return F.interpolate(t, size=x.shape[-2:], mode="bilinear", align_corners=False)

    entropy, mi = uncertainty(outputs)
    samples = outputs.get("sample_logits")
    probs = samples[:, :1].softmax(2).mean(0) if samples is not None else outputs["out"][:1].softmax(1)
    pred = prediction(at_input(outputs["out"][:1]), size)  # what evaluation scores: predict_logits, then prediction
    confidence = F.interpolate(at_input(probs), size=size, mode="bilinear", align_corners=False).gather(1, pred[:, None])
    maps = {"pred": pred[0].cpu().numpy(), "confidence": confidence[0, 0].cpu().numpy(),
            "entropy": up(entropy[:1])[0, 0], "mi": up(mi[:1])[0, 0]}
    if outputs.get("mu") is not None:
        maps["mu"] = up(outputs["mu"][:1])[0, 0]
        maps["masks"] = up(outputs["masks"])[:, 0]
    return maps
