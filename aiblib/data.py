"""Datasets: Cityscapes, BDD100K, NightCity-fine and their concatenation (SPEC section 3).

Layouts under a data root (the synthetic root written by ``python -m aiblib synth`` has
the same three folders)::

    cityscapes/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    cityscapes/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png   (made by `prepare`)
    bdd100k/images/10k/<split>/<name>.jpg
    bdd100k/labels/sem_seg/masks/<split>/<name>.png                    (trainIds)
    nightcity-fine/<split>/img/<name>.png
    nightcity-fine/<split>/lbl/<name>_trainIds.png

Images and labels are paired by name. Every problem (missing folder, unpaired file,
unreadable file, size mismatch, label value outside 0-18 and 255) raises
:class:`DataError` naming the file; with ``on_error="skip"`` the file is skipped with a
warning instead (never silently).

``dataset[i]`` is a dict ``{"image", "label", "name"}``. Without a transform the image is
uint8 (3, H, W) RGB and the label uint8 (H, W) trainIds as stored; with a transform, what
the transform returns (see :mod:`aiblib.transforms`: float32 normalized image, int64 label).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, read_file
from torchvision.io import decode_image as _tv_decode_image

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

LAYOUTS: dict[str, str] = {
    "cityscapes": (
        "cityscapes/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png\n"
        "cityscapes/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png"
        "  (run `python -m aiblib prepare --root DATA_ROOT` to make them)"
    ),
    "bdd100k": (
        "bdd100k/images/10k/<split>/<name>.jpg\n"
        "bdd100k/labels/sem_seg/masks/<split>/<name>.png  (trainIds 0-18, 255 ignore)"
    ),
    "nightcity": (
        "nightcity-fine/<split>/img/<name>.png\n"
        "nightcity-fine/<split>/lbl/<name>_trainIds.png  (trainIds 0-18, 255 ignore)"
    ),
}

# True for the values a trainId label may hold (0-18 and 255).
_VALID = torch.zeros(256, dtype=torch.bool)
_VALID[:NUM_CLASSES] = True
_VALID[IGNORE_INDEX] = True


class DataError(ValueError):
    """A problem with a dataset file or folder; the message names the path."""


def decode_image(path: str | Path) -> torch.Tensor:
    """Read a PNG/JPEG image as uint8 RGB (3, H, W); DataError naming the file on failure."""
    path = Path(path)
    try:
        return _tv_decode(path, ImageReadMode.RGB)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is reported with the file
        raise DataError(f"cannot read image {path}: {exc}") from exc


def decode_label(path: str | Path) -> torch.Tensor:
    """Read a single-channel label PNG as uint8 (H, W), values as stored.

    Palette PNGs give their indices (not colours). DataError naming the file on failure.
    """
    path = Path(path)
    try:
        label = _tv_decode(path, ImageReadMode.UNCHANGED)
        if label.shape[0] == 1 and label.dtype == torch.uint8:
            return label[0]
        # torchvision expands palette PNGs to colours; PIL keeps the indices.
        from PIL import Image

        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise DataError(f"label {path} has PIL mode {im.mode!r}; expected a single-channel 8-bit PNG (L or P)")
            return torch.from_numpy(np.array(im, dtype=np.uint8))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read label {path}: {exc}") from exc


def _tv_decode(path: Path, mode: ImageReadMode) -> torch.Tensor:
    with warnings.catch_warnings():
        # torchvision 0.29 announces that torchcodec will take over image decoding; it still works.
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        return _tv_decode_image(read_file(str(path)), mode=mode)


def check_label(label: torch.Tensor, path: str | Path) -> None:
    """DataError naming ``path`` if ``label`` (H, W) holds values outside 0-18 and 255."""
    flat = label.reshape(-1).long()
    if flat.numel() and (flat.min() < 0 or flat.max() > 255 or not bool(_VALID[flat].all())):
        values = torch.unique(flat)
        bad = [int(v) for v in values if not (0 <= v < 256 and _VALID[int(v)])]
        raise DataError(
            f"label {path} holds values {bad[:10]} outside trainIds 0-{NUM_CLASSES - 1} and "
            f"{IGNORE_INDEX} (is it a labelIds or colour image instead of trainIds?)"
        )


class SegmentationDataset(Dataset):
    """Image/label pairs of one dataset split.

    Args:
        files: list of (image_path, label_path).
        transform: ``(image_uint8 (3,H,W), label (H,W)) -> (image, label)`` or None.
        on_error: "raise" (DataError naming the file) or "skip" (warn, use the next good item).
        name: dataset name for messages.
    """

    def __init__(
        self,
        files: list[tuple[Path, Path]],
        transform: Callable | None = None,
        *,
        on_error: str = "raise",
        name: str = "",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.files = list(files)
        self.transform = transform
        self.on_error = on_error
        self.name = name
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode and check pair ``index``: image uint8 (3,H,W), label uint8 (H,W)."""
        image_path, label_path = self.files[index]
        image = decode_image(image_path)
        label = decode_label(label_path)
        if tuple(image.shape[1:]) != tuple(label.shape):
            raise DataError(
                f"label {label_path} is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
                f"{image_path} is {image.shape[2]}x{image.shape[1]}"
            )
        check_label(label, label_path)
        return image, label

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} items")
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            if i in self.bad:
                continue
            try:
                image, label = self.load(i)
            except DataError as exc:
                if self.on_error == "raise":
                    raise
                self.bad.add(i)
                warnings.warn(f"skipping {self.files[i][0].name}: {exc}", stacklevel=2)
                continue
            if self.transform is not None:
                image, label = self.transform(image, label)
            return {"image": image, "label": label, "name": _stem(self.files[i][0])}
        raise DataError(f"every file of dataset {self.name!r} failed to load")


