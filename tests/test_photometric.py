"""The photometric distortion against MMSegmentation's arithmetic and OpenCV's 8-bit HSV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from aiblib.data import photometric as P
from aiblib.data.photometric import PhotometricDraws


def test_rgb_to_hsv8_is_opencv_for_every_colour() -> None:
    c = np.arange(256**3, dtype=np.int64)
    bgr = np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    ours = P.rgb_to_hsv8(torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1))
    assert ours.dtype == torch.int32 and ours.shape == (3, 4096, 4096)
    assert np.array_equal(ours.permute(1, 2, 0).numpy(), cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV))


def test_hsv8_to_rgb_is_opencv_for_every_hsv_triple() -> None:
    h, s, v = np.meshgrid(np.arange(180), np.arange(256), np.arange(256), indexing="ij")
    hsv = np.stack([h, s, v], -1).astype(np.uint8).reshape(180 * 256, 256, 3)  # rows of 256: OpenCV's SIMD path
    ours = P.hsv8_to_rgb(torch.from_numpy(hsv).permute(2, 0, 1).to(torch.int32))
    assert ours.dtype == torch.uint8
    assert np.array_equal(ours.permute(1, 2, 0).numpy()[..., ::-1], cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def _mmseg(img: np.ndarray, d: PhotometricDraws) -> np.ndarray:
    """MMSegmentation 1.x ``PhotoMetricDistortion.transform`` on a uint8 BGR (H, W, 3) image with the draws ``d``."""
    def convert(x: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
        x = x.astype(np.float32) * alpha + beta
        return np.clip(x, 0, 255).astype(np.uint8)

    def contrast(x: np.ndarray) -> np.ndarray:
        return convert(x, alpha=d.contrast) if d.contrast is not None else x

    if d.brightness is not None:
        img = convert(img, beta=d.brightness)
    if d.contrast_first:
        img = contrast(img)
    if d.saturation is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 1] = convert(hsv[:, :, 1], alpha=d.saturation)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if d.hue is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + d.hue) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if not d.contrast_first:
        img = contrast(img)
    return img


DRAWS = [
    PhotometricDraws(brightness=-17.3, contrast=1.37, contrast_first=True, saturation=0.61, hue=-18),
    PhotometricDraws(brightness=29.9, contrast=0.52, contrast_first=False, saturation=1.44, hue=17),
    PhotometricDraws(brightness=None, contrast=1.21, contrast_first=False, saturation=None, hue=5),
    PhotometricDraws(brightness=3.5, contrast=None, contrast_first=True, saturation=1.49, hue=None),
    PhotometricDraws(hue=0),
    PhotometricDraws(),
]


def _image(seed: int, h: int = 24, w: int = 512) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("index", range(len(DRAWS)))
def test_photometric_distortion_is_mmsegs_arithmetic(index: int) -> None:
    image = _image(index)
    ours = P.photometric_distortion(image, DRAWS[index])
    bgr = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[..., ::-1])
    ref = _mmseg(bgr, DRAWS[index])[..., ::-1]
    assert ours.dtype == torch.uint8 and ours.shape == image.shape
    assert np.array_equal(ours.permute(1, 2, 0).numpy(), ref)
    if index < 4:
        assert not torch.equal(ours, image)


def test_a_batch_gets_each_images_own_draws() -> None:
    images = torch.stack([_image(10 + i) for i in range(len(DRAWS))])
    out = P.photometric_distortion(images, DRAWS)
    for i, d in enumerate(DRAWS):
        assert torch.equal(out[i], P.photometric_distortion(images[i], d))
    with pytest.raises(ValueError, match="one per image"):
        P.photometric_distortion(images, DRAWS[:2])
    with pytest.raises(ValueError, match="uint8"):
        P.photometric_distortion(images.float(), DRAWS)


def test_draws_follow_mmsegs_probabilities_and_ranges() -> None:
    draws = [P.draw_photometric(torch.Generator().manual_seed(s)) for s in range(400)]
    assert draws[7] == P.draw_photometric(torch.Generator().manual_seed(7))
    for key in ("brightness", "contrast", "saturation", "hue"):
        applied = sum(getattr(d, key) is not None for d in draws)
        assert 150 <= applied <= 250, (key, applied)  # p = 0.5
    assert 150 <= sum(d.contrast_first for d in draws) <= 250
    assert all(-32 <= d.brightness <= 32 for d in draws if d.brightness is not None)
    assert all(0.5 <= d.contrast <= 1.5 for d in draws if d.contrast is not None)
    assert all(0.5 <= d.saturation <= 1.5 for d in draws if d.saturation is not None)
    hues = {d.hue for d in draws if d.hue is not None}
    assert min(hues) == -18 and max(hues) == 17  # randint(-18, 18): 18 excluded


@pytest.mark.parametrize("width", [512, 200])  # 512: cv2's HSV2RGB; 200: the tensor version (cv2 would round its tail)
def test_the_cpu_version_on_hwc_arrays_is_bit_identical(width: int) -> None:
    assert P.cv2_hsv_matches()  # this machine's OpenCV computes HSV2RGB as hsv8_to_rgb
    for i, d in enumerate(DRAWS):
        image = _image(20 + i, w=width)
        hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        out = P.photometric_distortion_hwc(hwc, d)
        assert out.dtype == np.uint8 and out.shape == hwc.shape
        assert np.array_equal(out, P.photometric_distortion(image, d).permute(1, 2, 0).numpy()), d
