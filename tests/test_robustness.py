"""Notebook 05's library: ImageNet-C corruptions (aiblib.data.corruptions), calibration and
misclassification AUROC on hand-made cases (aiblib.evaluation.calibration), the per-protocol CSV merge
(aiblib.evaluation.robustness), and a papermill smoke run of 05 on two tiny trained runs."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, tiny_overrides

from aiblib.config import load_config
from aiblib.data import build_dataset, test_transform
from aiblib.data.corruptions import (
    BROKEN,
    CORRUPTIONS,
    DEFAULT_CORRUPTIONS,
    CorruptedDataset,
    check_corruptions,
    corrupt,  # corrupt: imagecorruptions', imported without its warnings
    corrupt_image,
)
from aiblib.evaluation import (
    expected_calibration_error,
    misclassification_auroc,
    pixel_sample,
    reliability_bins,
)
from aiblib.evaluation.robustness import CORRUPTION_COLUMNS, first_images, merge_rows, split_target
from aiblib.notebooks import NotebookFailed, run_notebook
from aiblib.paths import ROOT_VARIABLE
from aiblib.training import train


def _image(h: int = 64, w: int = 128) -> torch.Tensor:
    """A uint8 (3, h, w) test picture: two colour ramps and a checkerboard (edges for the blurs to soften)."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([x * 255 // (w - 1), y * 255 // (h - 1), ((x // 8 + y // 8) % 2) * 160 + 40]).to(torch.uint8)


def _mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


# ----------------------------------------------------------------------------- corruptions
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_that_runs_keeps_size_and_dtype_and_changes_the_image(name):
    image = _image()
    for severity in (1, 5):
        out = corrupt_image(image, name, severity, index=1)
        assert out.dtype == torch.uint8 and out.shape == image.shape and not torch.equal(out, image)


def test_the_broken_corruptions_still_fail_and_are_refused_in_one_line():
    """If a pin update makes one of them run, this fails: move it out of BROKEN."""
    hwc = _image().permute(1, 2, 0).numpy().copy()
    for name, reason in BROKEN.items():
        with pytest.raises((AttributeError, TypeError)):
            corrupt(hwc, severity=1, corruption_name=name)
        with pytest.raises(ValueError, match=f"corruption '{name}' does not run .*{reason.split(',')[0]}") as err:
            check_corruptions([name], [1])
        assert "\n" not in str(err.value) and "snow" in str(err.value)  # the line lists what does run
    assert set(DEFAULT_CORRUPTIONS) <= set(CORRUPTIONS)


@pytest.mark.parametrize("corruptions, severities, message", [
    (["fogg"], [1], "unknown corruption 'fogg'; choose from: gaussian_noise"),
    ([], [1], "no corruption given"),
    (["snow"], [6], r"severities must be integers from 0 \(clean\) to 5, got \[6\]"),
    (["snow"], [1.5], "severities must be integers"),
    (["snow"], [], "severities must be integers"),
])
def test_a_bad_corruption_or_severity_is_one_line(corruptions, severities, message):
    with pytest.raises(ValueError, match=message):
        check_corruptions(corruptions, severities)


# (corruption, statistic of the corrupted image, +1: grows with severity / -1: falls)
MONOTONE = [
    ("gaussian_noise", "mad", 1), ("shot_noise", "mad", 1), ("defocus_blur", "mad", 1), ("motion_blur", "mad", 1),
    ("brightness", "mean", 1), ("contrast", "std", -1), ("jpeg_compression", "mad", 1),
]


@pytest.mark.parametrize("name, statistic, sign", MONOTONE, ids=[m[0] for m in MONOTONE])
def test_severity_is_monotone_in_a_simple_image_statistic(name, statistic, sign):
    image = _image()
    measure = {"mad": lambda out: _mad(out, image), "mean": lambda out: out.float().mean().item(),
               "std": lambda out: out.float().std().item()}[statistic]
    values = [measure(corrupt_image(image, name, severity, seed=0, index=0)) for severity in range(6)]
    steps = np.diff(values) * sign
    assert (steps > 0).all(), f"{name}: {statistic} by severity 0..5 is {np.round(values, 2).tolist()}"


