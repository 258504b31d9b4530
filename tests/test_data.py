"""Loaders: pairing by name, layouts, and every bad-input error naming its file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aiblib.data import DATASETS, DataError, build_dataset, decode_label
from aiblib.data.synth import generate


def _bdd(root: Path, names: dict[str, int], split: str = "val", size=(24, 32)) -> None:
    """A tiny BDD100K layout: image filled with value v, label filled with class v % 19."""
    images = root / "bdd100k" / "images" / "10k" / split
    labels = root / "bdd100k" / "labels" / "sem_seg" / "masks" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    h, w = size
    for name, v in names.items():
        Image.fromarray(np.full((h, w, 3), v * 10, np.uint8)).save(images / f"{name}.jpg", quality=100)
        Image.fromarray(np.full((h, w), v % 19, np.uint8)).save(labels / f"{name}.png")


def test_pairs_are_matched_by_name(tmp_path: Path) -> None:
    _bdd(tmp_path, {"b": 1, "a": 2, "c": 3})
    ds = build_dataset("bdd100k", tmp_path, "val")
    assert len(ds) == 3
    for image_path, label_path in ds.files:
        assert image_path.stem == label_path.stem
    item = ds[0]
    assert item["name"] == "a" and item["image"].dtype == torch.uint8 and item["image"].shape == (3, 24, 32)
    assert item["label"].dtype == torch.uint8 and item["label"].shape == (24, 32)
    assert int(item["label"][0, 0]) == 2 and abs(int(item["image"][0, 0, 0]) - 20) <= 2


def test_unpaired_files_raise_or_warn_naming_them(tmp_path: Path) -> None:
    _bdd(tmp_path, {"a": 1, "b": 2})
    extra = tmp_path / "bdd100k" / "labels" / "sem_seg" / "masks" / "val" / "orphan.png"
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(extra)
    (tmp_path / "bdd100k" / "images" / "10k" / "val" / "b.jpg").unlink()
    with pytest.raises(DataError) as err:
        build_dataset("bdd100k", tmp_path, "val")
    assert "orphan.png" in str(err.value) and "b.png" in str(err.value)
    with pytest.warns(UserWarning, match="orphan.png"):
        ds = build_dataset("bdd100k", tmp_path, "val", on_error="skip")
    assert [p.name for p, _ in ds.files] == ["a.jpg"]


def test_missing_folder_shows_layout_and_path(tmp_path: Path) -> None:
    for name in ("cityscapes", "bdd100k", "nightcity"):
        with pytest.raises(DataError) as err:
            build_dataset(name, tmp_path, "train")
        assert str(tmp_path) in str(err.value) and "Expected layout" in str(err.value)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("kitti", tmp_path, "train")


@pytest.mark.parametrize("problem", ["unreadable", "size", "values"])
def test_bad_files_name_the_file(tmp_path: Path, problem: str) -> None:
    _bdd(tmp_path, {"a": 1, "b": 2})
    image = tmp_path / "bdd100k" / "images" / "10k" / "val" / "a.jpg"
    label = tmp_path / "bdd100k" / "labels" / "sem_seg" / "masks" / "val" / "a.png"
    if problem == "unreadable":
        image.write_bytes(b"not a jpeg at all")
        culprit = image
    elif problem == "size":
        Image.fromarray(np.zeros((20, 32), np.uint8)).save(label)
        culprit = label
    else:
        Image.fromarray(np.full((24, 32), 33, np.uint8)).save(label)  # a labelId, not a trainId
        culprit = label
    ds = build_dataset("bdd100k", tmp_path, "val")
    with pytest.raises(DataError) as err:
        ds[0]
    assert str(culprit) in str(err.value)
    ds = build_dataset("bdd100k", tmp_path, "val", on_error="skip")
    with pytest.warns(UserWarning, match="a.jpg"):
        item = ds[0]
    assert item["name"] == "b"  # the next good item, with a warning: nothing silently dropped


def test_palette_label_gives_indices(tmp_path: Path) -> None:
    im = Image.fromarray(np.array([[0, 5], [18, 255]], np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
    im.save(tmp_path / "p.png")
    assert decode_label(tmp_path / "p.png").tolist() == [[0, 5], [18, 255]]
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png"):
        decode_label(tmp_path / "rgb.png")


def test_cityscapes_without_train_ids_says_run_prepare(tmp_path: Path) -> None:
    generate(tmp_path, n_train=1, n_val=0, size=(32, 64), domains=("cityscapes",), workers=1)
    with pytest.raises(DataError, match="aiblib prepare"):
        build_dataset("cityscapes", tmp_path, "train")


def test_synthetic_layouts_load(synthetic_root: Path) -> None:
    sizes = {"train": 4, "val": 2}
    for name in [d for d in DATASETS if d != "camvid"]:  # CamVid has a root of its own: test_camvid.py
        for split, n in sizes.items():
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                ds = build_dataset(name, synthetic_root, split)
            assert len(ds) == n * (2 if "+" in name else 1)
            item = ds[len(ds) - 1]
            assert item["image"].shape == (3, 64, 128) and item["label"].shape == (64, 128)
            values = set(torch.unique(item["label"]).tolist())
            assert values <= set(range(19)) | {255}
    both = build_dataset("cityscapes+nightcity", synthetic_root, "train")
    assert both[0]["name"].startswith(("polyburg", "gridford", "vectorstadt")) and both[len(both) - 1]["name"].startswith("synthnight")
