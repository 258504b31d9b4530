"""Resizing, normalisation, padding and the test transform of SPEC section 3.

The training pipeline (random resize, crop, flip, photometric distortion) is
:mod:`aiblib.data.augment`, built on :func:`resize_opencv` (OpenCV's ``INTER_LINEAR`` bit for bit, on a
crop window if asked) and :func:`nearest_indices` here.
Test: resize the image to fit inside ``base_size`` keeping the ratio; the label keeps its
original size (logits are resized to it for scoring). With ``fit=False`` (multi-scale /
flip test-time augmentation) the image keeps its original size: MMSegmentation's TTA
resizes the *original* image by each ratio (see :func:`scale_size`; done by
``aiblib.evaluation.inference.predict``).

Images are resized as OpenCV ``INTER_LINEAR`` (the reference's resize): bilinear with
half-pixel centres and no anti-aliasing, also when downscaling. The test transform computes it in
float and rounds half up (:func:`resize_bilinear`: within one level of OpenCV's 11-bit fixed point, ~13 % of
the values one level off at the sizes tried);
the training pipeline uses :func:`resize_opencv`, OpenCV's own arithmetic. Labels are only ever resampled with
nearest neighbour and padded with 255.

The test transform is a callable ``(image, label) -> (image, label)``: image uint8 (3, H, W)
RGB, label (H, W) integer trainIds; it returns a float32 (3, h, w) normalized image and
an int64 (H, W) label.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from aiblib.data.facts import IGNORE_INDEX, MEAN, STD


def fit_size(size: tuple[int, int], scale: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of an image of ``size`` (h, w) rescaled to fit inside ``scale`` keeping its ratio.

    Same rule as mmcv ``rescale_size``: the long side fits the long side of ``scale`` and the
    short side its short side.
    """
    h, w = size
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def scale_size(size: tuple[int, int], ratio: float) -> tuple[int, int]:
    """(h, w) of an image of ``size`` (h, w) rescaled by ``ratio`` keeping its ratio.

    As mmcv ``Resize(scale_factor=ratio, keep_ratio=True)`` (MMSegmentation's TTA): the target
    ``(int(h * ratio + 0.5), int(w * ratio + 0.5))``, then :func:`fit_size` into it.
    """
    h, w = size
    return fit_size(size, (max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))))


def resize_bilinear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (..., C, H, W) image to ``size`` (h, w), as OpenCV ``INTER_LINEAR``.

    Half-pixel centres (align_corners=False), no anti-aliasing (also when downscaling).
    uint8 input is computed in float32 and rounded half up back to uint8 (torchvision's native
    uint8 kernel is not used: it is off by one level at times); other dtypes keep theirs.
    The tensor subclass (``tv_tensors.Image``) is kept.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(image.shape[-2:]) == size:
        return image
    out = F.resize(image.as_subclass(torch.Tensor).float(), list(size), interpolation=InterpolationMode.BILINEAR,
                   antialias=False)
    if image.dtype == torch.uint8:
        out = out.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
    else:
        out = out.to(image.dtype)
    return tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.TVTensor) else out


