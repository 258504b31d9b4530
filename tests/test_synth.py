"""Synthetic generator: determinism, class coverage, polygon/label agreement, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from aiblib.cli import synth as synth_cli
from aiblib.data import synth
from aiblib.data.synth import ensure_generated


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kwargs = dict(n_train=2, n_val=1, size=(48, 96))
    synth.generate(tmp_path / "a", seed=3, workers=1, **kwargs)
    synth.generate(tmp_path / "b", seed=3, workers=2, **kwargs)
    synth.generate(tmp_path / "c", seed=4, workers=1, **kwargs)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert len(a) == 3 * 3 * 2 + 3 * 2 + 1  # cityscapes 4 files, others 2, plus synth.json
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_all_classes_over_a_small_set() -> None:
    for domain in synth.DOMAINS:
        seen: set[int] = set()
        for i in range(6):
            _, ids, _ = synth.render_one(domain, "train", i, seed=0, size=(128, 256))
            seen |= set(np.unique(synth.ID_TO_TRAIN[ids]).tolist())
        assert set(range(19)) <= seen, (domain, sorted(set(range(19)) - seen))


def test_label_ids_are_the_polygons_rasterized_by_cityscapesscripts() -> None:
    img, ids, objects = synth.render_one("cityscapes", "val", 1, seed=0, size=(96, 192))
    ann = Annotation()
    ann.fromJsonText(json.dumps({"imgHeight": 96, "imgWidth": 192, "objects": objects}))
    assert np.array_equal(np.asarray(createLabelImage(ann, "ids")), ids)
    assert img.shape == (96, 192, 3) and img.dtype == np.uint8


def test_domains_differ_in_appearance() -> None:
    means = {}
    for domain in synth.DOMAINS:
        imgs = [synth.render_one(domain, "train", i, seed=0, size=(64, 128))[0] for i in range(4)]
        means[domain] = np.mean([im.reshape(-1, 3).mean(0) for im in imgs], axis=0)
    assert means["nightcity"].mean() < 0.5 * means["cityscapes"].mean()
    assert np.abs(means["bdd100k"] - means["cityscapes"]).max() > 10


def test_cli_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "s"
    assert synth_cli.main(["--root", str(root), "--n-train", "1", "--n-val", "1", "--size", "32x64",
                           "--domains", "nightcity", "--workers", "1"]) == 0
    lbl = next((root / "nightcity-fine" / "val" / "lbl").iterdir())
    assert lbl.name.endswith("_trainIds.png") and Image.open(lbl).size == (64, 32)
    assert synth_cli.main(["--root", str(root), "--n-train", "2", "--n-val", "1", "--size", "32x64",
                           "--domains", "nightcity"]) == 2
    assert "already holds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synth_cli.main(["--size", "64-32"])


def test_ensure_generated_skips_a_complete_set_and_completes_a_partial_one(tmp_path):
    kw = dict(n_train=2, n_val=1, size=(32, 64), seed=3, domains=("bdd100k",), workers=1)
    ensure_generated(tmp_path, **kw)
    image = tmp_path / "bdd100k/images/10k/train/synth00001-train.jpg"
    before = image.stat().st_mtime_ns
    ensure_generated(tmp_path, **kw)
    assert image.stat().st_mtime_ns == before  # nothing rewritten
    image.unlink()
    ensure_generated(tmp_path, **kw)
    assert image.is_file()  # an interrupted set is completed
    with pytest.raises(ValueError, match="already holds"):
        ensure_generated(tmp_path, **{**kw, "seed": 4})
