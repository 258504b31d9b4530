"""MMSegmentation's ``PhotoMetricDistortion`` on uint8 RGB tensors, reference-exact (SPEC section 3).

MMSeg (1.x) on a uint8 BGR image, each step clipped to 0..255 and truncated (float32 math,
``astype(np.uint8)``); coins and values are drawn in this order::

    brightness  (p 0.5)  x + U(-32, 32)
    mode = randint(2)
    contrast    (p 0.5)  x * U(0.5, 1.5)          here when mode == 1
    saturation  (p 0.5)  HSV: S * U(0.5, 1.5)     OpenCV 8-bit BGR -> HSV -> BGR round trip
    hue         (p 0.5)  HSV: (H + randint(-18, 18)) % 180   (18 itself excluded)
    contrast    (p 0.5)                           here when mode == 0

The HSV conversions are OpenCV's 8-bit ones (hue 0..179): :func:`rgb_to_hsv8` is its exact integer
arithmetic; :func:`hsv8_to_rgb` its vectorised float32 sector formula (truncated). Both are
bit-exact against ``cv2.cvtColor`` of opencv-python 5.0 (``COLOR_BGR2HSV`` over all 256^3
colours, ``COLOR_HSV2BGR`` over all 180 x 256 x 256 HSV triples in rows of 256 pixels;
``tests/test_photometric.py``).

Every function takes (3, H, W) or (B, 3, H, W) uint8 RGB; a batch gets per-image parameters.
The draws are a :class:`PhotometricDraws` per image (from that image's ``torch.Generator``), so the
CPU pipeline and the on-device pipeline distort each image alike. The CPU pipeline runs
:func:`photometric_distortion_hwc` (OpenCV and lookup tables on HWC arrays, bit-identical, ~10x faster).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = ["PhotometricDraws", "draw_photometric", "rgb_to_hsv8", "hsv8_to_rgb", "convert_uint8",
           "photometric_distortion", "photometric_distortion_hwc", "cv2_hsv_matches"]

_SHIFT = 12  # OpenCV's hsv_shift
# OpenCV's HSV2RGB sector table: for sector k, (b, g, r) = tab[_SECTORS[k]], tab = (v, p, q, t)
_SECTORS = ((1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1, 0))


@dataclass(frozen=True)
class PhotometricDraws:
    """One image's photometric draws; ``None`` where the step's coin said no.

    brightness: the added delta; contrast: the factor; contrast_first: MMSeg's ``mode == 1``
    (contrast before the HSV steps); saturation: the S factor; hue: the shift in OpenCV units.
    """

    brightness: float | None = None
    contrast: float | None = None
    contrast_first: bool = False
    saturation: float | None = None
    hue: int | None = None


def draw_photometric(generator: torch.Generator, *, brightness_delta: float = 32.0,
                     contrast_range: tuple[float, float] = (0.5, 1.5),
                     saturation_range: tuple[float, float] = (0.5, 1.5), hue_delta: int = 18) -> PhotometricDraws:
    """MMSeg's coins and values, in its order, from ``generator``."""
    def coin() -> bool:
        return bool(torch.randint(0, 2, (), generator=generator))

    def uniform(lo: float, hi: float) -> float:
        return lo + float(torch.rand((), generator=generator, dtype=torch.float64)) * (hi - lo)

    brightness = uniform(-brightness_delta, brightness_delta) if coin() else None
    contrast_first = coin()
    contrast = uniform(*contrast_range) if contrast_first and coin() else None
    saturation = uniform(*saturation_range) if coin() else None
    hue = int(torch.randint(-hue_delta, hue_delta, (), generator=generator)) if coin() else None
    if not contrast_first and coin():
        contrast = uniform(*contrast_range)
    return PhotometricDraws(brightness, contrast, contrast_first, saturation, hue)


def _tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV's sdiv_table (round(255 * 4096 / i)) and hdiv_table180 (round(180 * 4096 / (6 i))), 0 at i = 0."""
    i = torch.arange(256, dtype=torch.float64, device=device)
    sdiv = torch.where(i > 0, 255 * 4096 / i, 0.0).round().to(torch.int32)
    hdiv = torch.where(i > 0, 180 * 4096 / (6 * i), 0.0).round().to(torch.int32)
    return sdiv, hdiv


