"""Pictures for the notebooks: label colours, heat maps, overlays, training curves.

Every function takes numpy arrays, tensors, DataFrames or dicts handed to it and returns
uint8 RGB arrays (H, W, 3) or matplotlib figures; nothing here reads run files or
configuration, and nothing writes files except :func:`save_png`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Patch
from PIL import Image

from aiblib.data import CLASSES, IGNORE_INDEX, NUM_CLASSES, PALETTE
from aiblib.data.transforms import denormalize

__all__ = [
    "to_numpy", "colorize", "heatmap", "overlay", "blend_labels", "denormalize_image",
    "save_png", "legend_handles", "show_images", "plot_training", "plot_per_class",
    "class_frequencies", "attention_figure",
]


def to_numpy(x: Any) -> np.ndarray:
    """Tensor or array -> numpy array on the CPU (no copy for numpy input)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def _palette(palette: Sequence[Sequence[int]] | None) -> np.ndarray:
    if palette is None:
        palette = PALETTE
    return np.asarray(palette, dtype=np.uint8).reshape(-1, 3)


def colorize(label: Any, palette: Sequence[Sequence[int]] | None = None, ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 in the Cityscapes palette; 255 (and any
    id outside the palette) gets ``ignore_color``."""
    label = to_numpy(label).astype(np.int64)
    if label.ndim != 2:
        raise ValueError(f"colorize expects an (H, W) label map, got shape {label.shape}")
    colors = _palette(palette)
    table = np.tile(np.asarray(ignore_color, dtype=np.uint8), (256, 1))
    table[: len(colors)] = colors
    return table[np.clip(label, 0, 255)]


def heatmap(values: Any, *, vmin: float | None = 0.0, vmax: float | None = 1.0, cmap: str = "magma") -> np.ndarray:
    """(H, W) floats -> (H, W, 3) uint8 through a matplotlib colormap; ``vmin``/``vmax``
    None means the map's own min / max. NaN is drawn black."""
    values = to_numpy(values).astype(np.float32)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    lo = np.nanmin(values) if vmin is None else vmin
    hi = np.nanmax(values) if vmax is None else vmax
    scaled = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    rgb = matplotlib.colormaps[cmap](np.nan_to_num(scaled, nan=0.0))[..., :3]
    rgb[np.isnan(values)] = 0
    return (rgb * 255 + 0.5).astype(np.uint8)


def denormalize_image(image: Any) -> np.ndarray:
    """A model input (3, H, W) normalized float, or a uint8 (3, H, W) / (H, W, 3) image
    -> (H, W, 3) uint8 RGB (a normalized input through :func:`aiblib.data.transforms.denormalize`)."""
    arr = to_numpy(image)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3-D image, got shape {arr.shape}")
    if arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    chw = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return denormalize(chw).permute(1, 2, 0).numpy()


def _resize_rgb(rgb: np.ndarray, size: tuple[int, int], *, nearest: bool) -> np.ndarray:
    if rgb.shape[:2] == tuple(size):
        return rgb
    resample = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), resample))


def overlay(image: Any, values: Any, *, alpha: float = 0.5, vmin: float | None = 0.0, vmax: float | None = 1.0,
            cmap: str = "magma") -> np.ndarray:
    """Blend a heat map of ``values`` (h, w) over ``image`` (H, W, 3 uint8 or a model
    input); the map is resized (bilinear) to the image size. Returns (H, W, 3) uint8."""
    img = denormalize_image(image)
    heat = _resize_rgb(heatmap(values, vmin=vmin, vmax=vmax, cmap=cmap), img.shape[:2], nearest=False)
    return (img.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha + 0.5).astype(np.uint8)