def test_corruption_is_seeded_per_image_and_leaves_numpys_generator_alone():
    image = _image()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = corrupt_image(image, "gaussian_noise", 3, seed=0, index=4)
    assert (np.random.get_state()[1] == before).all()
    assert torch.equal(a, corrupt_image(image, "gaussian_noise", 3, seed=0, index=4))
    assert not torch.equal(a, corrupt_image(image, "gaussian_noise", 3, seed=0, index=5))
    assert not torch.equal(a, corrupt_image(image, "gaussian_noise", 3, seed=1, index=4))
    assert corrupt_image(image, "snow", 0) is image  # severity 0: the clean image


def test_the_corruption_comes_before_the_test_transform(synthetic_root):
    raw = build_dataset("cityscapes", synthetic_root, "val")
    transform = test_transform(base_size=(32, 64))  # a downscale: corrupting after it would differ
    data = CorruptedDataset(raw, "contrast", 4, transform, seed=2)
    item, original = data[1], raw[1]
    expected, label = transform(corrupt_image(original["image"], "contrast", 4, seed=2, index=1), original["label"])
    assert torch.equal(item["image"], expected) and torch.equal(item["label"], label)
    assert item["image"].shape == (3, 32, 64) and item["name"] == original["name"] and len(data) == len(raw)


# ----------------------------------------------------------------------------- calibration
def test_ece_is_zero_when_the_confidence_is_the_accuracy():
    confidence = torch.tensor([0.75] * 4 + [0.5] * 2)
    correct = torch.tensor([True, True, True, False, True, False])
    assert expected_calibration_error(confidence, correct, bins=10) == pytest.approx(0.0, abs=1e-7)


def test_ece_of_a_two_bin_case_is_the_hand_computed_value():
    # bin [0.2, 0.4): 10 pixels at 0.3, 5 right (gap 0.2); bin [0.8, 1): 10 pixels at 0.9, 6 right (gap 0.3)
    confidence = torch.tensor([0.3] * 10 + [0.9] * 10)
    correct = torch.tensor([True] * 5 + [False] * 5 + [True] * 6 + [False] * 4)
    assert expected_calibration_error(confidence, correct, bins=5) == pytest.approx(0.5 * 0.2 + 0.5 * 0.3, abs=1e-6)
    bins = reliability_bins(confidence, correct, bins=5)
    assert bins["count"].tolist() == [0, 10, 0, 0, 10]
    assert bins["accuracy"][1] == pytest.approx(0.5) and bins["accuracy"][4] == pytest.approx(0.6)
    assert bins["confidence"][4] == pytest.approx(0.9) and math.isnan(bins["accuracy"][0])


def test_the_reliability_bins_give_torchmetrics_ece():
    g = torch.Generator().manual_seed(0)
    confidence = torch.rand(5000, generator=g) * 0.999
    correct = torch.rand(5000, generator=g) < confidence ** 2
    bins = reliability_bins(confidence, correct, bins=15)
    filled = bins["count"] > 0
    ece = (bins["count"][filled] / 5000 * (bins["accuracy"][filled] - bins["confidence"][filled]).abs()).sum()
    assert float(ece) == pytest.approx(expected_calibration_error(confidence, correct, bins=15), abs=1e-6)
    assert math.isnan(expected_calibration_error(torch.zeros(0), torch.zeros(0, dtype=torch.bool)))