def _opencv_taps(n_in: int, n_out: int, start: int, stop: int, *, clamp: bool,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV ``INTER_LINEAR``'s fixed-point taps of output positions ``start .. stop - 1`` of ``n_in -> n_out``:
    source indices i0, i1 (int64, clipped to the image) and int32 weights w0, w1 (``cvRound(2048 * (1 - f))``,
    ``cvRound(2048 * f)``). ``clamp`` (columns): an edge column takes one source pixel (f = 0); rows keep f."""
    scale = 1.0 / (n_out / n_in)
    f = ((torch.arange(start, stop, dtype=torch.float64) + 0.5) * scale - 0.5).to(torch.float32)
    i = f.floor()
    f = f - i
    i = i.to(torch.int64)
    if clamp:
        f = f.masked_fill((i < 0) | (i >= n_in - 1), 0.0)
        i = i.clamp(0, n_in - 1)
    w0, w1 = ((1.0 - f) * 2048).round(), (f * 2048).round()
    i0, i1 = i.clamp(0, n_in - 1), (i + 1).clamp(0, n_in - 1)
    return i0.to(device), i1.to(device), w0.to(torch.int32).to(device), w1.to(torch.int32).to(device)


def resize_opencv(image: torch.Tensor, size: tuple[int, int],
                  box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """uint8 (..., C, H, W) resized to ``size`` (h, w) exactly as ``cv2.resize(..., INTER_LINEAR)`` (OpenCV's
    vectorised 8-bit path); with ``box`` (top, left, bh, bw) only that window, (..., C, bh, bw).

    Integer arithmetic, as OpenCV: columns ``a0 * p0 + a1 * p1`` (11-bit weights), then rows
    ``((b0 * (r0 >> 4)) >> 16) + ((b1 * (r1 >> 4)) >> 16) + 2 >> 2``. Bit-identical to OpenCV 5.0 and on any
    device (``tests/test_augment.py`` compares it with cv2 at several up- and down-scales); a window is the
    window of the whole resize.
    """
    if image.dtype != torch.uint8:
        raise ValueError(f"resize_opencv takes uint8 images, got {image.dtype}")
    (H, W), (h, w) = image.shape[-2:], (int(size[0]), int(size[1]))
    top, left, bh, bw = box if box is not None else (0, 0, h, w)
    if (H, W) == (h, w):
        return image[..., top:top + bh, left:left + bw]
    y0, y1, b0, b1 = _opencv_taps(H, h, top, top + bh, clamp=False, device=image.device)
    x0, x1, a0, a1 = _opencv_taps(W, w, left, left + bw, clamp=True, device=image.device)
    src = image.as_subclass(torch.Tensor)

    def rows(y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # int32 (..., C, bh, bw)
        r = src.index_select(-2, y)
        r = r.index_select(-1, x0).to(torch.int32).mul_(a0).add_(r.index_select(-1, x1).to(torch.int32).mul_(a1))
        return r.bitwise_right_shift_(4).mul_(b[:, None]).bitwise_right_shift_(16)

    out = rows(y0, b0).add_(rows(y1, b1)).add_(2).bitwise_right_shift_(2)
    return out.clamp_(0, 255).to(torch.uint8)


def nearest_indices(n_in: int, n_out: int, device: torch.device | None = None) -> torch.Tensor:
    """int64 (n_out,): the source index of each output position of a nearest resize ``n_in -> n_out``,
    exactly torch's ``interpolate(mode="nearest")`` (what torchvision uses for masks)."""
    ramp = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in)
    return torch.nn.functional.interpolate(ramp, size=n_out, mode="nearest").view(n_out).to(torch.int64).to(device)


def _check_pair(image: torch.Tensor, label: torch.Tensor) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got shape {tuple(image.shape)}")
    if tuple(image.shape[1:]) != tuple(label.shape[-2:]):
        raise ValueError(f"image {tuple(image.shape[1:])} and label {tuple(label.shape[-2:])} differ in size")


def pad_to(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad image (3, h, w) and label (h, w) bottom/right to at least ``size`` (h, w): image with 0, label with 255.

    Called on the normalized image, so the image's 0 is the mean colour (as MMSeg).
    """
    ph, pw = max(size[0] - image.shape[-2], 0), max(size[1] - image.shape[-1], 0)
    if ph or pw:
        image = torch.nn.functional.pad(image, [0, pw, 0, ph], value=0)
        label = torch.nn.functional.pad(label, [0, pw, 0, ph], value=IGNORE_INDEX)
    return image, label


def normalize(image: torch.Tensor) -> torch.Tensor:
    """uint8/float (3, H, W) or (B, 3, H, W) RGB 0..255 -> float32 normalized."""
    return F.normalize(image.float(), list(MEAN), list(STD))


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: float (3, H, W) or (B, 3, H, W) -> uint8 RGB."""
    mean = torch.tensor(MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).round().clamp(0, 255).to(torch.uint8)


class TestTransform:
    """Resize the image to fit inside ``base_size`` (ratio kept; not with ``fit=False``); label unchanged (int64)."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, base_size: tuple[int, int], fit: bool = True) -> None:
        self.base_size = (int(base_size[0]), int(base_size[1]))
        self.fit = bool(fit)

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image uint8 (3,H,W), label (H,W) -> float32 (3,h,w) normalized (h,w fit base_size, or
        (H,W) with ``fit=False``), int64 (H,W)."""
        _check_pair(image, label)
        if self.fit:
            image = resize_bilinear(image, fit_size(tuple(image.shape[-2:]), self.base_size))
        return normalize(image), label.to(torch.int64)

    def __repr__(self) -> str:
        return f"TestTransform(base_size={self.base_size}, fit={self.fit})"


def test_transform(*, base_size: tuple[int, int] = (1024, 2048), fit: bool = True) -> TestTransform:
    """The SPEC test pipeline; base_size is (h, w). ``fit=False`` keeps the original size (for
    test-time augmentation, which scales the original image; ``aiblib.evaluation.evaluate.test_pipeline`` chooses)."""
    if min(base_size) < 1:
        raise ValueError(f"base_size {base_size} must be positive (h, w)")
    return TestTransform(base_size=base_size, fit=fit)


test_transform.__test__ = False  # not a pytest test function
