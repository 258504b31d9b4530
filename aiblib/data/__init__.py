"""The data floor: shared facts, dataset files, datasets.

``aiblib.data`` re-exports the public names of :mod:`aiblib.data.facts`,
:mod:`aiblib.data.files`, :mod:`aiblib.data.datasets` and :mod:`aiblib.data.camvid`. The transforms and the synthetic
generator are imported by their own paths: :mod:`aiblib.data.transforms`,
:mod:`aiblib.data.synth`; so are the corruptions of notebook 05, :mod:`aiblib.data.corruptions`.
"""

from __future__ import annotations

from aiblib.data.camvid import camvid_confusion, camvid_files, camvid_train_ids, check_camvid_root, read_camvid_label
from aiblib.data.datasets import CamVidDataset, ConcatSegmentationDataset, SegmentationDataset, build_dataset
from aiblib.data.facts import (
    CAMVID_CLASSES,
    CAMVID_GROUPS,
    CAMVID_PALETTE,
    CAMVID_ROOT,
    CAMVID_SEQUENCES,
    CAMVID_SPLITS,
    CAMVID_VOID,
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
    CamVidSplit,
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
    "SegmentationDataset", "ConcatSegmentationDataset", "CamVidDataset", "build_dataset",
    "CAMVID_ROOT", "CAMVID_VOID", "CAMVID_GROUPS", "CAMVID_CLASSES", "CAMVID_PALETTE", "CAMVID_SEQUENCES",
    "CamVidSplit", "CAMVID_SPLITS", "camvid_train_ids", "read_camvid_label", "check_camvid_root", "camvid_files",
    "camvid_confusion",
]
