"""The data floor: shared facts, dataset files, datasets.

``aiblib.data`` re-exports the public names of :mod:`aiblib.data.facts`,
:mod:`aiblib.data.files` and :mod:`aiblib.data.datasets`. The transforms and the synthetic
generator are imported by their own paths: :mod:`aiblib.data.transforms`,
:mod:`aiblib.data.synth`; so are the corruptions of notebook 05, :mod:`aiblib.data.corruptions`.
"""

from __future__ import annotations

from aiblib.data.datasets import ConcatSegmentationDataset, SegmentationDataset, build_dataset
from aiblib.data.facts import (
    CITYSCAPES_LABEL_IDS,
    CITYSCAPES_POLYGONS,
    CLASSES,
    DATASETS,
    DIRS,
    FOLDERS,
    IGNORE_INDEX,
    LAYOUTS,
    MEAN,
    NUM_CLASSES,
    PALETTE,
    SPLITS,
    STD,
    VALID_LABEL_VALUES,
    DataError,
    Layout,
)
from aiblib.data.files import (
    Pairing,
    accept_pairs,
    bdd100k_files,
    check_label,
    check_pair_size,
    check_root,
    cityscapes_files,
    decode_image,
    decode_label,
    find_pairs,
    image_size,
    list_files,
    nightcity_files,
    require_pairs,
)

__all__ = [
    "CLASSES", "PALETTE", "NUM_CLASSES", "IGNORE_INDEX", "MEAN", "STD", "DATASETS", "SPLITS", "FOLDERS",
    "DIRS", "Layout", "LAYOUTS", "CITYSCAPES_POLYGONS", "CITYSCAPES_LABEL_IDS", "VALID_LABEL_VALUES", "DataError",
    "decode_image", "decode_label", "image_size", "check_label", "check_pair_size", "check_root",
    "Pairing", "find_pairs", "require_pairs", "accept_pairs", "list_files", "cityscapes_files", "bdd100k_files", "nightcity_files",
    "SegmentationDataset", "ConcatSegmentationDataset", "build_dataset",
]
