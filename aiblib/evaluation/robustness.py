"""Robustness of the baseline and AIBR runs of one protocol: corruptions, and uncertainty that is scored.

What notebook 05 calls:

- :func:`load_runs`: the runs' last checkpoints (``runs_root/<name>/checkpoints/last.pth``, as 03
  finds them) on the configuration's device, with its test-time switches.
- :func:`score_corruptions`: mIoU on a split under each corruption and severity
  (:mod:`aiblib.data.corruptions`, applied to the uint8 image before the test transform), scored by
  :func:`aiblib.evaluation.evaluate.score_dataset` exactly as evaluation scores (attention noise seeded by
  ``eval_seed`` and the image's index). Rows ``method, protocol, corruption, severity, mIoU``;
  severity 0 is the clean image, repeated on each corruption's rows so that each curve starts there.
- :func:`score_uncertainty`: per domain, the ECE of the max-softmax confidence and the AUROC of each
  uncertainty measure for detecting misclassified pixels (:mod:`aiblib.evaluation.calibration`), from
  each image's :func:`aiblib.evaluation.inference.image_maps` at the label's size: the prediction is the
  one evaluation scores (argmax of the sample-averaged logits, whole image at the test size, one view),
  the confidence its probability under the predictive distribution (the softmax, or the mean of the
  attention samples' softmax); measures: that distribution's entropy, and with several attention
  samples the mutual information between samples and prediction. Rows ``method, protocol, domain,
  measure, ece, auroc`` and the reliability bins.
- :func:`merge_rows`: a protocol's rows into a CSV that holds every protocol's, replacing that
  protocol's earlier rows (a rerun does not duplicate them).

Only the first ``max_images`` images of a split are scored (0: all of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Subset

from aiblib.config import Config, process_group, resolve_precision, torch_settings
from aiblib.data import build_dataset, test_transform
from aiblib.data.corruptions import CorruptedDataset, check_corruptions
from aiblib.errors import ConfigError, MissingFile
from aiblib.evaluation.calibration import (
    expected_calibration_error,
    misclassification_auroc,
    pixel_sample,
    reliability_bins,
)
from aiblib.evaluation.evaluate import score_dataset, test_pipeline
from aiblib.evaluation.inference import image_maps
from aiblib.paths import project_path
from aiblib.storage import last_checkpoint, load_model, write_text_atomic

__all__ = ["Runs", "load_runs", "split_target", "first_images", "score_corruptions", "score_uncertainty", "merge_rows", "CORRUPTION_COLUMNS", "UNCERTAINTY_COLUMNS"]

CORRUPTION_COLUMNS = ["method", "protocol", "corruption", "severity", "mIoU"]
UNCERTAINTY_COLUMNS = ["method", "protocol", "domain", "measure", "ece", "auroc"]


@dataclass
class Runs:
    """The models compared (method -> model in eval mode, e.g. ``{"baseline": ..., "AIBR": ...}``) and where they run."""

    cfg: Config
    models: dict[str, nn.Module]
    device: torch.device
    use_bf16: bool


def load_runs(cfg: Config, names: dict[str, str]) -> Runs:
    """``names`` (method -> run name) loaded from ``cfg.runs_root`` with ``cfg.test_samples`` and ``cfg.mean_mask``.

    A missing checkpoint is a FileNotFoundError naming its absolute path.
    """
    with process_group(cfg.device) as proc:
        device = proc.device
    use_bf16, _ = resolve_precision(cfg.amp, cfg.channels_last, device)
    models = {}
    for method, name in names.items():
        path = last_checkpoint(project_path(cfg.runs_root) / name)
        if not path.is_file():
            raise MissingFile(f"no checkpoint for the {method} run {name!r}: {path} does not exist; train it "
                                    f"first (`make run NAME={name}`, or make reproduce)")
        models[method] = load_model(path, test_samples=cfg.test_samples, mean_mask=cfg.mean_mask).to(device).eval()
    return Runs(cfg=cfg, models=models, device=device, use_bf16=use_bf16)


def split_target(target: str) -> tuple[str, str]:
    """``"dataset:split"`` -> ``(dataset, split)``; ValueError (one line) otherwise."""
    dataset, sep, split = target.partition(":")
    if not sep or not dataset or not split or ":" in split:
        raise ConfigError(f"expected 'dataset:split' (e.g. 'cityscapes:val'), got {target!r}")
    return dataset, split


def first_images(total: int, max_images: int) -> list[int]:
    """Indices of the images scored: the first ``max_images`` of ``total`` (all when ``max_images`` <= 0)."""
    if max_images < 0:
        raise ConfigError(f"max_images must be >= 0 (0: every image), got {max_images}")
    return list(range(total if max_images == 0 else min(total, max_images)))


def score_corruptions(runs: Runs, *, protocol: str, domain: str, corruptions: list[str], severities: list[int],
                      max_images: int = 0, log: Callable[[str], None] = print) -> pd.DataFrame:
    """mIoU (%) of every model on ``domain`` ("dataset:split") under each corruption and severity.

    Returns the rows (:data:`CORRUPTION_COLUMNS`): per method, per corruption, severity 0 (the
    clean score) then each of ``severities`` (0 among them is ignored); ``log`` gets one line per corruption.
    """
    check_corruptions(corruptions, severities)
    cfg = runs.cfg
    dataset, split = split_target(domain)
    raw = build_dataset(dataset, cfg.data_root, split, camvid_root=cfg.camvid_root)
    raw = Subset(raw, first_images(len(raw), max_images))
    transform = test_pipeline(cfg)  # score_dataset applies cfg's TTA, which needs the original size
    levels = sorted({s for s in severities if s > 0})

    def miou(corruption: str, severity: int) -> dict[str, float]:
        data = CorruptedDataset(raw, corruption, severity, transform, seed=cfg.eval_seed)
        return {method: score_dataset(model, data, cfg=cfg, device=runs.device, dataset_name=dataset,
                                      use_bf16=runs.use_bf16)["metrics"]["mIoU"]
                for method, model in runs.models.items()}

    rows = []
    with torch_settings(threads=cfg.threads):
        clean = miou(corruptions[0], 0)
        log(f"{domain}, {len(raw)} images, clean: " + ", ".join(f"{m} {v:.2f}" for m, v in clean.items()))
        for corruption in corruptions:
            scores = {0: clean, **{s: miou(corruption, s) for s in levels}}
            for method in runs.models:
                rows += [{"method": method, "protocol": protocol, "corruption": corruption, "severity": s,
                          "mIoU": scores[s][method]} for s in scores]
            log(f"{corruption:>18}: " + "  ".join(
                f"{m} " + " ".join(f"{scores[s][m]:.1f}" for s in levels) for m in runs.models))
    return pd.DataFrame(rows, columns=CORRUPTION_COLUMNS)


def _pixels(maps: dict[str, np.ndarray], label: torch.Tensor, keep: torch.Tensor) -> dict[str, torch.Tensor]:
    """The kept pixels (M,) of one image's :func:`~aiblib.evaluation.inference.image_maps`: ``confidence``,
    ``correct`` and the measures: ``entropy``, and ``mutual_information`` with several attention samples."""
    flat = {key: torch.from_numpy(maps[key]).reshape(-1)[keep] for key in ("pred", "confidence", "entropy", "mi")}
    out = {"confidence": flat["confidence"], "correct": flat["pred"] == label.reshape(-1)[keep],
           "entropy": flat["entropy"]}
    if len(maps.get("masks", ())) > 1:
        out["mutual_information"] = flat["mi"]
    return out


def _domain_pixels(runs: Runs, domain: str, *, max_images: int, pixels_per_image: int) -> dict[str, dict]:
    """method -> pooled kept pixels (see :func:`_pixels`) of the first ``max_images`` images of ``domain``."""
    cfg = runs.cfg
    dataset, split = split_target(domain)
    data = build_dataset(dataset, cfg.data_root, split, test_transform(base_size=tuple(cfg.base_size)),
                         camvid_root=cfg.camvid_root)
    parts: dict[str, list[dict]] = {method: [] for method in runs.models}
    for index in first_images(len(data), max_images):
        item = data[index]
        label = torch.as_tensor(item["label"]).long()
        keep = pixel_sample(label, pixels_per_image, seed=cfg.eval_seed, index=index)
        for method, model in runs.models.items():
            maps = image_maps(model, item["image"], size=tuple(label.shape), seed=cfg.eval_seed, index=index,
                              use_bf16=runs.use_bf16)
            parts[method].append(_pixels(maps, label, keep))
    return {method: {k: torch.cat([p[k] for p in pieces]) for k in pieces[0]} for method, pieces in parts.items() if pieces}


def score_uncertainty(runs: Runs, *, protocol: str, domains: list[str], max_images: int = 0,
                      pixels_per_image: int = 0, bins: int = 15) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ECE and misclassification AUROC per method, domain and measure, and the reliability bins.

    ``pixels_per_image``: labelled pixels drawn per image (seeded, :func:`~aiblib.evaluation.calibration.pixel_sample`;
    0: all). Returns the rows (:data:`UNCERTAINTY_COLUMNS`; ECE, a property of the confidence, is the
    same on each measure's row of a method and domain) and the bins (``method, protocol, domain,
    lower, upper, count, confidence, accuracy``).
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    rows, diagram = [], []
    with torch_settings(threads=runs.cfg.threads):
        for domain in domains:
            pooled = _domain_pixels(runs, domain, max_images=max_images, pixels_per_image=pixels_per_image)
            for method, px in pooled.items():
                key = {"method": method, "protocol": protocol, "domain": domain}
                ece = expected_calibration_error(px["confidence"], px["correct"], bins)
                rows += [{**key, "measure": measure, "ece": ece, "auroc": misclassification_auroc(px[measure], ~px["correct"])}
                         for measure in px if measure not in ("confidence", "correct")]
                table = pd.DataFrame({k: v.numpy() for k, v in reliability_bins(px["confidence"], px["correct"], bins).items()})
                diagram.append(table.assign(**key))
    bins_table = pd.concat(diagram, ignore_index=True) if diagram else pd.DataFrame()
    return pd.DataFrame(rows, columns=UNCERTAINTY_COLUMNS), bins_table


def merge_rows(path: str | Path, rows: pd.DataFrame, *, protocol: str) -> pd.DataFrame:
    """Write ``rows`` (one protocol's) into the CSV ``path``, replacing the rows ``path`` held for ``protocol``.

    The other protocols' rows are kept, before or after by protocol name. Returns the whole table.
    A file with other columns is a ValueError naming it (move it away).
    """
    path = Path(path)
    table = rows
    if path.is_file():
        old = pd.read_csv(path, dtype={"protocol": str})
        if list(old.columns) != list(rows.columns):
            raise ConfigError(f"{path} has the columns {list(old.columns)}, not {list(rows.columns)}: move it away")
        old = old[old["protocol"] != protocol]
        if len(old):
            table = pd.concat([old, rows], ignore_index=True)
    table = table.sort_values("protocol", kind="stable", ignore_index=True)
    write_text_atomic(path, table.to_csv(index=False, float_format="%.6g"))
    return table
