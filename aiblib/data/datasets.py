"""Datasets: Cityscapes, BDD100K, NightCity-fine and their concatenation (SPEC section 3); CamVid (section 9).

Layouts under a data root (the synthetic root written by ``python -m aiblib synth`` has
the same three folders)::

    cityscapes/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    cityscapes/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png   (made by `prepare`)
    bdd100k/images/10k/<split>/<name>.jpg
    bdd100k/labels/sem_seg/masks/<split>/<name>.png                    (trainIds)
    nightcity-fine/<split>/img/<name>.png
    nightcity-fine/<split>/lbl/<name>_trainIds.png

(:data:`aiblib.data.facts.DIRS` is where these are defined.) CamVid lies in a folder of its own
(``camvid_root``) and has splits of its own: see :mod:`aiblib.data.camvid`. Images and labels are paired
by name. Every problem (missing folder, unpaired file, unreadable file, size mismatch,
label value outside 0-18 and 255) raises :class:`DataError` naming the file; with
``on_error="skip"`` the file is skipped with a warning instead (never silently).

``dataset[i]`` is a dict ``{"image", "label", "name"}``. Without a transform the image is
uint8 (3, H, W) RGB and the label uint8 (H, W) trainIds as stored (CamVid's: mapped into
trainIds, void 255); with a transform, what
the transform returns (see :mod:`aiblib.data.transforms`: float32 normalized image, int64 label).
``dataset.get(i, generator=g)`` is the same item with the transform's random draws taken from ``g``
(the training augmentation's ``generator`` keyword; see :class:`aiblib.training.SeededSamples`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from aiblib.data.camvid import camvid_files, read_camvid_label
from aiblib.data.facts import CAMVID_ROOT, CAMVID_SPLITS, DATASETS, SPLITS, DataError
from aiblib.data.files import check_label, check_pair_size, check_root, decode_image, decode_label, list_files
from aiblib.errors import ConfigError
from aiblib.paths import project_path


class SegmentationDataset(Dataset):
    """Image/label pairs of one dataset split.

    Args:
        files: list of (image_path, label_path).
        transform: ``(image_uint8 (3,H,W), label (H,W)) -> (image, label)``, or a dict of the item's
            fields (``{"image", "label", "draws"}`` of :func:`aiblib.data.augment.train_transform` with
            ``draw_only``), or None; called with ``generator=`` by :meth:`get` when one is given.
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
        label = self.read_label(label_path)
        check_pair_size(tuple(image.shape[1:]), tuple(label.shape), image_path, label_path)
        return image, label

    def read_label(self, path: Path) -> torch.Tensor:
        """The label at ``path`` as uint8 (H, W) trainIds (0-18, 255), checked; DataError naming the file."""
        label = decode_label(path)
        check_label(label, path)
        return label

    def __getitem__(self, index: int) -> dict:
        return self.get(index)

    def get(self, index: int, *, generator: torch.Generator | None = None) -> dict:
        """Item ``index``; the transform, given ``generator``, draws its randomness from it."""
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
            item = {"image": image, "label": label}
            if self.transform is not None:
                drawn = {} if generator is None else {"generator": generator}
                out = self.transform(image, label, **drawn)
                item = dict(out) if isinstance(out, dict) else {"image": out[0], "label": out[1]}
            return {**item, "name": _stem(self.files[i][0])}
        raise DataError(f"every file of dataset {self.name!r} failed to load")


class CamVidDataset(SegmentationDataset):
    """CamVid frames: the labels, CamVid classes 0-10 and void 11 on disk, are returned as trainIds (void 255)."""

    def read_label(self, path: Path) -> torch.Tensor:
        """The CamVid label at ``path`` as uint8 (H, W) trainIds; DataError naming the file (values outside 0-11)."""
        return read_camvid_label(path)


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
        return self.get(index)

    def get(self, index: int, *, generator: torch.Generator | None = None) -> dict:
        """Item ``index`` of the part that holds it (:meth:`SegmentationDataset.get`)."""
        if not 0 <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} items")
        start = 0
        for part, end in zip(self.parts, self._ends):
            if index < end:
                return part.get(index - start, generator=generator)
            start = end
        raise IndexError(index)  # unreachable


def _stem(path: Path) -> str:
    name = path.name
    for suffix in ("_leftImg8bit.png", ".png", ".jpg", ".jpeg"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    transform: Callable | None = None,
    *,
    on_error: str = "raise",
    camvid_root: str | Path = CAMVID_ROOT,
) -> SegmentationDataset | ConcatSegmentationDataset:
    """The dataset ``name`` (one of :data:`DATASETS`) of ``split`` under the data root ``root``.

    Items: ``{"image": (3,H,W), "label": (H,W), "name": str}`` (see the module docstring).
    ``on_error``: "raise" or "skip" (skip unpaired/unreadable/bad files with a warning).
    ``camvid``'s frames are read from ``camvid_root`` (``root`` is not used), with the splits of
    :data:`CAMVID_SPLITS`. Relative ``root`` and ``camvid_root`` are under the project root
    (:func:`aiblib.paths.project_path`), wherever the process starts.
    """
    root = project_path(root)
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    splits = tuple(CAMVID_SPLITS) if name == "camvid" else SPLITS
    if split not in splits:
        only = f" ({split!r} is a split of camvid only)" if split in CAMVID_SPLITS else ""
        raise ConfigError(f"unknown split {split!r} of dataset {name!r}; choose one of {splits}{only}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if name == "camvid":
        files = camvid_files(project_path(camvid_root), split, on_error=on_error)
        return CamVidDataset(files, transform, on_error=on_error, name=name)
    check_root(root)
    datasets = [
        SegmentationDataset(list_files(p, root, split, on_error=on_error), transform, on_error=on_error, name=p)
        for p in name.split("+")
    ]
    if len(datasets) == 1:
        return datasets[0]
    return ConcatSegmentationDataset(datasets, name=name)