def test_auroc_is_one_when_every_error_is_more_uncertain_and_zero_reversed():
    error = torch.tensor([False, True, False, True, False, False])
    uncertainty = torch.tensor([0.1, 2.5, 0.3, 1.9, 0.2, 0.4])  # entropy-like values beyond 1
    assert misclassification_auroc(uncertainty, error) == pytest.approx(1.0)
    assert misclassification_auroc(-uncertainty, error) == pytest.approx(0.0)
    assert misclassification_auroc(torch.ones(6), error) == pytest.approx(0.5)  # no information
    tiny = torch.tensor([1e-7, 3e-6, 2e-7, 2.9e-6, 1.5e-7, 3e-7])  # mutual information is this small
    assert misclassification_auroc(tiny, error) == pytest.approx(1.0)
    assert math.isnan(misclassification_auroc(uncertainty, torch.zeros(6, dtype=torch.bool)))
    assert math.isnan(misclassification_auroc(uncertainty, torch.ones(6, dtype=torch.bool)))


def test_pixel_sample_draws_labelled_pixels_the_same_way_every_time():
    label = torch.zeros(8, 16, dtype=torch.long)
    label[:2] = 255
    every = pixel_sample(label, 0)
    assert every.tolist() == list(range(32, 128))
    assert torch.equal(pixel_sample(label, 500), every)
    some = pixel_sample(label, 10, seed=3, index=2)
    assert len(some) == 10 and len(set(some.tolist())) == 10 and (some >= 32).all()
    assert torch.equal(some, pixel_sample(label, 10, seed=3, index=2)) and torch.equal(some, some.sort().values)
    assert not torch.equal(some, pixel_sample(label, 10, seed=3, index=3))


# ----------------------------------------------------------------------------- tables
def _rows(protocol: str, miou: float) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "protocol": protocol, "corruption": "snow", "severity": s, "mIoU": miou}
                         for m in ("baseline", "AIBR") for s in (0, 1)], columns=CORRUPTION_COLUMNS)


def test_a_protocol_run_again_replaces_its_rows_and_keeps_the_others(tmp_path):
    path = tmp_path / "corruptions.csv"
    merge_rows(path, _rows("night", 10.0), protocol="night")
    merge_rows(path, _rows("dg", 20.0), protocol="dg")
    table = merge_rows(path, _rows("dg", 30.0), protocol="dg")
    saved = pd.read_csv(path)
    pd.testing.assert_frame_equal(saved, table, check_dtype=False)
    assert list(saved.columns) == CORRUPTION_COLUMNS and len(saved) == 8
    assert list(saved["protocol"]) == ["dg"] * 4 + ["night"] * 4
    assert set(saved.loc[saved["protocol"] == "dg", "mIoU"]) == {30.0}
    assert set(saved.loc[saved["protocol"] == "night", "mIoU"]) == {10.0}
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="other.csv has the columns"):
        merge_rows(other, _rows("dg", 1.0), protocol="dg")


def test_targets_and_image_counts_are_checked():
    assert split_target("nightcity:val") == ("nightcity", "val")
    for bad in ("cityscapes", "cityscapes:", ":val", "a:b:c"):
        with pytest.raises(ValueError, match="expected 'dataset:split'"):
            split_target(bad)
    assert first_images(60, 0) == list(range(60)) and first_images(60, 6) == list(range(6))
    assert first_images(3, 6) == [0, 1, 2]
    with pytest.raises(ValueError, match="max_images must be >= 0"):
        first_images(60, -1)


# ----------------------------------------------------------------------------- notebook 05
@pytest.fixture(scope="module")
def tiny_runs(synthetic_root, tmp_path_factory) -> Path:
    """runs_root holding dg-baseline and dg-aib: the tiny configuration trained 6 iterations each."""
    runs = tmp_path_factory.mktemp("runs")
    for name, attention in (("dg-baseline", False), ("dg-aib", True)):
        train(load_config(None, tiny_overrides(synthetic_root, runs / name, name=name, runs_root=str(runs),
                                               attention=attention, eval_targets=["cityscapes:val", "bdd100k:val"])))
    return runs


