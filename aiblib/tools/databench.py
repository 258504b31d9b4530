"""The data rows of ``python -m aiblib bench --data``: the training pipeline's time per image, beside MMSegmentation's.

One synthetic scene of ``size`` (default Cityscapes' 1024x2048: smooth colour regions with noise, a label
of 19 classes in blocks with some 255), encoded once as PNG in memory. Every round draws one image's
augmentation (:class:`aiblib.data.augment.TrainTransform`, seed = round) and runs, one after the other
(so that a machine shared with other work slows all alike):

- ``aiblib``: torchvision.io PNG decoding of image and label, then the train transform (draws; cv2 resize
  of the whole image and the crop; label crop; flip; photometric distortion on uint8 tensors; normalize; pad);
- ``aiblib, augment_on device``: what stays in a worker: decoding and the draws;
- ``MMSeg steps``: ``cv2.imdecode`` (mmcv's cv2 backend), then MMSeg's ``RandomResize`` (cv2.resize
  ``INTER_LINEAR`` image, ``INTER_NEAREST`` label), ``RandomCrop`` (its ``np.unique`` class checks, up to 10
  draws), ``RandomFlip``, ``PhotoMetricDistortion`` (float32 numpy and cv2 HSV) and ``PackSegInputs``' HWC -> CHW,
  written with cv2/numpy as MMSeg does them, with the same size, flip and photometric draws.

Each is also timed without decoding ("after decoding"). Times are means over the rounds, in one thread
(torch and cv2); images/s is per worker process, and the workers for a rate are ``ceil(rate / that)``.
"""

from __future__ import annotations

import math
import time
import warnings

import cv2
import numpy as np
import pandas as pd
import torch
from torchvision.io import decode_png, encode_png

from aiblib.data import PhotometricDraws, train_transform
from aiblib.reporting import markdown_table

__all__ = ["scene", "mmseg_pipeline", "data_rows", "format_data_table"]


