"""Pictures for the notebooks: label colours, heat maps, labels over images, training curves.

Every function takes numpy arrays, tensors, DataFrames or dicts handed to it and returns
uint8 RGB arrays (H, W, 3) or matplotlib figures; nothing here reads run files or
configuration, and nothing writes files except :func:`save_png`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize
from matplotlib.patches import Patch
from PIL import Image

from aiblib.data import CLASSES, IGNORE_INDEX, NUM_CLASSES, PALETTE, denormalize

__all__ = [
    "to_numpy", "colorize", "heatmap", "blend_labels", "denormalize_image",
    "save_png", "legend_handles", "show_images", "plot_training",
    "class_frequencies", "MapStyle", "MAP_STYLES", "MAP_NAMES", "map_values", "style_rgb", "add_colorbar",
    "add_class_legend", "prediction_figure", "uncertainty_figure", "compare_figure",
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
    """Loss terms, learning rate, mu statistics (training batches; the validation's selectivity and noise where
    logged) and validation mIoU of a run, from its log
    tables (``aiblib.storage.runlog.read_log(run_dir, "train")`` and ``"val"``); returns the figure
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
        for key, label in (("mu_spatial_std", "val: selectivity (spatial std of mu)"), ("std_mean", "val: noise (std)")):
            if val_log is not None and f"attention/{key}" in val_log:
                ax.plot(val_log["iteration"], val_log[f"attention/{key}"], marker="o", linestyle=":", label=label)
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


def class_frequencies(summary: pd.DataFrame, *, split: str = "train") -> pd.DataFrame:
    """Long table (dataset, class, percent) of the class pixel fractions in a
    :func:`aiblib.tools.preparation.prepare` summary, for one split (percent of labelled pixels)."""
    rows = summary[summary["split"] == split]
    long = rows.melt(id_vars="dataset", value_vars=list(CLASSES), var_name="class", value_name="fraction")
    long["percent"] = 100.0 * long["fraction"]
    return long[["dataset", "class", "percent"]]


# ----------------------------------------------------------------------
# Attention and uncertainty maps: one fixed, stated scale per kind of map


@dataclass(frozen=True)
class MapStyle:
    """How one kind of map is drawn: a colour map on a fixed scale, stated by ``label``."""

    title: str
    label: str
    cmap: str
    vmin: float
    vmax: float
    log: bool = False

    def norm(self) -> Normalize:
        return LogNorm(self.vmin, self.vmax, clip=True) if self.log else Normalize(self.vmin, self.vmax, clip=True)


LN_K = math.log(NUM_CLASSES)
MAP_STYLES: dict[str, MapStyle] = {
    "mu": MapStyle("attention mu", "attention mean mu (probability, 0 to 1)", "viridis", 0.0, 1.0),
    "mask": MapStyle("sampled mask", "sampled mask m = mu + eps * std (0 to 1)", "viridis", 0.0, 1.0),
    "spread": MapStyle("mask spread", "mask spread: max - min over the samples (0 to 0.1)", "cividis", 0.0, 0.1),
    "entropy": MapStyle("predictive entropy", f"predictive entropy (nats, 0 to ln {NUM_CLASSES} = {LN_K:.2f})",
                        "magma", 0.0, LN_K),
    "mi": MapStyle("mutual information", f"mutual information (nats, log scale 1e-6 to ln {NUM_CLASSES} = {LN_K:.2f})",
                   "inferno", 1e-6, LN_K, log=True),
}
# what the browser and the figures call each map -> its key ("pred" is the class map)
MAP_NAMES: dict[str, str] = {"prediction": "pred", "entropy": "entropy", "mutual information": "mi",
                             "attention mu": "mu", "sampled mask": "mask", "mask spread": "spread"}


def map_values(maps: dict, key: str) -> np.ndarray | None:
    """Map ``key`` (a :data:`MAP_NAMES` value) of one model's :func:`aiblib.evaluation.inference.image_maps` result;
    None when the model has none (a baseline has no attention)."""
    masks = maps.get("masks")
    if key == "mask":
        return None if masks is None else masks[0]
    if key == "spread":
        return None if masks is None else masks.max(0) - masks.min(0)
    return maps.get(key)


def style_rgb(values: Any, style: MapStyle) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 on the style's fixed scale (values outside it are clipped)."""
    values = np.clip(to_numpy(values).astype(np.float64), style.vmin, style.vmax)
    rgb = matplotlib.colormaps[style.cmap](style.norm()(values))[..., :3]
    return (rgb * 255 + 0.5).astype(np.uint8)


