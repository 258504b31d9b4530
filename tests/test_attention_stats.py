"""The attention's diagnostics: level, selectivity, noise, information and per-class means, on hand-made maps."""

from __future__ import annotations

import math

import pytest
import torch

from aiblib.data import CAMVID_CLASSES, CLASSES, IGNORE_INDEX
from aiblib.evaluation.attention_stats import STAT_KEYS, AttentionStats


def _outputs(mu: torch.Tensor, std: float, kl: float) -> dict:
    return {"mu": mu, "std": torch.full_like(mu, std), "kl": torch.tensor(kl)}


def test_a_constant_gain_has_no_selectivity_and_a_selective_map_has_its_spread():
    stats = AttentionStats(num_classes=19)
    stats.add(_outputs(torch.full((1, 1, 4, 4), 0.9), std=0.1, kl=5.0))
    constant = stats.result()
    assert constant["mu_mean"] == pytest.approx(0.9) and constant["mu_spatial_std"] == pytest.approx(0.0)
    assert constant["std_mean"] == pytest.approx(0.1) and constant["selectivity_to_noise"] == pytest.approx(0.0)
    assert constant["kl_bits"] == pytest.approx(5.0) and constant["num_images"] == 1

    half = torch.zeros(1, 1, 4, 4)
    half[..., :2] = 1.0  # half the image attended, half not: spatial std 0.5
    stats.add(_outputs(half, std=0.3, kl=1.0))
    both = stats.result()
    assert both["num_images"] == 2
    assert both["mu_mean"] == pytest.approx((0.9 + 0.5) / 2)
    assert both["mu_spatial_std"] == pytest.approx((0.0 + 0.5) / 2)
    assert both["std_mean"] == pytest.approx(0.2) and both["kl_bits"] == pytest.approx(3.0)
    assert both["selectivity_to_noise"] == pytest.approx(0.25 / 0.2)
    assert set(STAT_KEYS) <= set(both)


def test_per_class_means_follow_the_labels_at_their_own_size():
    mu = torch.zeros(1, 1, 2, 2)
    mu[..., 0, :] = 1.0  # the top half attended
    label = torch.full((8, 8), IGNORE_INDEX)
    label[:2] = 10   # sky at the very top: mu 1 there (bilinear keeps the edge rows at 1)
    label[-2:] = 0   # road at the very bottom: mu 0
    stats = AttentionStats(num_classes=19)
    stats.add(_outputs(mu, std=0.1, kl=0.0), label)
    per_class = stats.result()["mu_per_class"]
    assert list(per_class) == list(CLASSES)
    assert per_class["sky"] == pytest.approx(1.0) and per_class["road"] == pytest.approx(0.0)
    assert per_class["car"] is None  # absent from the labels


def test_camvid_per_class_means_are_in_its_eleven_classes():
    mu = torch.full((1, 1, 2, 2), 0.25)
    label = torch.full((4, 4), 2)  # read as building (trainId 2, CamVid's building group)
    stats = AttentionStats(num_classes=19, dataset="camvid")
    stats.add(_outputs(mu, std=0.1, kl=0.0), label)
    per_class = stats.result()["mu_per_class"]
    assert list(per_class) == list(CAMVID_CLASSES) and per_class["building"] == pytest.approx(0.25)


def test_a_model_without_attention_has_no_stats():
    stats = AttentionStats(num_classes=19)
    stats.add({"out": torch.zeros(1, 19, 2, 2)})
    assert stats.result() is None
    zero_noise = AttentionStats(num_classes=19)
    zero_noise.add(_outputs(torch.rand(1, 1, 3, 3), std=0.0, kl=0.0))
    assert math.isinf(zero_noise.result()["selectivity_to_noise"])


def test_scoring_records_the_attention_of_every_image_it_scored(synthetic_root, tmp_path):
    from conftest import tiny_checkpoint

    from aiblib.data import build_dataset
    from aiblib.evaluation import evaluate_checkpoint, test_pipeline
    from aiblib.storage import load_model

    cfg, path = tiny_checkpoint(synthetic_root, tmp_path, attention=True)
    summary = evaluate_checkpoint(cfg, path, dataset="bdd100k", split="val", out_dir=tmp_path / "eval", quiet=True)
    stats = summary["attention_stats"]
    assert stats["num_images"] == summary["num_images"] == 2
    # by hand: the model's own mu on each test image
    model = load_model(path).eval()
    data = build_dataset("bdd100k", synthetic_root, "val", test_pipeline(cfg))
    with torch.no_grad():
        mus = [model(data[i]["image"][None])["mu"] for i in range(len(data))]
    assert stats["mu_mean"] == pytest.approx(float(torch.stack([m.mean() for m in mus]).mean()), rel=1e-5)
    assert stats["mu_spatial_std"] == pytest.approx(float(torch.stack([m.std(unbiased=False) for m in mus]).mean()),
                                                    rel=1e-4)
    labelled = [c for c, v in stats["mu_per_class"].items() if v is not None]
    assert labelled and all(0.0 <= stats["mu_per_class"][c] <= 1.0 for c in labelled)
    baseline_cfg, baseline = tiny_checkpoint(synthetic_root, tmp_path / "b", attention=False)
    assert evaluate_checkpoint(baseline_cfg, baseline, dataset="bdd100k", split="val", out_dir=tmp_path / "b" / "eval",
                               quiet=True)["attention_stats"] is None