def blend_labels(image: Any, label: Any, *, alpha: float = 0.5, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Class colours over an image (ignored pixels keep the image); label resized nearest."""
    img = denormalize_image(image)
    lab = to_numpy(label).astype(np.int64)
    color = _resize_rgb(colorize(lab, palette), img.shape[:2], nearest=True)
    mask = _resize_rgb(np.repeat(((lab != IGNORE_INDEX) * 255).astype(np.uint8)[..., None], 3, 2), img.shape[:2], nearest=True)
    out = img.astype(np.float32)
    keep = mask[..., 0] > 0
    out[keep] = out[keep] * (1 - alpha) + color[keep].astype(np.float32) * alpha
    return (out + 0.5).astype(np.uint8)


def save_png(rgb_or_gray: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 (H, W, 3) or (H, W) array as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb_or_gray)).save(path)
    return path


def legend_handles(class_names: Sequence[str] | None = None, palette: Sequence[Sequence[int]] | None = None) -> list:
    """matplotlib patches for a class legend: ``ax.legend(handles=legend_handles())``."""
    if class_names is None:
        class_names = CLASSES
    colors = _palette(palette)
    return [Patch(color=colors[i] / 255.0, label=name) for i, name in enumerate(class_names)]


def show_images(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, *, ncols: int | None = None,
                size: float = 3.0, suptitle: str | None = None):
    """A grid of RGB / grayscale arrays; returns the figure."""
    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    first = to_numpy(images[0])
    aspect = first.shape[0] / first.shape[1]
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * aspect * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(to_numpy(img), cmap=None if to_numpy(img).ndim == 3 else "gray")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_training(train_log: pd.DataFrame, val_log: pd.DataFrame | None = None, *, title: str = "",
                  keys: Sequence[str] = ("loss", "loss_ce", "loss_aux", "loss_kl")):
    """Loss terms, learning rate, mu statistics and validation mIoU of a run, from its log
    tables (``aiblib.runlog.read_log(run_dir, "train")`` and ``"val"``); returns the figure
    (2 x 2 panels) titled ``title``."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    for key in keys:
        if key in train_log:
            ax.plot(train_log["iteration"], train_log[key], label=key)
    ax.set_title("loss terms"), ax.set_xlabel("iteration"), ax.legend(fontsize=8)
    ax = axes[0, 1]
    if "lr" in train_log:
        ax.plot(train_log["iteration"], train_log["lr"])
    ax.set_title("learning rate"), ax.set_xlabel("iteration")
    ax = axes[1, 0]
    if "mu_mean" in train_log:
        ax.plot(train_log["iteration"], train_log["mu_mean"], label="mean")
        ax.fill_between(train_log["iteration"], train_log["mu_min"], train_log["mu_max"], alpha=0.25, label="min..max")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no attention", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("attention mu"), ax.set_xlabel("iteration")
    ax = axes[1, 1]
    if val_log is not None and len(val_log):
        ax.plot(val_log["iteration"], val_log["mIoU"], marker="o")
    ax.set_title("validation mIoU (%)"), ax.set_xlabel("iteration")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_per_class(results: dict[str, dict], *, metric: str = "IoU"):
    """Grouped bars of per-class ``metric`` for several evaluations.

    ``results`` maps a label (e.g. a domain) to a metrics dict (the one
    :func:`aiblib.evaluate.evaluate_checkpoint` returns, or its ``metrics.json`` read back).
    Returns the figure.
    """
    classes = [row["class"] for row in next(iter(results.values()))["per_class"]]
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(max(8, len(classes) * 0.6), 4))
    x = np.arange(len(classes))
    for i, (label, item) in enumerate(results.items()):
        values = [np.nan if row[metric] is None else row[metric] for row in item["per_class"]]
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=f"{label} (m{metric} {item['m' + metric]:.1f})")
    ax.set_xticks(x, classes, rotation=60, ha="right")
    ax.set_ylabel(f"{metric} (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def class_frequencies(summary: pd.DataFrame, *, split: str = "train") -> pd.DataFrame:
    """Long table (dataset, class, percent) of the class pixel fractions in a
    :func:`aiblib.prepare.prepare` summary, for one split (percent of labelled pixels)."""
    rows = summary[summary["split"] == split]
    long = rows.melt(id_vars="dataset", value_vars=list(CLASSES), var_name="class", value_name="fraction")
    long["percent"] = 100.0 * long["fraction"]
    return long[["dataset", "class", "percent"]]


def attention_figure(image: Any, label: Any, baseline: dict, aibr: dict, *, title: str = "", num_classes: int = NUM_CLASSES):
    """Baseline vs AIBR on one image, from two :func:`aiblib.inference.image_maps` results.

    Row 1: image, label, baseline prediction, AIBR prediction, AIBR ``mu`` over the image.
    Row 2: one sampled mask, the spread of the masks (max - min over samples), predictive
    entropy of the baseline and of AIBR (0..ln K), AIBR mutual information (scaled to its
    own maximum, printed in the title). ``image`` (3,H,W) uint8 and ``label`` (H,W) at
    the maps' size. Returns the figure.
    """
    ln_k = math.log(num_classes)
    masks = aibr.get("masks")
    mi_max = float(np.max(aibr["mi"]))
    panels = [
        (denormalize_image(image), "image"), (colorize(label), "label"),
        (colorize(baseline["pred"]), "baseline prediction"), (colorize(aibr["pred"]), "AIBR prediction"),
        (overlay(image, aibr["mu"], alpha=0.6, cmap="viridis"), "AIBR attention mu"),
        (heatmap(masks[0], vmin=None, vmax=None, cmap="viridis"), "a sampled mask"),
        (heatmap(masks.max(0) - masks.min(0), vmin=0.0, vmax=None, cmap="magma"), f"mask spread over {len(masks)} samples"),
        (heatmap(baseline["entropy"], vmax=ln_k), "baseline entropy"),
        (heatmap(aibr["entropy"], vmax=ln_k), "AIBR entropy"),
        (heatmap(aibr["mi"], vmin=0.0, vmax=max(mi_max, 1e-12)), f"AIBR mutual information (max {mi_max:.1e} nats)"),
    ]
    fig, axes = plt.subplots(2, 5, figsize=(20, 5.2))
    for ax, (picture, name) in zip(axes.flat, panels):
        ax.imshow(picture)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