def rgb_to_hsv8(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (..., 3, H, W) -> int32 (..., 3, H, W) H (0..179), S, V (0..255), as OpenCV's 8-bit BGR2HSV.

    V = max; S = (diff * sdiv[V] + 2048) >> 12; H from the max channel (R first, then G, then B),
    (h * hdiv[diff] + 2048) >> 12, + 180 when negative. Exact integer arithmetic.
    """
    sdiv, hdiv = _tables(image.device)
    r, g, b = image.to(torch.int32).unbind(-3)
    v = torch.maximum(torch.maximum(r, g), b)
    diff = v - torch.minimum(torch.minimum(r, g), b)
    s = (diff * sdiv[v] + (1 << (_SHIFT - 1))) >> _SHIFT
    h = torch.where(v == r, g - b, torch.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + (1 << (_SHIFT - 1))) >> _SHIFT
    h = torch.where(h < 0, h + 180, h)
    return torch.stack((h, s, v), dim=-3)


def hsv8_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """int (..., 3, H, W) H (0..179), S, V (0..255) -> uint8 RGB (..., 3, H, W), as OpenCV's 8-bit HSV2BGR.

    OpenCV's vectorised path (``HSV2RGB_b``, every pixel of a row whose width is a multiple of its
    SIMD block, e.g. 512 or 1024): in float32 h * (6/180), s / 255, v / 255; sector = floor(h),
    f = h - sector; (v, v(1-s), v(1-sf), v(1-s(1-f))) picked by sector, where ``1 - s*x`` is one
    fused multiply-add (emulated here in float64: exact for every 8-bit input); * 255 truncated.
    (OpenCV's scalar tail, the last pixels of a row whose width is not a multiple of 32, rounds instead:
    e.g. rows of 200 pixels differ by one level at 2.9 % of the pixels, all in columns 192-199.)
    """
    h, s, v = hsv.to(torch.float32).unbind(-3)
    s = s * (1.0 / 255.0)
    v = v * (1.0 / 255.0)
    h = h * (6.0 / 180.0)
    sector = h.floor()
    h = h - sector
    s64 = s.double()

    def fnma(x: torch.Tensor) -> torch.Tensor:  # fl32(1 - s * x) with one rounding, as an FMA
        return (1.0 - s64 * x.double()).float()

    tab = torch.stack((v, v * (1.0 - s), v * fnma(h), v * fnma(1.0 - h)), dim=-3)
    order = torch.tensor(_SECTORS, device=hsv.device)[sector.to(torch.int64).remainder_(6)]  # (..., H, W, 3) b, g, r
    rgb = torch.gather(tab, -3, order.flip(-1).movedim(-1, -3))                               # (..., 3, H, W) r, g, b
    return (rgb * 255.0).clamp_(0, 255).to(torch.uint8)


def convert_uint8(x: torch.Tensor, *, alpha: torch.Tensor | float = 1.0,
                  beta: torch.Tensor | float = 0.0) -> torch.Tensor:
    """MMSeg's ``convert``: ``clip(x.float32 * alpha + beta, 0, 255).astype(uint8)`` (float32 math, truncation).

    ``alpha`` / ``beta``: numbers, or float32 tensors broadcasting against ``x`` (per-image values).
    """
    return (x.to(torch.float32) * alpha + beta).clamp_(0, 255).to(torch.uint8)


def _per_image(values: list[float | None], image: torch.Tensor, neutral: float) -> torch.Tensor:
    """float32 (B, 1, 1, 1) of ``values`` (``neutral`` for None), as float32 numbers (numpy's float32 math)."""
    return torch.tensor([neutral if x is None else x for x in values], dtype=torch.float32,
                        device=image.device).view(-1, 1, 1, 1)


def _on(images: torch.Tensor, chosen: list[bool], step) -> torch.Tensor:
    """``step`` applied to the chosen images of the batch (B, 3, H, W), the others kept."""
    index = [i for i, c in enumerate(chosen) if c]
    if not index:
        return images
    if len(index) == len(chosen):
        return step(images, index)
    images = images.clone()
    images[index] = step(images[index], index)
    return images


def _contrast(images: torch.Tensor, draws: list[PhotometricDraws], first: bool) -> torch.Tensor:
    chosen = [d.contrast is not None and d.contrast_first == first for d in draws]
    alpha = _per_image([d.contrast for d in draws], images, 1.0)
    return _on(images, chosen, lambda x, i: convert_uint8(x, alpha=alpha[i]))


def _saturation(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv8(x)
    s = (hsv[:, 1:2].to(torch.float32) * alpha).clamp_(0, 255).to(torch.int32)
    return hsv8_to_rgb(torch.cat((hsv[:, :1], s, hsv[:, 2:]), dim=1))


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv8(x)
    h = torch.remainder(hsv[:, :1] + shift, 180)
    return hsv8_to_rgb(torch.cat((h, hsv[:, 1:]), dim=1))


def photometric_distortion(image: torch.Tensor, draws: PhotometricDraws | list[PhotometricDraws]) -> torch.Tensor:
    """uint8 RGB (3, H, W) with one :class:`PhotometricDraws`, or (B, 3, H, W) with a list of B,
    -> uint8 of the same shape, distorted as MMSeg's ``PhotoMetricDistortion`` (module docstring)."""
    single = image.ndim == 3
    if image.dtype != torch.uint8 or image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"image must be uint8 (3, H, W) or (B, 3, H, W), got {image.dtype} {tuple(image.shape)}")
    draws = [draws] if isinstance(draws, PhotometricDraws) else list(draws)
    x = image.unsqueeze(0) if single else image
    if len(draws) != x.shape[0]:
        raise ValueError(f"photometric draws: expected one per image ({x.shape[0]}), got {len(draws)}")
    beta = _per_image([d.brightness for d in draws], x, 0.0)
    x = _on(x, [d.brightness is not None for d in draws], lambda y, i: convert_uint8(y, beta=beta[i]))
    x = _contrast(x, draws, first=True)
    alpha = _per_image([d.saturation for d in draws], x, 1.0)
    x = _on(x, [d.saturation is not None for d in draws], lambda y, i: _saturation(y, alpha[i]))
    shift = torch.tensor([d.hue or 0 for d in draws], dtype=torch.int32, device=x.device).view(-1, 1, 1, 1)
    x = _on(x, [d.hue is not None for d in draws], lambda y, i: _hue(y, shift[i]))
    x = _contrast(x, draws, first=False)
    return x[0] if single else x


# ---------------------------------------------------------------------- the CPU path: cv2 on HWC arrays
_CV2_BLOCK = 64  # OpenCV's HSV2BGR truncates in SIMD blocks of 4 vectors (64 pixels with AVX-512, fewer below)


@functools.cache
def cv2_hsv_matches() -> bool:
    """Whether this machine's ``cv2.cvtColor(HSV2RGB)`` equals :func:`hsv8_to_rgb` on rows of 1024 pixels
    (probed once per process on 256 x 1024 random HSV triples; False e.g. on a CPU without FMA)."""
    g = torch.Generator().manual_seed(0)
    hsv = torch.stack((torch.randint(0, 180, (256, 1024), generator=g), torch.randint(0, 256, (256, 1024), generator=g),
                       torch.randint(0, 256, (256, 1024), generator=g))).to(torch.int32)
    ours = hsv8_to_rgb(hsv).permute(1, 2, 0).numpy()
    return bool(np.array_equal(cv2.cvtColor(hsv.permute(1, 2, 0).to(torch.uint8).numpy(), cv2.COLOR_HSV2RGB), ours))


def _lut(alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """:func:`convert_uint8` of every uint8 value, as a (256,) table."""
    return convert_uint8(torch.arange(256, dtype=torch.uint8), alpha=float(np.float32(alpha)),
                         beta=float(np.float32(beta))).numpy()


def _hsv_to_rgb_hwc(hsv: np.ndarray) -> np.ndarray:
    """uint8 HSV (H, W, 3) -> RGB: cv2 where it is bit-identical to :func:`hsv8_to_rgb` (rows a multiple of
    64 pixels, and :func:`cv2_hsv_matches`), else :func:`hsv8_to_rgb`."""
    if hsv.shape[1] % _CV2_BLOCK == 0 and cv2_hsv_matches():
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return hsv8_to_rgb(torch.from_numpy(hsv).permute(2, 0, 1).to(torch.int32)).permute(1, 2, 0).numpy()


def photometric_distortion_hwc(image: np.ndarray, draws: PhotometricDraws) -> np.ndarray:
    """:func:`photometric_distortion` of one uint8 RGB (H, W, 3) numpy image on the CPU, with OpenCV and tables:
    brightness and contrast as ``cv2.LUT`` of :func:`convert_uint8`'s values, HSV by ``cv2.cvtColor`` (its 8-bit
    RGB2HSV is :func:`rgb_to_hsv8`; HSV2RGB see :func:`_hsv_to_rgb_hwc`). Bit-identical to the tensor version."""
    d = draws
    if d.brightness is not None:
        image = cv2.LUT(image, _lut(beta=d.brightness))
    if d.contrast_first and d.contrast is not None:
        image = cv2.LUT(image, _lut(alpha=d.contrast))
    if d.saturation is not None:
        hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = _lut(alpha=d.saturation)[hsv[:, :, 1]]
        image = _hsv_to_rgb_hwc(hsv)
    if d.hue is not None:
        hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = ((np.arange(256) + d.hue) % 180).astype(np.uint8)[hsv[:, :, 0]]
        image = _hsv_to_rgb_hwc(hsv)
    if not d.contrast_first and d.contrast is not None:
        image = cv2.LUT(image, _lut(alpha=d.contrast))
    return image
