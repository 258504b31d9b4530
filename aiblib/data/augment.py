"""The training augmentation of SPEC section 3, as CPU draws and an apply step (CPU or device).

Per image: random resize to fit inside ``base_size * r``, r ~ U(ratio_range), keeping the
aspect ratio -> random crop ``crop_size``, re-drawn (up to 10 times, as MMSeg ``RandomCrop``)
while one class covers ``cat_max_ratio`` or more of the crop's labelled pixels -> horizontal
flip -> photometric distortion (:mod:`aiblib.data.photometric`, MMSeg's exact uint8 arithmetic)
-> normalize -> pad to ``crop_size`` (image 0.0 after normalization, i.e. the mean colour;
label 255), the reference's order (MMSeg's data preprocessor normalizes, then pads).

:func:`draw_augment` makes an image's :class:`AugmentDraws` (resize size, crop box, flip,
photometric draws) from its own ``torch.Generator``; it reads only the label (the crop's class
check), resampled at the crop's pixels only. :func:`apply_augment` applies them to one image on
the CPU (``cv2.resize`` of the whole image, then the crop), :func:`apply_batch` to a batch on any
device as batched tensor ops (:func:`aiblib.data.transforms.resize_opencv` of the crop's pixels
only, OpenCV's integer arithmetic). The resize is OpenCV's ``INTER_LINEAR`` bit for bit, the
photometric distortion MMSeg's; the two paths agree exactly (tested on CPU tensors).

Randomness: :class:`TrainTransform` seeds each image's generator with one number drawn from the
generator it is given, which :class:`aiblib.training.SeededSamples` seeds per sample from (run seed,
position in the training stream): the draws are a function of (seed, position) on either path, and
no global RNG (torch's CPU or CUDA, NumPy's, Python's) is read or seeded. Called without a generator
(exploring in a notebook), the number is drawn from torch's global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from aiblib.data.facts import IGNORE_INDEX
from aiblib.data.photometric import (
    PhotometricDraws,
    draw_photometric,
    photometric_distortion,
    photometric_distortion_hwc,
)
from aiblib.data.transforms import fit_size, nearest_indices, normalize, pad_to, resize_opencv

__all__ = ["AugmentDraws", "draw_crop", "draw_augment", "crop_label", "geometry", "apply_augment", "apply_batch",
           "collate_drawn", "TrainTransform", "train_transform"]


@dataclass(frozen=True)
class AugmentDraws:
    """One image's training augmentation: ``size`` (h, w) it is resized to, the crop ``box``
    (top, left, h, w) in the resized image, ``flip`` and the ``photometric`` draws (None: off)."""

    size: tuple[int, int]
    box: tuple[int, int, int, int]
    flip: bool
    photometric: PhotometricDraws | None


def crop_label(label: torch.Tensor, size: tuple[int, int], box: tuple[int, int, int, int]) -> torch.Tensor:
    """The ``box`` (top, left, h, w) of ``label`` (H, W) resized (nearest) to ``size``: (h, w), same dtype;
    identical to resizing the whole label, then cropping."""
    top, left, h, w = box
    rows = nearest_indices(label.shape[-2], size[0], label.device)[top:top + h]
    cols = nearest_indices(label.shape[-1], size[1], label.device)[left:left + w]
    if label.device.type == "cpu":  # numpy's take is ~5x faster there; the same gather
        return torch.from_numpy(np.take(np.take(label.numpy(), rows.numpy(), axis=0), cols.numpy(), axis=1))
    return label.index_select(-2, rows).index_select(-1, cols)


def draw_crop(label: torch.Tensor, size: tuple[int, int], crop_size: tuple[int, int], cat_max_ratio: float,
              generator: torch.Generator, tries: int = 10) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop of ``label`` (H, W) resized (nearest) to ``size``.

    Drawn again (up to ``tries`` times) while one class covers ``cat_max_ratio`` or more of the
    crop's labelled pixels; the last draw is kept (MMSeg ``RandomCrop``).
    """
    H, W = size
    ch, cw = min(crop_size[0], H), min(crop_size[1], W)

    def draw() -> tuple[int, int, int, int]:
        top = int(torch.randint(0, H - ch + 1, (), generator=generator))
        left = int(torch.randint(0, W - cw + 1, (), generator=generator))
        return top, left, ch, cw

    box = draw()
    if cat_max_ratio >= 1.0:
        return box
    for _ in range(tries):
        counts = torch.bincount(crop_label(label, size, box).reshape(-1).to(torch.int64), minlength=256)
        counts[IGNORE_INDEX] = 0
        counts = counts[counts > 0]
        if counts.numel() > 1 and counts.max().item() / counts.sum().item() < cat_max_ratio:
            break
        box = draw()
    return box


