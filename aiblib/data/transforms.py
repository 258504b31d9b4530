"""Joint image/label transforms of SPEC section 3 (torchvision transforms v2, ``tv_tensors.Mask``).

Training (per image): random resize to fit inside ``base_size * r``, r ~ U(ratio_range),
keeping the aspect ratio -> random crop ``crop_size`` re-drawn (up to 10 times) until no
class covers more than ``cat_max_ratio`` of the crop's labelled pixels -> horizontal flip
-> photometric distortion (MMSegmentation ``PhotoMetricDistortion`` semantics, on uint8
values: each step clipped to 0..255 and truncated) -> normalize -> pad to ``crop_size``
(image 0.0 after normalization, i.e. the mean colour; label 255), the reference's order
(MMSeg's data preprocessor normalizes, then pads).
Test: resize the image to fit inside ``base_size`` keeping the ratio; the label keeps its
original size (logits are resized to it for scoring). With ``fit=False`` (multi-scale /
flip test-time augmentation) the image keeps its original size: MMSegmentation's TTA
resizes the *original* image by each ratio (see :func:`scale_size`; done by
``aiblib.evaluation.inference.predict``).

Images are resized as OpenCV ``INTER_LINEAR`` (the reference's resize): bilinear with
half-pixel centres and no anti-aliasing, also when downscaling; uint8 images are computed
in float and rounded half up (:func:`resize_bilinear`).

Labels are only ever resampled with nearest neighbour (v2 does so for ``Mask``) and
padded with 255. All randomness comes from torch's global RNG (``torch.manual_seed``;
DataLoader workers are seeded from it), so a seeded run repeats.

Both transforms are callables ``(image, label) -> (image, label)``: image uint8 (3, H, W)
RGB, label (H, W) integer trainIds; they return a float32 (3, h, w) normalized image and
an int64 (h, w) label.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from aiblib.data.facts import IGNORE_INDEX, MEAN, STD
from aiblib.data.photometric import draw_photometric, photometric_distortion


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


def _as_mask(label: torch.Tensor) -> tv_tensors.Mask:
    if label.ndim != 2:
        raise ValueError(f"label must be (H, W), got shape {tuple(label.shape)}")
    return tv_tensors.Mask(label.to(torch.int64))


def _check_pair(image: torch.Tensor, label: torch.Tensor) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got shape {tuple(image.shape)}")
    if tuple(image.shape[1:]) != tuple(label.shape[-2:]):
        raise ValueError(f"image {tuple(image.shape[1:])} and label {tuple(label.shape[-2:])} differ in size")


def random_resize(image: torch.Tensor, label: torch.Tensor, *, base_size: tuple[int, int],
                  ratio_range: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize to fit inside base_size * r, r ~ U(ratio_range); image :func:`resize_bilinear`, label nearest."""
    r = ratio_range[0] + float(torch.rand(())) * (ratio_range[1] - ratio_range[0])
    target = (int(base_size[0] * r), int(base_size[1] * r))
    size = fit_size(tuple(image.shape[-2:]), target)
    image = resize_bilinear(image, size)
    label = F.resize(label, list(size))  # Mask: nearest
    return image, label


def crop_box(label: torch.Tensor, crop_size: tuple[int, int], cat_max_ratio: float,
             ignore_index: int = IGNORE_INDEX, tries: int = 10) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop of ``label`` (H, W).

    Drawn again (up to ``tries`` times, as MMSegmentation ``RandomCrop``) while one class
    covers ``cat_max_ratio`` or more of the crop's labelled pixels; the last draw is kept.
    """
    H, W = label.shape[-2:]
    ch, cw = min(crop_size[0], H), min(crop_size[1], W)

    def draw() -> tuple[int, int, int, int]:
        top = int(torch.randint(0, H - ch + 1, ()))
        left = int(torch.randint(0, W - cw + 1, ()))
        return top, left, ch, cw

    box = draw()
    if cat_max_ratio >= 1.0:
        return box
    for _ in range(tries):
        top, left, _, _ = box
        patch = label[..., top:top + ch, left:left + cw].reshape(-1)
        counts = torch.bincount(patch.to(torch.int64), minlength=256)
        counts[ignore_index] = 0
        counts = counts[counts > 0]
        if counts.numel() > 1 and counts.max().item() / counts.sum().item() < cat_max_ratio:
            break
        box = draw()
    return box


def pad_to(image: torch.Tensor, label: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad image (3, h, w) and label (h, w) bottom/right to at least ``size`` (h, w): image with 0, label with 255.

    Called on the normalized image, so the image's 0 is the mean colour (as MMSeg).
    """
    ph, pw = max(size[0] - image.shape[-2], 0), max(size[1] - image.shape[-1], 0)
    if ph or pw:
        image = F.pad(image, [0, 0, pw, ph], fill=0)
        label = F.pad(label, [0, 0, pw, ph], fill=IGNORE_INDEX)
    return image, label


