"""A model on your own images: ``python -m aiblib predict CHECKPOINT IMAGE_OR_FOLDER ... --out DIR``.

Each image (a PNG or JPEG file, or every such file of a folder, in name order) is resized to fit inside the
configuration's ``base_size``, as the test pipeline does, and the checkpoint's model (aiblib or MMSegmentation:
its file is read without executing pickled code) predicts the 19 Cityscapes classes with ``test_samples``
attention samples. ``DIR`` gets, at each image's own size::

    <stem>_pred.png     the prediction in the Cityscapes palette
    <stem>_labels.png   the trainIds 0-18, one byte a pixel (what a program reads back)
    <stem>_mu.png       the attention mean mu, 0 black to 1 white (a model with attention only)
    predictions.csv     one row per image: file, height, width, the mean confidence, mu's mean and
                        spread (empty without attention) and the share of the pixels of each class
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from aiblib.config import Config
from aiblib.data import CLASSES, decode_image, test_transform
from aiblib.errors import ConfigError, MissingFile
from aiblib.evaluation import checkpoint_config, image_maps
from aiblib.reporting import viz
from aiblib.storage import load_model

__all__ = ["IMAGE_SUFFIXES", "image_files", "predict_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(paths: list[str | Path]) -> list[Path]:
    """The images named by ``paths``: files as given, folders as their PNG and JPEG files in name order.
    MissingFile naming a path that is not there, ConfigError when nothing is an image."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise MissingFile(f"no image or folder at {path}")
    if not found:
        raise ConfigError(f"no PNG or JPEG image in {', '.join(map(str, paths))}")
    return found


def predict_images(cfg: Config, checkpoint: str | Path, paths: list[str | Path], *, out: str | Path,
                   device: str = "cpu") -> pd.DataFrame:
    """Predict every image of :func:`image_files` (``paths``) with ``checkpoint`` under ``cfg`` (its
    ``base_size``, ``test_samples``, ``mean_mask``, ``eval_seed``; for an MMSegmentation file also its model
    keys) and write the files of the module docstring to ``out``; returns the table of ``predictions.csv``."""
    run = checkpoint_config(cfg, checkpoint)
    model = load_model(checkpoint, **{k: getattr(run, k) for k in ("output_stride", "beta", "test_samples", "mean_mask")})
    model.to(torch.device(device)).eval()
    transform = test_transform(base_size=tuple(run.base_size))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, path in enumerate(image_files(paths)):
        raw = decode_image(path)
        image, _ = transform(raw, torch.zeros(raw.shape[-2:], dtype=torch.int64))
        maps = image_maps(model, image, size=tuple(raw.shape[-2:]), seed=run.eval_seed, index=index)
        rows.append(_write(out, path, maps))
    table = pd.DataFrame(rows)
    table.to_csv(out / "predictions.csv", index=False)
    return table


def _write(out: Path, path: Path, maps: dict) -> dict:
    """One image's PNGs; its row of ``predictions.csv``."""
    pred = maps["pred"].astype(np.uint8)
    viz.save_png(viz.colorize(pred), out / f"{path.stem}_pred.png")
    Image.fromarray(pred).save(out / f"{path.stem}_labels.png")
    row = {"file": str(path), "height": pred.shape[0], "width": pred.shape[1],
           "confidence": float(maps["confidence"].mean()), "mu_mean": None, "mu_spatial_std": None}
    if "mu" in maps:
        viz.save_png((np.clip(maps["mu"], 0, 1) * 255).round().astype(np.uint8), out / f"{path.stem}_mu.png")
        row.update(mu_mean=float(maps["mu"].mean()), mu_spatial_std=float(maps["mu"].std()))
    shares = np.bincount(pred.reshape(-1), minlength=len(CLASSES)) / pred.size
    return {**row, **dict(zip(CLASSES, shares.tolist()))}