def scene(size: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 RGB (3, H, W) image of smooth colour blocks with noise and its uint8 (H, W) label (19 classes, 255)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    blocks = torch.randint(0, 19, (max(h // 64, 1), max(w // 64, 1)), generator=g, dtype=torch.uint8)
    label = torch.nn.functional.interpolate(blocks[None, None].float(), size=size, mode="nearest")[0, 0].to(torch.uint8)
    label[: h // 10] = 255
    palette = torch.randint(0, 256, (256, 3), generator=g, dtype=torch.uint8)
    base = palette[label.long()].permute(2, 0, 1).float()
    noise = torch.randn(3, h, w, generator=g) * 12
    return (base + noise).clamp(0, 255).to(torch.uint8), label


def _mmseg_photometric(img: np.ndarray, d: PhotometricDraws) -> np.ndarray:
    """MMSeg 1.x ``PhotoMetricDistortion.transform`` on uint8 BGR (H, W, 3) with the draws ``d``."""
    def convert(x: np.ndarray, alpha: float = 1, beta: float = 0) -> np.ndarray:
        return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)

    if d.brightness is not None:
        img = convert(img, beta=d.brightness)
    if d.contrast_first and d.contrast is not None:
        img = convert(img, alpha=d.contrast)
    if d.saturation is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 1] = convert(hsv[:, :, 1], alpha=d.saturation)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if d.hue is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + d.hue) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if not d.contrast_first and d.contrast is not None:
        img = convert(img, alpha=d.contrast)
    return img


def _mmseg_crop(seg: np.ndarray, crop: tuple[int, int], rng: np.random.RandomState,
                cat_max_ratio: float = 0.75) -> tuple[int, int, int, int]:
    """MMSeg ``RandomCrop``'s box: drawn again (up to 10 times) while one class covers ``cat_max_ratio`` or more."""
    def draw() -> tuple[int, int, int, int]:
        top = rng.randint(0, max(seg.shape[0] - crop[0], 0) + 1)
        left = rng.randint(0, max(seg.shape[1] - crop[1], 0) + 1)
        return top, left, crop[0], crop[1]

    box = draw()
    for _ in range(10):
        labels, counts = np.unique(seg[box[0]:box[0] + crop[0], box[1]:box[1] + crop[1]], return_counts=True)
        counts = counts[labels != 255]
        if len(counts) > 1 and np.max(counts) / np.sum(counts) < cat_max_ratio:
            break
        box = draw()
    return box


def mmseg_pipeline(img: np.ndarray, seg: np.ndarray, draws, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MMSeg's RandomResize -> RandomCrop -> RandomFlip -> PhotoMetricDistortion -> HWC->CHW on uint8 BGR
    (H, W, 3) and (H, W), with ``draws`` (an :class:`aiblib.data.AugmentDraws`) for the size, flip and
    photometric values; the crop is drawn as MMSeg does (``np.unique`` class checks, RandomState(``seed``)):
    (3, h, w) and (h, w)."""
    h, w = draws.size
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    seg = cv2.resize(seg, (w, h), interpolation=cv2.INTER_NEAREST)
    top, left, ch, cw = _mmseg_crop(seg, draws.box[2:], np.random.RandomState(seed))
    img, seg = img[top:top + ch, left:left + cw], seg[top:top + ch, left:left + cw]
    if draws.flip:
        img, seg = np.flip(img, axis=1), np.flip(seg, axis=1)
    if draws.photometric is not None:
        img = _mmseg_photometric(np.ascontiguousarray(img), draws.photometric)
    return np.ascontiguousarray(img.transpose(2, 0, 1)), np.ascontiguousarray(seg)


def _round(files: tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray], tf, draw_tf, seed: int) -> dict:
    """Seconds of each pipeline for one image (seed ``seed``), with and without decoding."""
    png, png_label, buf, buf_label = files
    out = {}
    t0 = time.perf_counter()
    image, label = decode_png(png), decode_png(png_label)[0]
    t1 = time.perf_counter()
    tf(image, label, generator=torch.Generator().manual_seed(seed))
    t2 = time.perf_counter()
    draws = draw_tf(decode_png(png), decode_png(png_label)[0], generator=torch.Generator().manual_seed(seed))["draws"]
    t3 = time.perf_counter()
    img, seg = cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.imdecode(buf_label, cv2.IMREAD_UNCHANGED)
    t4 = time.perf_counter()
    mmseg_pipeline(img, seg, draws, seed)
    t5 = time.perf_counter()
    out["aiblib"], out["aiblib transform"] = t2 - t0, t2 - t1
    out["aiblib device: worker"] = t3 - t2
    out["mmseg"], out["mmseg transform"] = t5 - t3, t5 - t4
    return out


def data_rows(*, size: tuple[int, int] = (1024, 2048), crop: tuple[int, int] = (512, 1024), rounds: int = 10,
              warmup: int = 1) -> list[dict]:
    """The rows of the data table (module docstring): mean seconds per image of each pipeline over ``rounds``."""
    with warnings.catch_warnings():
        # torchvision 0.29 announces that torchcodec will take over image decoding; it still works
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        return _data_rows(size, crop, rounds, warmup)


def _data_rows(size: tuple[int, int], crop: tuple[int, int], rounds: int, warmup: int) -> list[dict]:
    image, label = scene(size)
    png, png_label = encode_png(image), encode_png(label[None])
    buf, buf_label = np.frombuffer(png.numpy().tobytes(), np.uint8), np.frombuffer(png_label.numpy().tobytes(), np.uint8)
    kwargs = dict(crop_size=crop, base_size=size)
    tf, draw_tf = train_transform(**kwargs), train_transform(**kwargs, draw_only=True)
    for seed in range(warmup):
        _round((png, png_label, buf, buf_label), tf, draw_tf, 10_000 + seed)
    times = [_round((png, png_label, buf, buf_label), tf, draw_tf, seed) for seed in range(rounds)]
    steps = {
        "aiblib": "decode (torchvision.io) + draws + resize + crop + flip + photometric + normalize + pad",
        "mmseg": "decode (cv2.imdecode) + RandomResize + RandomCrop + RandomFlip + PhotoMetricDistortion + CHW",
        "aiblib transform": "the same, after decoding",
        "mmseg transform": "the same, after decoding",
        "aiblib device: worker": "augment_on device: what a worker does (decode + draws)",
    }
    rows = []
    for name, what in steps.items():
        seconds = sum(t[name] for t in times) / len(times)
        rows.append({"pipeline": name, "steps": what, "size": f"{size[0]}x{size[1]} -> {crop[0]}x{crop[1]}",
                     "ms": 1000 * seconds, "images_per_s": 1 / seconds,
                     "workers_100": math.ceil(100 * seconds), "workers_400": math.ceil(400 * seconds)})
    return rows


def format_data_table(rows: list[dict]) -> str:
    """:func:`data_rows` as one markdown table."""
    cells = [[r["pipeline"], r["steps"], r["size"], f"{r['ms']:.1f}", f"{r['images_per_s']:.1f}",
              str(r["workers_100"]), str(r["workers_400"])] for r in rows]
    header = ["pipeline", "steps", "image -> crop", "ms / image", "images/s per worker", "workers for 100 images/s",
              "workers for 400 images/s"]
    return markdown_table(pd.DataFrame(cells, columns=header))
