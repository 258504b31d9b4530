"""prepare: official trainIds, no redone work, no overwrite, problems named, summary CSV."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from aiblib.cli import prepare as prepare_cli
from aiblib.tools import preparation as P


def test_train_ids_match_label_ids_under_official_mapping(synthetic_root: Path) -> None:
    lut = np.full(256, 255, np.uint8)
    for i, lab in id2label.items():
        if 0 <= i < 256:
            lut[i] = lab.trainId if 0 <= lab.trainId < 255 else 255
    pairs = sorted((synthetic_root / "cityscapes" / "gtFine").glob("*/*/*_gtFine_labelIds.png"))
    assert len(pairs) == 6
    for ids_path in pairs:
        train_path = ids_path.with_name(ids_path.name.replace("_labelIds", "_labelTrainIds"))
        ids = np.asarray(Image.open(ids_path))
        train = np.asarray(Image.open(train_path))
        assert np.array_equal(lut[ids], train), train_path


def test_summary_csv(synthetic_root: Path) -> None:
    df = pd.read_csv(synthetic_root / P.SUMMARY)
    assert len(df) == 6 and set(df["dataset"]) == {"cityscapes", "bdd100k", "nightcity"}
    assert (df["problems"] == 0).all() and df["sizes"].str.startswith("128x64:").all()
    freq = df[list(P.CLASSES)].sum(axis=1)
    assert np.allclose(freq, 1.0)


def test_no_redo_no_overwrite(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    train_ids = sorted((root / "cityscapes" / "gtFine").glob("*/*/*_labelTrainIds.png"))
    train_ids[0].unlink()  # one missing: only that one is made again
    keep = train_ids[1]
    Image.fromarray(np.full((64, 128), 7, np.uint8)).save(keep)  # a user's file: left alone
    df = P.prepare(root, verbose=False)
    assert df.attrs["train_ids"] == {"annotations": 6, "existing": 5, "created": 1}
    assert train_ids[0].exists() and (np.asarray(Image.open(keep)) == 7).all()
    df = P.prepare(root, verbose=False)
    assert df.attrs["train_ids"]["created"] == 0 and not df.attrs["problems"]


def test_problems_are_reported_with_their_file(tmp_path: Path, synthetic_root: Path, capsys) -> None:
    root = tmp_path / "bad"
    shutil.copytree(synthetic_root, root)
    masks = root / "bdd100k" / "labels" / "sem_seg" / "masks" / "train"
    bad = sorted(masks.iterdir())[0]
    Image.fromarray(np.full((64, 128), 40, np.uint8)).save(bad)
    orphan = root / "nightcity-fine" / "val" / "lbl" / "lonely_trainIds.png"
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(orphan)
    assert prepare_cli.main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "lonely_trainIds.png" in err
    assert str(bad) in (root / P.PROBLEMS).read_text()
    assert prepare_cli.main(["--root", str(tmp_path / "nowhere")]) == 2


def test_a_split_whose_count_is_not_the_published_one_is_named(synthetic_root, camvid_root, tmp_path, capsys):
    from aiblib.tools import check_camvid
    from aiblib.tools.preparation import count_note

    assert count_note("cityscapes", "train", 2975) is None and count_note("cityscapes", "test", 5) is None
    assert count_note("camvid", "test", 233) is None
    note = count_note("cityscapes", "val", 499)
    assert note.startswith("cityscapes/val: 499 images where the published set has 500")
    shutil.copytree(synthetic_root, tmp_path / "root")
    P.prepare(tmp_path / "root", verbose=True)  # 4 train and 2 val images per domain
    out = capsys.readouterr().out
    assert "cityscapes/train: 4 images where the published set has 2975" in out
    assert "nightcity/val: 2 images where the published set has 1299" in out
    notes = check_camvid(camvid_root).attrs["notes"]
    assert notes and all(n.startswith("camvid/") for n in notes) and not any("train-day" in n for n in notes)
