"""Image corruptions of the robustness protocol (ImageNet-C on segmentation, Kamann & Rother, CVPR 2020).

The corruptions are those of ``imagecorruptions`` (Michaelis et al., 2019: Hendrycks &
Dietterich's ImageNet-C code for images of any size), at severities 1 to 5; severity 0 is the
clean image. A corruption is applied to the decoded uint8 image, before the test transform
(resize, normalize), as a camera would have delivered it.

Seeding: the corruptions draw from NumPy's global generator; :func:`corrupt_image` seeds it
from ``(seed, index, corruption, severity)`` and restores its previous state afterwards, so
image ``index`` gets the same noise in every run, in any process and in any order.

Three corruptions of imagecorruptions 1.1.2 fail with the pinned libraries and are refused
with one line (:data:`BROKEN`): ``fog`` (NumPy 2 removed ``np.float_``), ``glass_blur`` and
``gaussian_blur`` (scikit-image 0.19 removed ``multichannel=``).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from aiblib.errors import ConfigError

with warnings.catch_warnings():  # imagecorruptions 1.1.2 imports two deprecated APIs (pkg_resources, scipy's namespace)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    warnings.filterwarnings("ignore", message=".*scipy.ndimage.interpolation", category=DeprecationWarning)
    from imagecorruptions import corrupt, get_corruption_names

__all__ = ["CORRUPTIONS", "BROKEN", "DEFAULT_CORRUPTIONS", "SEVERITIES", "check_corruptions", "corrupt_image",
           "CorruptedDataset"]

# the corruptions of imagecorruptions that do not run with the pinned NumPy / scikit-image, and why
BROKEN = {
    "fog": "uses np.float_, which NumPy 2 removed",
    "glass_blur": "passes multichannel= to scikit-image's gaussian, which scikit-image 0.19 removed",
    "gaussian_blur": "passes multichannel= to scikit-image's gaussian, which scikit-image 0.19 removed",
}
# every corruption that runs here, in imagecorruptions' order (noise, blur, weather, digital, then its extras)
CORRUPTIONS = tuple(name for name in get_corruption_names("all") if name not in BROKEN)
# the default set: noise, blur, weather and digital, two each
DEFAULT_CORRUPTIONS = ("gaussian_noise", "shot_noise", "defocus_blur", "motion_blur", "snow", "brightness",
                       "contrast", "jpeg_compression")
SEVERITIES = (1, 2, 3, 4, 5)


def check_corruptions(corruptions: Sequence[str], severities: Sequence[int]) -> None:
    """Raise ValueError (one line) for an unknown or broken corruption, or a severity outside 0-5."""
    if not corruptions:
        raise ConfigError(f"no corruption given; choose from: {', '.join(CORRUPTIONS)}")
    for name in corruptions:
        if name in BROKEN:
            raise ConfigError(f"corruption {name!r} does not run with the pinned libraries (imagecorruptions 1.1.2 "
                             f"{BROKEN[name]}); choose from: {', '.join(CORRUPTIONS)}")
        if name not in CORRUPTIONS:
            raise ConfigError(f"unknown corruption {name!r}; choose from: {', '.join(CORRUPTIONS)}")
    bad = [s for s in severities if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 5]
    if bad or not severities:
        raise ConfigError(f"severities must be integers from 0 (clean) to 5, got {list(severities)!r}")


def _seed(seed: int, index: int, corruption: str, severity: int) -> int:
    return int(np.random.SeedSequence([seed, index, zlib.crc32(corruption.encode()), severity]).generate_state(1)[0])


def corrupt_image(image: torch.Tensor, corruption: str, severity: int, *, seed: int = 0, index: int = 0) -> torch.Tensor:
    """``image`` uint8 (3, H, W) RGB (H, W >= 32) corrupted: uint8 (3, H, W). Severity 0 returns it unchanged.

    The noise is seeded by ``(seed, index, corruption, severity)`` (see the module docstring).
    """
    check_corruptions([corruption], [severity])
    if severity == 0:
        return image
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a uint8 (3, H, W) image, got {image.dtype} {tuple(image.shape)}")
    hwc = image.permute(1, 2, 0).contiguous().numpy()
    state = np.random.get_state()
    try:
        np.random.seed(_seed(seed, index, corruption, severity))
        out = corrupt(hwc, severity=severity, corruption_name=corruption)
    finally:
        np.random.set_state(state)
    if out.shape != hwc.shape:
        raise RuntimeError(f"{corruption} at severity {severity} changed the image size {hwc.shape} to {out.shape}")
    return torch.from_numpy(np.array(out, dtype=np.uint8)).permute(2, 0, 1).contiguous()  # a writable copy


class CorruptedDataset(Dataset):
    """The items of ``dataset`` with their image corrupted, then ``transform``ed.

    ``dataset`` gives raw items ``{"image": uint8 (3, H, W), "label": (H, W), "name"}`` (a dataset
    built without a transform); ``transform`` is ``(image, label) -> (image, label)``, e.g. the
    test transform (float32 (3, h, w) normalized image, int64 (H, W) label). Item ``i`` is
    corrupted with ``index=i`` and ``seed``.
    """

    def __init__(self, dataset: Dataset, corruption: str, severity: int, transform: Callable | None = None, *,
                 seed: int = 0) -> None:
        check_corruptions([corruption], [severity])
        self.dataset, self.corruption, self.severity = dataset, corruption, severity
        self.transform, self.seed = transform, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        image = corrupt_image(item["image"], self.corruption, self.severity, seed=self.seed, index=index)
        label = item["label"]
        if self.transform is not None:
            image, label = self.transform(image, label)
        return {"image": image, "label": label, "name": item["name"]}