def normalize(image: torch.Tensor) -> torch.Tensor:
    """uint8/float (3, H, W) or (B, 3, H, W) RGB 0..255 -> float32 normalized."""
    return F.normalize(image.float(), list(MEAN), list(STD))


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize`: float (3, H, W) or (B, 3, H, W) -> uint8 RGB."""
    mean = torch.tensor(MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).round().clamp(0, 255).to(torch.uint8)


class TrainTransform:
    """The training pipeline; see the module docstring and :func:`train_transform`."""

    def __init__(self, *, crop_size: tuple[int, int], base_size: tuple[int, int], ratio_range: tuple[float, float],
                 cat_max_ratio: float, flip_prob: float, photometric: bool) -> None:
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.base_size = (int(base_size[0]), int(base_size[1]))
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.cat_max_ratio = float(cat_max_ratio)
        self.photometric = bool(photometric)
        self.flip = v2.RandomHorizontalFlip(p=flip_prob)

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image uint8 (3,H,W), label (H,W) -> float32 (3,ch,cw) normalized, int64 (ch,cw)."""
        _check_pair(image, label)
        img = tv_tensors.Image(image)
        mask = _as_mask(label)
        img, mask = random_resize(img, mask, base_size=self.base_size, ratio_range=self.ratio_range)
        top, left, h, w = crop_box(mask, self.crop_size, self.cat_max_ratio)
        img, mask = F.crop(img, top, left, h, w), F.crop(mask, top, left, h, w)
        img, mask = self.flip(img, mask)
        if self.photometric:
            img = photometric_distortion(img.as_subclass(torch.Tensor), draw_photometric(torch.default_generator))
        img, mask = pad_to(normalize(img.as_subclass(torch.Tensor)), mask, self.crop_size)
        return img, mask.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, base_size={self.base_size}, ratio_range={self.ratio_range}, "
                f"cat_max_ratio={self.cat_max_ratio}, flip_prob={self.flip.p}, photometric={self.photometric})")


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


def train_transform(*, crop_size: tuple[int, int] = (512, 1024), base_size: tuple[int, int] = (1024, 2048),
                    ratio_range: tuple[float, float] = (0.5, 2.0), cat_max_ratio: float = 0.75,
                    flip_prob: float = 0.5, photometric: bool = True) -> TrainTransform:
    """The SPEC training pipeline; sizes are (h, w)."""
    if ratio_range[0] <= 0 or ratio_range[0] > ratio_range[1]:
        raise ValueError(f"ratio_range must be 0 < low <= high, got {ratio_range}")
    if min(crop_size) < 1 or min(base_size) < 1:
        raise ValueError(f"crop_size {crop_size} and base_size {base_size} must be positive (h, w)")
    return TrainTransform(crop_size=crop_size, base_size=base_size, ratio_range=ratio_range,
                          cat_max_ratio=cat_max_ratio, flip_prob=flip_prob, photometric=photometric)


def test_transform(*, base_size: tuple[int, int] = (1024, 2048), fit: bool = True) -> TestTransform:
    """The SPEC test pipeline; base_size is (h, w). ``fit=False`` keeps the original size (for
    test-time augmentation, which scales the original image; ``aiblib.evaluation.evaluate.test_pipeline`` chooses)."""
    if min(base_size) < 1:
        raise ValueError(f"base_size {base_size} must be positive (h, w)")
    return TestTransform(base_size=base_size, fit=fit)


test_transform.__test__ = False  # not a pytest test function
