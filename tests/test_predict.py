"""``python -m aiblib predict``: a checkpoint on a user's own images, files written at each image's size."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_checkpoint
from PIL import Image

from aiblib.cli.predict import main
from aiblib.data import CLASSES, decode_image, test_transform
from aiblib.evaluation import noise_generator, predict_logits, prediction
from aiblib.storage import load_model
from aiblib.tools import image_files


def test_predict_writes_each_images_prediction_at_its_own_size(synthetic_root, tmp_path, capsys):
    cfg, checkpoint = tiny_checkpoint(synthetic_root, tmp_path, attention=True)
    frames = tmp_path / "frames"
    frames.mkdir()
    sources = sorted((synthetic_root / "bdd100k").rglob("*.jpg"))[:2]
    for source in sources:
        shutil.copy(source, frames / source.name)
    (frames / "notes.txt").write_text("not an image")
    odd = frames / "zz_odd.png"  # another size, and RGBA
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 4), dtype=np.uint8)).save(odd)
    out = tmp_path / "out"
    args = [str(checkpoint), str(frames), "--out", str(out), "-p", "base_size", "[64,128]", "-p", "test_samples", "2"]
    assert main(args) == 0
    table = pd.read_csv(out / "predictions.csv")
    assert [p.split("/")[-1] for p in table["file"]] == [s.name for s in sources] + ["zz_odd.png"]
    assert (table.loc[2, "height"], table.loc[2, "width"]) == (50, 70)
    assert np.allclose(table[list(CLASSES)].sum(axis=1), 1.0) and table["mu_mean"].between(0, 1).all()
    for name in (s.stem for s in sources):
        assert {f"{name}_pred.png", f"{name}_labels.png", f"{name}_mu.png"} <= {p.name for p in out.iterdir()}
    # the trainIds are what evaluation predicts for that image: the model's logits at the test size, then resized
    labels = np.array(Image.open(out / f"{sources[0].stem}_labels.png"))
    raw = decode_image(sources[0])
    image, _ = test_transform(base_size=(64, 128))(raw, torch.zeros(raw.shape[-2:], dtype=torch.int64))
    model = load_model(checkpoint, test_samples=cfg.test_samples).eval()
    logits = predict_logits(model, image[None], generator=noise_generator(torch.device("cpu"), 0, 0))
    assert (labels == prediction(logits, raw.shape[-2:])[0].numpy()).all()
    assert "3 image(s)" in capsys.readouterr().out


def test_predict_names_what_is_missing_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no PNG or JPEG image"):
        image_files([tmp_path / "empty"])
    assert main([str(tmp_path / "nope.pth"), str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
