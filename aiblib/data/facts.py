"""The facts every part of aiblib shares about the data: classes, colours, the ignore index,
normalization, dataset names and folders, where images and labels lie, the label values
allowed, and the error a bad file raises. Each fact has its home here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "train", "motorcycle", "bicycle",
)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
NUM_CLASSES = 19
IGNORE_INDEX = 255
MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
STD: tuple[float, float, float] = (58.395, 57.12, 57.375)
DATASETS: tuple[str, ...] = ("cityscapes", "bdd100k", "nightcity", "cityscapes+nightcity")
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Dataset name -> its folder under a data root (real and synthetic roots alike).
FOLDERS: dict[str, str] = {"cityscapes": "cityscapes", "bdd100k": "bdd100k", "nightcity": "nightcity-fine"}

# True for the values a trainId label may hold (0-18 and 255).
VALID_LABEL_VALUES = torch.zeros(256, dtype=torch.bool)
VALID_LABEL_VALUES[:NUM_CLASSES] = True
VALID_LABEL_VALUES[IGNORE_INDEX] = True


class DataError(ValueError):
    """A problem with a dataset file or folder; the message names the path."""


@dataclass(frozen=True)
class Layout:
    """Where one dataset keeps a split's images and labels under the data root.

    ``images`` and ``labels`` are folders relative to the root with ``{split}`` in them. A
    file is an image (label) when its name ends with one of ``image_suffixes``
    (``label_suffix``); its key, which pairs it, is its path below the folder without that
    ending. ``nested``: the files lie in sub-folders (Cityscapes cities).
    """

    images: str
    labels: str
    image_suffixes: tuple[str, ...]
    label_suffix: str
    nested: bool

    def image_dir(self, split: str) -> str:
        return self.images.format(split=split)

    def label_dir(self, split: str) -> str:
        return self.labels.format(split=split)


DIRS: dict[str, Layout] = {
    "cityscapes": Layout(
        images=f"{FOLDERS['cityscapes']}/leftImg8bit/{{split}}",
        labels=f"{FOLDERS['cityscapes']}/gtFine/{{split}}",
        image_suffixes=("_leftImg8bit.png",), label_suffix="_gtFine_labelTrainIds.png", nested=True,
    ),
    "bdd100k": Layout(
        images=f"{FOLDERS['bdd100k']}/images/10k/{{split}}",
        labels=f"{FOLDERS['bdd100k']}/labels/sem_seg/masks/{{split}}",
        image_suffixes=(".jpg", ".jpeg", ".png"), label_suffix=".png", nested=False,
    ),
    "nightcity": Layout(
        images=f"{FOLDERS['nightcity']}/{{split}}/img",
        labels=f"{FOLDERS['nightcity']}/{{split}}/lbl",
        image_suffixes=(".png", ".jpg"), label_suffix="_trainIds.png", nested=False,
    ),
}

# Cityscapes' own annotations beside the images' labels (``prepare`` makes the labelTrainIds from them).
CITYSCAPES_POLYGONS = "_gtFine_polygons.json"
CITYSCAPES_LABEL_IDS = "_gtFine_labelIds.png"

_TRAIN_IDS_NOTE = f"(trainIds 0-{NUM_CLASSES - 1}, {IGNORE_INDEX} ignore)"

# The layouts as the error messages show them.
LAYOUTS: dict[str, str] = {
    "cityscapes": (
        f"{DIRS['cityscapes'].image_dir('<split>')}/<city>/<stem>_leftImg8bit.png\n"
        f"{DIRS['cityscapes'].label_dir('<split>')}/<city>/<stem>{DIRS['cityscapes'].label_suffix}"
        "  (run `python -m aiblib prepare --root DATA_ROOT` to make them)"
    ),
    "bdd100k": (
        f"{DIRS['bdd100k'].image_dir('<split>')}/<name>.jpg\n"
        f"{DIRS['bdd100k'].label_dir('<split>')}/<name>{DIRS['bdd100k'].label_suffix}  {_TRAIN_IDS_NOTE}"
    ),
    "nightcity": (
        f"{DIRS['nightcity'].image_dir('<split>')}/<name>.png\n"
        f"{DIRS['nightcity'].label_dir('<split>')}/<name>{DIRS['nightcity'].label_suffix}  {_TRAIN_IDS_NOTE}"
    ),
}