@pytest.mark.slow
def test_papermill_smoke_run_of_05_writes_both_tables_and_figures(tiny_runs, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    monkeypatch.setenv(ROOT_VARIABLE, str(project))
    out = project / "results" / "robustness"
    notebook = project / "notebooks" / "05-robustness.ipynb"
    given = {"runs_root": str(tiny_runs), "max_images": 2, "corruptions": ["gaussian_noise", "contrast"],
             "severities": [1, 5], "pixels_per_image": 300, "threads": 1}
    run_notebook(notebook, out / "05-robustness-dg.ipynb", parameters=given, cwd=project / "notebooks")

    table = pd.read_csv(out / "corruptions.csv")
    assert list(table.columns) == CORRUPTION_COLUMNS and len(table) == 2 * 2 * 3
    assert set(table["protocol"]) == {"dg"} and set(table["severity"]) == {0, 1, 5}
    assert table["mIoU"].between(0, 100).all()
    clean = table[table["severity"] == 0].groupby("method")["mIoU"].nunique()
    assert (clean == 1).all()  # one clean score per method, on each corruption's rows
    scores = pd.read_csv(out / "uncertainty.csv")
    assert list(scores.columns) == ["method", "protocol", "domain", "measure", "ece", "auroc"]
    assert sorted(zip(scores["domain"], scores["method"], scores["measure"])) == sorted(
        (d, m, k) for d in ("cityscapes:val", "bdd100k:val")
        for m, k in (("baseline", "entropy"), ("AIBR", "entropy"), ("AIBR", "mutual_information")))
    assert scores["ece"].between(0, 1).all() and scores["auroc"].dropna().between(0, 1).all()
    assert {p.name for p in out.glob("*.png")} == {"corruptions-dg.png", "reliability-dg.png"}

    # another protocol's rows join the same tables; a bad parameter is one line naming it
    run_notebook(notebook, out / "05-robustness-x.ipynb", cwd=project / "notebooks",
                 parameters={**given, "protocol": "x", "baseline_name": "dg-baseline", "aib_name": "dg-aib",
                             "max_images": 1, "corruptions": ["contrast"], "severities": [2]})
    table = pd.read_csv(out / "corruptions.csv")
    assert len(table) == 12 + 2 * 2 and list(dict.fromkeys(table["protocol"])) == ["dg", "x"]
    assert len(pd.read_csv(out / "uncertainty.csv")) == 12
    with pytest.raises(NotebookFailed, match=r"cell \d+: ConfigError: corruption 'fog' does not run") as err:
        run_notebook(notebook, out / "05-bad.ipynb", parameters={**given, "corruptions": ["fog"]},
                     cwd=project / "notebooks")
    assert err.value.user_mistake and "\n" not in str(err.value)


def test_the_uncertainty_scores_judge_the_prediction_that_evaluation_scores(synthetic_root):
    """Confidence and errors are those of the prediction evaluation scores: the pixel accuracy that the
    reliability bins hold is score_dataset's aAcc on the same images, for the baseline and for AIBR's samples."""
    from aiblib.evaluation import score_dataset, test_pipeline
    from aiblib.evaluation.robustness import Runs, score_uncertainty
    from aiblib.model import build_model

    cfg = load_config(None, tiny_overrides(synthetic_root, synthetic_root / "unused", test_samples=4))
    torch.manual_seed(0)
    models = {"baseline": build_model(cfg.replace(attention=False)).eval(), "AIBR": build_model(cfg).eval()}
    with torch.no_grad():  # logits spread over units, not 1e-3: their softmax and their resizing then matter
        for model in models.values():
            model.decode_head.conv_seg.weight.mul_(5000)
    runs = Runs(cfg=cfg, models=models, device=torch.device("cpu"), use_bf16=False)
    _, bins = score_uncertainty(runs, protocol="dg", domains=["bdd100k:val"])
    data = build_dataset("bdd100k", synthetic_root, "val", test_pipeline(cfg))
    for method, model in models.items():
        held = bins[bins["method"] == method]
        accuracy = 100 * (held["count"] * held["accuracy"]).sum() / held["count"].sum()
        assert accuracy == pytest.approx(score_dataset(model, data, cfg=cfg, device=torch.device("cpu"))["metrics"]["aAcc"],
                                         abs=1e-9), method