def draw_augment(label: torch.Tensor, *, crop_size: tuple[int, int], base_size: tuple[int, int],
                 ratio_range: tuple[float, float], cat_max_ratio: float, flip_prob: float, photometric: bool,
                 generator: torch.Generator) -> AugmentDraws:
    """One image's draws from ``generator``, in the pipeline's order (ratio, crop, flip, photometric)."""
    r = ratio_range[0] + float(torch.rand((), generator=generator, dtype=torch.float64)) * (ratio_range[1] - ratio_range[0])
    size = fit_size(tuple(label.shape[-2:]), (int(base_size[0] * r), int(base_size[1] * r)))
    box = draw_crop(label, size, crop_size, cat_max_ratio, generator)
    flip = bool(torch.rand((), generator=generator) < flip_prob)
    return AugmentDraws(size, box, flip, draw_photometric(generator) if photometric else None)


def geometry(image: torch.Tensor, label: torch.Tensor, draws: AugmentDraws) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize, crop and flip on any device: image uint8 (3, H, W), label (H, W) -> uint8 (3, h, w), label (h, w)
    of the box; the image resized by :func:`resize_opencv` on the box's pixels only."""
    image = resize_opencv(image, draws.size, draws.box)
    label = crop_label(label, draws.size, draws.box)
    if draws.flip:
        image, label = image.flip(-1), label.flip(-1)
    return image, label


def _geometry_hwc(image: torch.Tensor, label: torch.Tensor, draws: AugmentDraws) -> tuple[np.ndarray, torch.Tensor]:
    """:func:`geometry` on the CPU with cv2: ``cv2.resize`` of the whole image (bit-identical to
    :func:`resize_opencv`, and faster there), then crop and flip in one copy: uint8 RGB (h, w, 3), label (h, w)."""
    hwc = image.permute(1, 2, 0).numpy()  # torchvision's decoders return CHW views of HWC memory: no copy
    if tuple(hwc.shape[:2]) != tuple(draws.size):
        hwc = cv2.resize(np.ascontiguousarray(hwc), (draws.size[1], draws.size[0]), interpolation=cv2.INTER_LINEAR)
    top, left, h, w = draws.box
    hwc, label = hwc[top:top + h, left:left + w], crop_label(label, draws.size, draws.box)
    if draws.flip:
        return cv2.flip(hwc, 1), label.flip(-1)
    return np.ascontiguousarray(hwc), label