def test_training_logs_the_attention_at_each_validation(synthetic_root, tmp_path):
    from conftest import tiny_config

    from aiblib.storage import read_log
    from aiblib.training import train

    run_dir = train(tiny_config(synthetic_root, tmp_path / "run", iterations=4, val_interval=2))
    val = read_log(run_dir, "val")
    assert list(val["iteration"]) == [2, 4]
    for key in STAT_KEYS:
        assert val[f"attention/{key}"].notna().all(), key
    assert (val["attention/mu_mean"].between(0, 1)).all() and (val["attention/kl_bits"] > 0).all()
    baseline = train(tiny_config(synthetic_root, tmp_path / "baseline", iterations=2, val_interval=2, attention=False))
    assert not any(c.startswith("attention/") for c in read_log(baseline, "val").columns)


def test_the_reports_name_the_same_statistics_as_evaluation():
    from aiblib.reporting import attention_report

    assert attention_report.STAT_KEYS == STAT_KEYS


def test_reports_tabulate_the_statistics_per_beta_and_mu_per_class(tmp_path):
    import json

    from aiblib.reporting import attention_report

    def run(name, beta, seed, spread, day):
        stats = {"mu_mean": 0.5, "mu_spatial_std": spread, "std_mean": 0.1, "selectivity_to_noise": spread / 0.1,
                 "kl_bits": 2.0, "num_images": 3, "mu_per_class": {"road": day, "sky": None}}
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.json").write_text(json.dumps({
            "name": name, "protocol": "camvid-dusk", "depth": 18, "beta": beta, "seed": seed, "attention": True,
            "scores": {"camvid:dusk": {"mIoU": 30.0 + seed}, "camvid:val": {"mIoU": 40.0}},
            "attention_stats": {"camvid:dusk": stats, "camvid:val": {**stats, "mu_per_class": {"road": 0.9, "sky": 0.2}}}}))

    run("a-b0-s0", 0.0, 0, 0.02, 0.3)
    run("a-b0-s1", 0.0, 1, 0.04, 0.3)
    run("a-b1-s0", 0.1, 0, 0.10, 0.3)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "scores.json").write_text(json.dumps({
        "name": "base", "protocol": "camvid-dusk", "depth": 18, "beta": 0.001, "seed": 0, "attention": False,
        "scores": {"camvid:dusk": {"mIoU": 1.0}}, "attention_stats": {"camvid:dusk": None}}))
    runs = attention_report.attention_runs(tmp_path)
    assert len(runs) == 6 and "base" not in set(runs["name"])
    table = attention_report.attention_by_beta(runs)
    dusk0 = table[(table["beta"] == 0.0) & (table["domain"] == "camvid:dusk")].iloc[0]
    assert dusk0["seeds"] == 2 and dusk0["mu_spatial_std mean"] == pytest.approx(0.03)
    assert dusk0["mIoU mean"] == pytest.approx(30.5) and dusk0["mIoU std"] == pytest.approx(0.7071, abs=1e-4)
    assert table[(table["beta"] == 0.1)]["seeds"].tolist() == [1, 1]
    per_class = attention_report.mu_per_class(json.loads((tmp_path / "a-b0-s0" / "scores.json").read_text()))
    assert per_class.loc["road", "camvid:val"] == 0.9 and per_class.loc["road", "camvid:dusk"] == 0.3
    assert math.isnan(per_class.loc["sky", "camvid:dusk"])
    assert attention_report.mu_per_class(json.loads((tmp_path / "base" / "scores.json").read_text())) is None
    import pandas as pd

    summary = pd.DataFrame([{"protocol": "camvid-dusk", "depth": 18, "method": "baseline", "camvid:dusk mean": 1.0},
                            {"protocol": "dg", "depth": 18, "method": "baseline", "camvid:dusk mean": 9.0}])
    fig = attention_report.plot_against_beta(table, summary=summary)
    miou = fig.axes[0]
    dashed = [line.get_ydata()[0] for line in miou.get_lines() if line.get_linestyle() == "--"]
    assert len(fig.axes) == 2 and dashed == [1.0]  # the baseline of this protocol only
