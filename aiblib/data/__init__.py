"""The data: shared facts (:mod:`.facts`), dataset files (:mod:`.files`), datasets (:mod:`.datasets`),
CamVid's folder, domains and 11-class scoring (:mod:`.camvid`),
transforms (:mod:`.transforms`), the training augmentation (:mod:`.augment`, with
:mod:`.photometric`), data-loader batches that end in one line (:mod:`.loading`), the synthetic
generator (the package :mod:`.synth`) and notebook 05's
corruptions (:mod:`.corruptions`, imported by its own path: it loads imagecorruptions and scikit-image).

Floor 2: imports only ``aiblib.errors``, ``aiblib.paths`` and ``aiblib.model``.
"""

from __future__ import annotations

from aiblib.data.augment import AugmentDraws, apply_batch, collate_drawn, train_transform
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
    OFFICIAL_COUNTS,
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
from aiblib.data.loading import (
    CHECK_HINT,
    STOP_SIGNALS,
    Batches,
    Guarded,
    GuardedCollate,
    LoadFailure,
    Reading,
    worker_init,
)
from aiblib.data.photometric import PhotometricDraws
from aiblib.data.transforms import TestTransform, denormalize, scale_size, test_transform

__all__ = [
    "CLASSES", "PALETTE", "NUM_CLASSES", "IGNORE_INDEX", "MEAN", "STD", "DATASETS", "SPLITS", "FOLDERS", "OFFICIAL_COUNTS",
    "DIRS", "Layout", "LAYOUTS", "CITYSCAPES_POLYGONS", "CITYSCAPES_LABEL_IDS", "VALID_LABEL_VALUES", "DataError",
    "decode_image", "decode_label", "image_size", "check_label", "check_pair_size", "check_root",
    "Pairing", "find_pairs", "require_pairs", "accept_pairs", "list_files", "cityscapes_files", "bdd100k_files", "nightcity_files",
    "SegmentationDataset", "ConcatSegmentationDataset", "CamVidDataset", "build_dataset",
    "CAMVID_ROOT", "CAMVID_VOID", "CAMVID_GROUPS", "CAMVID_CLASSES", "CAMVID_PALETTE", "CAMVID_SEQUENCES",
    "CamVidSplit", "CAMVID_SPLITS", "camvid_train_ids", "read_camvid_label", "check_camvid_root", "camvid_files",
    "camvid_confusion",
    "LoadFailure", "Reading", "Guarded", "GuardedCollate", "Batches", "worker_init", "STOP_SIGNALS", "CHECK_HINT",
    "TestTransform", "denormalize", "scale_size", "test_transform", "train_transform",
    "AugmentDraws", "PhotometricDraws", "apply_batch", "collate_drawn",
]