def _blend(image: np.ndarray, picture: np.ndarray, opacity: float) -> np.ndarray:
    picture = _resize_rgb(picture, image.shape[:2], nearest=False)
    return (image.astype(np.float32) * (1 - opacity) + picture.astype(np.float32) * opacity + 0.5).astype(np.uint8)


def add_colorbar(fig, axes, style: MapStyle):
    """A horizontal colourbar of ``style``'s fixed scale below ``axes`` (one axis or several), labelled with it."""
    bar = fig.colorbar(ScalarMappable(style.norm(), style.cmap), ax=axes, orientation="horizontal", fraction=0.08,
                       pad=0.03, aspect=30)
    bar.set_label(style.label, fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return bar


def add_class_legend(fig, *, ncol: int = 7):
    """The class colours as a legend below the figure (a constrained-layout figure makes room for it)."""
    return fig.legend(handles=legend_handles(), loc="outside lower center", ncol=ncol, fontsize=9, frameon=False,
                      handlelength=1.2, columnspacing=1.0)


def _panel(ax, picture: np.ndarray, title: str, note: str = "") -> None:
    ax.imshow(picture)
    ax.set_title(title, fontsize=11)
    ax.axis("off")
    if note:
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="white",
                bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"})


def prediction_figure(image: Any, label: Any, baseline: dict, aibr: dict, *, title: str = ""):
    """Image, label, baseline and AIBR predictions (2 x 2) with the class legend; readable at notebook width."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.2), layout="constrained")
    _panel(axes[0, 0], denormalize_image(image), "image")
    _panel(axes[0, 1], colorize(label), "label (black: ignored)")
    _panel(axes[1, 0], colorize(baseline["pred"]), "baseline prediction")
    _panel(axes[1, 1], colorize(aibr["pred"]), "AIBR prediction")
    add_class_legend(fig)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def uncertainty_figure(image: Any, baseline: dict, aibr: dict, *, title: str = "", opacity: float = 0.65):
    """Entropy of both models, AIBR's mutual information and attention (mu, a sampled mask, the mask
    spread), 3 x 2 panels, each with a colourbar of its fixed scale (:data:`MAP_STYLES`)."""
    img = denormalize_image(image)
    fig, axes = plt.subplots(3, 2, figsize=(10, 9.4), layout="constrained")
    panels = [("baseline", baseline, "entropy", axes[0, 0]), ("AIBR", aibr, "entropy", axes[0, 1]),
              ("AIBR", aibr, "mi", axes[1, 0]), ("AIBR", aibr, "mu", axes[1, 1]),
              ("AIBR", aibr, "mask", axes[2, 0]), ("AIBR", aibr, "spread", axes[2, 1])]
    for model, maps, key, ax in panels:
        style, values = MAP_STYLES[key], map_values(maps, key)
        if values is None:
            _panel(ax, img, f"{model} {style.title}", "no attention")
            continue
        picture = style_rgb(values, style)
        _panel(ax, _blend(img, picture, opacity) if key == "mu" else picture,
               f"{model} {style.title}" + (" over the image" if key == "mu" else ""))
        if key != "entropy":
            add_colorbar(fig, ax, style)
    add_colorbar(fig, axes[0, :], MAP_STYLES["entropy"])  # one scale for both models' entropy
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def compare_figure(image: Any, baseline: dict, aibr: dict, name: str, *, opacity: float = 0.6, title: str = ""):
    """One map (a :data:`MAP_NAMES` key, e.g. "entropy") of the baseline and of AIBR side by side over the
    image at ``opacity``, with the colourbar of its fixed scale, or the class legend for "prediction"."""
    img = denormalize_image(image)
    key = MAP_NAMES[name]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    for ax, (model, maps) in zip(axes, (("baseline", baseline), ("AIBR", aibr))):
        if key == "pred":
            _panel(ax, blend_labels(img, maps["pred"], alpha=opacity), f"{model}: prediction")
            continue
        values = map_values(maps, key)
        if values is None:
            _panel(ax, img, f"{model}: {name}", "no attention in this model")
        else:
            _panel(ax, _blend(img, style_rgb(values, MAP_STYLES[key]), opacity),
                   f"{model}: {name} (max {float(np.max(values)):.2g})")
    if key == "pred":
        add_class_legend(fig)
    else:
        add_colorbar(fig, list(axes), MAP_STYLES[key])
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