class ConcatSegmentationDataset(Dataset):
    """Several :class:`SegmentationDataset` one after the other (e.g. cityscapes+nightcity)."""

    def __init__(self, parts: list[SegmentationDataset], *, name: str = "") -> None:
        self.parts = list(parts)
        self.name = name
        self.files = [f for p in self.parts for f in p.files]
        self._ends = np.cumsum([len(p) for p in self.parts]).tolist()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} items")
        start = 0
        for part, end in zip(self.parts, self._ends):
            if index < end:
                return part[index - start]
            start = end
        raise IndexError(index)  # unreachable


def _stem(path: Path) -> str:
    name = path.name
    for suffix in ("_leftImg8bit.png", ".png", ".jpg", ".jpeg"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _require_dir(path: Path, dataset: str) -> None:
    if not path.is_dir():
        raise DataError(
            f"{dataset}: folder {path} does not exist. Expected layout under the data root:\n"
            f"{LAYOUTS[dataset]}"
        )


def _pair(
    images: dict[str, Path],
    labels: dict[str, Path],
    *,
    dataset: str,
    on_error: str,
    image_dir: Path,
    label_dir: Path,
) -> list[tuple[Path, Path]]:
    """Match images and labels by key; unpaired files raise (or warn with on_error='skip')."""
    problems = [f"image {images[k]} has no label (looked for it in {label_dir})" for k in sorted(set(images) - set(labels))]
    problems += [f"label {labels[k]} has no image (looked for it in {image_dir})" for k in sorted(set(labels) - set(images))]
    if problems:
        message = f"{dataset}: {len(problems)} unpaired file(s):\n  " + "\n  ".join(problems[:20])
        if len(problems) > 20:
            message += f"\n  ... and {len(problems) - 20} more"
        if on_error == "raise":
            raise DataError(message + f"\nExpected layout:\n{LAYOUTS[dataset]}")
        warnings.warn("skipping " + message, stacklevel=3)
    keys = sorted(set(images) & set(labels))
    if not keys:
        raise DataError(f"{dataset}: no image/label pairs found in {image_dir} and {label_dir}.\nExpected layout:\n{LAYOUTS[dataset]}")
    return [(images[k], labels[k]) for k in keys]


def _index(folder: Path, suffixes: tuple[str, ...], *, recursive: bool) -> dict[str, Path]:
    """Map key -> path for files in ``folder`` ending with one of ``suffixes`` (key = name without it)."""
    out: dict[str, Path] = {}
    paths = folder.rglob("*") if recursive else folder.iterdir()
    for path in paths:
        if not path.is_file():
            continue
        for suffix in suffixes:
            if path.name.endswith(suffix):
                rel = path.relative_to(folder).as_posix()
                out[rel[: -len(suffix)]] = path
                break
    return out


def cityscapes_files(root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(leftImg8bit, gtFine labelTrainIds) pairs of ``root/cityscapes`` for ``split``."""
    base = Path(root) / "cityscapes"
    image_dir, label_dir = base / "leftImg8bit" / split, base / "gtFine" / split
    _require_dir(image_dir, "cityscapes")
    _require_dir(label_dir, "cityscapes")
    images = _index(image_dir, ("_leftImg8bit.png",), recursive=True)
    labels = _index(label_dir, ("_gtFine_labelTrainIds.png",), recursive=True)
    if images and not labels and _index(label_dir, ("_gtFine_polygons.json", "_gtFine_labelIds.png"), recursive=True):
        raise DataError(
            f"cityscapes: {label_dir} has gtFine annotations but no *_gtFine_labelTrainIds.png; "
            f"run `python -m aiblib prepare --root {Path(root)}` first"
        )
    return _pair(images, labels, dataset="cityscapes", on_error=on_error, image_dir=image_dir, label_dir=label_dir)


def bdd100k_files(root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(image jpg, trainId mask png) pairs of ``root/bdd100k`` for ``split``."""
    base = Path(root) / "bdd100k"
    image_dir, label_dir = base / "images" / "10k" / split, base / "labels" / "sem_seg" / "masks" / split
    _require_dir(image_dir, "bdd100k")
    _require_dir(label_dir, "bdd100k")
    images = _index(image_dir, (".jpg", ".jpeg", ".png"), recursive=False)
    labels = _index(label_dir, (".png",), recursive=False)
    return _pair(images, labels, dataset="bdd100k", on_error=on_error, image_dir=image_dir, label_dir=label_dir)


def nightcity_files(root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(img png, lbl _trainIds png) pairs of ``root/nightcity-fine`` for ``split``."""
    base = Path(root) / "nightcity-fine" / split
    image_dir, label_dir = base / "img", base / "lbl"
    _require_dir(image_dir, "nightcity")
    _require_dir(label_dir, "nightcity")
    images = _index(image_dir, (".png", ".jpg"), recursive=False)
    labels = _index(label_dir, ("_trainIds.png",), recursive=False)
    return _pair(images, labels, dataset="nightcity", on_error=on_error, image_dir=image_dir, label_dir=label_dir)


_FILES = {"cityscapes": cityscapes_files, "bdd100k": bdd100k_files, "nightcity": nightcity_files}


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    transform: Callable | None = None,
    *,
    on_error: str = "raise",
) -> SegmentationDataset | ConcatSegmentationDataset:
    """The dataset ``name`` (one of :data:`DATASETS`) of ``split`` under the data root ``root``.

    Items: ``{"image": (3,H,W), "label": (H,W), "name": str}`` (see the module docstring).
    ``on_error``: "raise" or "skip" (skip unpaired/unreadable/bad files with a warning).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not Path(root).is_dir():
        raise DataError(f"data root {Path(root)} does not exist")
    parts = name.split("+")
    datasets = [
        SegmentationDataset(_FILES[p](root, split, on_error=on_error), transform, on_error=on_error, name=p)
        for p in parts
    ]
    if len(datasets) == 1:
        return datasets[0]
    return ConcatSegmentationDataset(datasets, name=name)