def apply_augment(image: torch.Tensor, label: torch.Tensor, draws: AugmentDraws,
                  crop_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One image on the CPU: uint8 (3, H, W), label (H, W) -> float32 (3, ch, cw) normalized, int64 (ch, cw).

    OpenCV and lookup tables on the HWC crop (:func:`_geometry_hwc`,
    :func:`aiblib.data.photometric.photometric_distortion_hwc`), then normalize and pad: bit-identical to
    :func:`apply_batch`'s tensor ops.
    """
    hwc, label = _geometry_hwc(image, label, draws)
    if draws.photometric is not None:
        hwc = photometric_distortion_hwc(hwc, draws.photometric)
    return pad_to(normalize(torch.from_numpy(hwc).permute(2, 0, 1).contiguous()), label.to(torch.int64), crop_size)


def apply_batch(images: list[torch.Tensor], labels: list[torch.Tensor], draws: list[AugmentDraws],
                crop_size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch on ``device``: uint8 (3, H_i, W_i) images and (H_i, W_i) labels (any sizes) ->
    float32 (B, 3, ch, cw) normalized and padded (0), int64 (B, ch, cw) (padding 255).

    Resize, crop and flip per image (sizes differ), then photometric distortion and normalization
    as batched ops on the uint8 crops.
    """
    ch, cw = crop_size
    batch = torch.zeros(len(images), 3, ch, cw, dtype=torch.uint8, device=device)
    target = torch.full((len(images), ch, cw), IGNORE_INDEX, dtype=torch.int64, device=device)
    valid = torch.zeros(len(images), 1, ch, cw, dtype=torch.bool, device=device)
    for i, (image, label, d) in enumerate(zip(images, labels, draws)):
        image, label = geometry(image.to(device, non_blocking=True), label.to(device, non_blocking=True), d)
        h, w = label.shape
        batch[i, :, :h, :w], target[i, :h, :w], valid[i, :, :h, :w] = image, label, True
    chosen = [i for i, d in enumerate(draws) if d.photometric is not None]
    if chosen:
        batch[chosen] = photometric_distortion(batch[chosen], [draws[i].photometric for i in chosen])
    return normalize(batch).mul_(valid), target


def collate_drawn(samples: list[dict]) -> dict:
    """DataLoader ``collate_fn`` for items of a ``draw_only`` :class:`TrainTransform`: each key -> a list."""
    return {key: [s[key] for s in samples] for key in samples[0]}


class TrainTransform:
    """The training pipeline (module docstring): ``(image, label) -> (image, label)``, or with
    ``draw_only`` ``-> {"image", "label", "draws"}`` (the image and label as given, for :func:`apply_batch`)."""

    def __init__(self, *, crop_size: tuple[int, int], base_size: tuple[int, int], ratio_range: tuple[float, float],
                 cat_max_ratio: float, flip_prob: float, photometric: bool, draw_only: bool = False) -> None:
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.base_size = (int(base_size[0]), int(base_size[1]))
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.cat_max_ratio = float(cat_max_ratio)
        self.flip_prob = float(flip_prob)
        self.photometric = bool(photometric)
        self.draw_only = bool(draw_only)

    def draw(self, label: torch.Tensor, generator: torch.Generator) -> AugmentDraws:
        """The draws for ``label`` (H, W), from ``generator``."""
        return draw_augment(label, crop_size=self.crop_size, base_size=self.base_size, ratio_range=self.ratio_range,
                            cat_max_ratio=self.cat_max_ratio, flip_prob=self.flip_prob, photometric=self.photometric,
                            generator=generator)

    def __call__(self, image: torch.Tensor, label: torch.Tensor, *,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor] | dict:
        """image uint8 (3,H,W), label (H,W) -> float32 (3,ch,cw) normalized, int64 (ch,cw) (or the draws).

        The image's draws come from a generator seeded by one number drawn from ``generator`` (the
        sample's, :class:`aiblib.training.SeededSamples`), or from torch's global RNG without one."""
        if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
            raise ValueError(f"image must be uint8 (3, H, W), got {image.dtype} {tuple(image.shape)}")
        if label.ndim != 2 or tuple(image.shape[1:]) != tuple(label.shape):
            raise ValueError(f"label must be (H, W) of the image's size {tuple(image.shape[1:])}, got {tuple(label.shape)}")
        draws = self.draw(label, torch.Generator().manual_seed(int(torch.randint(0, 2**62, (), generator=generator))))
        if self.draw_only:
            return {"image": image, "label": label, "draws": draws}
        return apply_augment(image, label, draws, self.crop_size)

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, base_size={self.base_size}, ratio_range={self.ratio_range}, "
                f"cat_max_ratio={self.cat_max_ratio}, flip_prob={self.flip_prob}, photometric={self.photometric}, "
                f"draw_only={self.draw_only})")


def train_transform(*, crop_size: tuple[int, int] = (512, 1024), base_size: tuple[int, int] = (1024, 2048),
                    ratio_range: tuple[float, float] = (0.5, 2.0), cat_max_ratio: float = 0.75,
                    flip_prob: float = 0.5, photometric: bool = True, draw_only: bool = False) -> TrainTransform:
    """The SPEC training pipeline; sizes are (h, w). ``draw_only``: return the draws for :func:`apply_batch`."""
    if ratio_range[0] <= 0 or ratio_range[0] > ratio_range[1]:
        raise ValueError(f"ratio_range must be 0 < low <= high, got {ratio_range}")
    if min(crop_size) < 1 or min(base_size) < 1:
        raise ValueError(f"crop_size {crop_size} and base_size {base_size} must be positive (h, w)")
    return TrainTransform(crop_size=crop_size, base_size=base_size, ratio_range=ratio_range,
                          cat_max_ratio=cat_max_ratio, flip_prob=flip_prob, photometric=photometric, draw_only=draw_only)
