"""Paired-seed comparison: the Student-t and power arithmetic on known numbers, the pairing within one
configuration (as scores.json records it), and runs that disagree."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aiblib.config import CONFIG_KEYS, RUNTIME_KEYS, Config
from aiblib.errors import UserError
from aiblib.reporting import COLUMNS, comparison, paired_comparison, plot_comparison, recorded, report, t_interval


def test_t_interval_on_known_numbers():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) * sd 1 / sqrt(3)
    assert mean == pytest.approx(2.0) and low == pytest.approx(2.0 - half) and high == pytest.approx(2.0 + half)
    mean, low, high = t_interval([0.5, -0.5, 1.5, 2.5], confidence=0.9)
    sd = np.std([0.5, -0.5, 1.5, 2.5], ddof=1)
    assert high - mean == pytest.approx(2.3533634348018264 * sd / 2)  # t(0.95, df=3)
    mean, low, high = t_interval([4.0])
    assert mean == 4.0 and math.isnan(low) and math.isnan(high)


def _runs(rows):
    runs = pd.DataFrame(rows, columns=["protocol", "method", "seed", "cityscapes:val", "bdd100k:val"])
    return runs.assign(depth=18, beta=[1e-3 if m == "AIBR" else math.nan for m in runs["method"]])


def test_runs_are_paired_by_seed_and_unpaired_seeds_dropped():
    runs = _runs([
        ["dg", "baseline", 0, 40.0, 20.0], ["dg", "AIBR", 0, 41.0, 23.0],
        ["dg", "baseline", 1, 44.0, 21.0], ["dg", "AIBR", 1, 44.5, 22.0],
        ["dg", "baseline", 2, 42.0, 19.0], ["dg", "AIBR", 2, 44.0, 21.0],
        ["dg", "AIBR", 3, 99.0, 99.0],  # no baseline with seed 3: not paired
    ])
    table = paired_comparison(runs)
    assert list(table.columns) == COLUMNS and len(table) == 2
    city = table[table["domain"] == "cityscapes:val"].iloc[0]
    assert city["seeds"] == 3 and city["baseline_mean"] == pytest.approx(42.0)
    assert city["aibr_mean"] == pytest.approx((41 + 44.5 + 44) / 3)
    diffs = [1.0, 0.5, 2.0]
    mean, low, high = t_interval(diffs)
    assert (city["diff_mean"], city["diff_ci_low"], city["diff_ci_high"]) == pytest.approx((mean, low, high))
    assert low < 0 < high  # three seeds: this interval spans 0
    plot_comparison(table)  # draws without error


def test_a_protocol_with_one_method_only_has_no_row():
    runs = _runs([["night", "baseline", 0, 30.0, None], ["dg", "baseline", 0, 40.0, 20.0], ["dg", "AIBR", 0, 42.0, 21.0]])
    table = paired_comparison(runs)
    assert set(table["protocol"]) == {"dg"} and set(table["seeds"]) == {1}
    assert math.isnan(table.iloc[0]["diff_ci_low"])


def test_recorded_comparisons_are_those_with_a_device_file(tmp_path):
    row = {"protocol": "dg", "domain": "cityscapes:val", "baseline_mean": 63.4, "aibr_mean": 62.9, "diff_mean": -0.5,
           "diff_ci_low": -0.9, "diff_ci_high": -0.1, "seeds": 4}
    for folder, device in (("seeds-dg-r50-h200", "NVIDIA H200"), ("seeds-dg", None)):
        (tmp_path / folder).mkdir()
        pd.DataFrame([row], columns=COLUMNS).to_csv(tmp_path / folder / "comparison.csv", index=False)
        if device:
            (tmp_path / folder / "device.json").write_text(json.dumps({"device": device}))
    table = recorded(tmp_path)
    assert list(table.columns) == ["folder", "device", *COLUMNS]
    assert table[["folder", "device", "diff_mean", "seeds"]].values.tolist() == [["seeds-dg-r50-h200", "NVIDIA H200", -0.5, 4]]
    assert recorded(tmp_path / "seeds-dg") is None


def test_power_of_the_paired_t_test_on_textbook_numbers_and_a_monte_carlo():
    # pairs needed for a standardized effect d = 1 / sd at 80 % power, two-sided 5 % (Cohen; G*Power's matched pairs)
    assert [comparison.seeds_needed(1.0, sd) for sd in (2.0, 1.25, 1.0)] == [34, 15, 10]
    normal = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 5.0) ** 2  # 196.2: the t-test needs a few more
    assert normal < comparison.seeds_needed(1.0, 5.0) <= normal + 4
    assert comparison.min_detectable_diff(2.0, 400) == pytest.approx(2.8016 * 2.0 / 20, rel=0.01)  # z-approximation
    rng = np.random.default_rng(0)
    for n, sd in ((3, 2.0), (5, 0.7)):
        diff = comparison.min_detectable_diff(sd, n)
        draws = rng.normal(diff, sd, size=(200_000, n))
        t = draws.mean(axis=1) / (draws.std(axis=1, ddof=1) / math.sqrt(n))
        assert np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1)) == pytest.approx(0.8, abs=0.005)
    assert comparison.min_detectable_diff(0.0, 3) == 0.0 and comparison.seeds_needed(1.0, 0.0) == 2
    assert math.isnan(comparison.min_detectable_diff(1.0, 1)) and math.isnan(comparison.seeds_needed(1.0, math.nan))


def test_power_columns_come_from_the_observed_sd_of_the_differences():
    runs = _runs([
        ["dg", "baseline", 0, 40.0, 20.0], ["dg", "AIBR", 0, 41.0, 21.0],
        ["dg", "baseline", 1, 44.0, 21.0], ["dg", "AIBR", 1, 44.5, 22.0],
        ["dg", "baseline", 2, 42.0, 19.0], ["dg", "AIBR", 2, 44.0, 20.0],
        ["night", "baseline", 0, 30.0, None], ["night", "AIBR", 0, 31.0, None],
    ])
    table = paired_comparison(runs).set_index(["protocol", "domain"])
    sd = np.std([1.0, 0.5, 2.0], ddof=1)
    city = table.loc[("dg", "cityscapes:val")]
    assert city["diff_sd"] == pytest.approx(sd)
    assert city["min_detectable_diff"] == pytest.approx(comparison.min_detectable_diff(sd, 3))
    assert city["seeds_for_1pt"] == comparison.seeds_needed(1.0, sd)
    bdd = table.loc[("dg", "bdd100k:val")]  # every seed +1: sd 0
    assert bdd["diff_sd"] == 0 and bdd["min_detectable_diff"] == 0 and bdd["seeds_for_1pt"] == 2
    night = table.loc[("night", "cityscapes:val")]  # one seed
    assert math.isnan(night["diff_sd"]) and math.isnan(night["min_detectable_diff"]) and pd.isna(night["seeds_for_1pt"])


def test_the_experiment_keys_are_config_keys_and_every_key_a_resume_must_keep():
    assert set(report.EXPERIMENT_KEYS) <= CONFIG_KEYS and set(report.ATTENTION_KEYS) <= set(report.EXPERIMENT_KEYS)
    paired_on = {"attention", "seed"}  # the method and the pairing
    same_logits = {"multisample"}
    assert CONFIG_KEYS - set(RUNTIME_KEYS) - paired_on - same_logits <= set(report.EXPERIMENT_KEYS)


R50 = {"depth": 50, "output_stride": 8, "iterations": 600, "lr": 0.05}  # as params/synthetic-dg-r50.yaml
NOISE = [0.3, -0.1, -0.2]  # per seed, summing to 0: each configuration's mean difference is exact


def _write(folder: Path, name: str, *, attention: bool, seed: int, miou: float, **keys) -> Path:
    cfg = Config.from_dict({"name": name, "protocol": "dg", "depth": 18, "output_stride": 16, "iterations": 1050,
                            "attention": attention, "seed": seed, **keys})
    (folder / name).mkdir(parents=True)
    scores = {"cityscapes:val": {"mIoU": miou, "num_images": 2}, "bdd100k:val": {"mIoU": miou / 2, "num_images": 2}}
    report.write_scores(folder / name, cfg, scores, checkpoint="x.pth")
    return folder / name / "scores.json"


def _configuration(folder: Path, diff: float, *, baseline: bool = True, **keys) -> None:
    """AIBR runs of seeds 0-2 whose mIoU is the baseline's + ``diff`` (+ NOISE), and the baseline runs."""
    tag = "-".join(f"{k}{v}" for k, v in keys.items()) or "default"
    for seed in range(3):
        base = 40.0 + 3 * seed + keys.get("depth", 18) / 10
        if baseline:
            _write(folder, f"base-{tag}-s{seed}", attention=False, seed=seed, miou=base, **keys)
        _write(folder, f"aib-{tag}-s{seed}", attention=True, seed=seed, miou=base + diff + NOISE[seed], **keys)


def _diffs(table: pd.DataFrame, domain: str = "cityscapes:val") -> dict:
    rows = table[table["domain"] == domain]
    return {(r.depth, r.beta, r.recipe): round(r.diff_mean, 9) for r in rows.itertuples()}


def test_each_configuration_pairs_with_its_own_baseline_and_others_never_change_its_row(tmp_path):
    """The reviewer's case: R18 at β 1e-3 (+1), R18 at β 1e-1 (-10) and R50 at β 1e-3 (+0.5) over 3 seeds gave one
    row of -6.33 when runs were pivoted on seed and method only."""
    _configuration(tmp_path / "results", 1.0, beta=1e-3)
    _configuration(tmp_path / "seeds-beta", -10.0, baseline=False, beta=1e-1)  # the R18 baselines are β-free
    _configuration(tmp_path / "seeds-r50", 0.5, beta=1e-3, **R50)
    alone = comparison.gather([tmp_path / "results"])
    table = comparison.gather([tmp_path / "results", tmp_path / "seeds-beta", tmp_path / "seeds-r50"])
    assert list(table.columns) == COLUMNS and len(table) == 6 and (table["seeds"] == 3).all()
    assert _diffs(table) == {(18, 1e-3, ""): 1.0, (18, 0.1, ""): -10.0, (50, 1e-3, ""): 0.5}
    assert _diffs(table, "bdd100k:val") == {(18, 1e-3, ""): 0.5, (18, 0.1, ""): -5.0, (50, 1e-3, ""): 0.25}
    r18 = table[(table["depth"] == 18) & (table["beta"] == 1e-3)].reset_index(drop=True)
    pd.testing.assert_frame_equal(r18, alone)
    labels = [t.get_text() for t in plot_comparison(table).axes[0].get_xticklabels()]
    assert labels[:2] == ["dg R18 β 0.001\ncityscapes:val", "dg R18 β 0.001\nbdd100k:val"]
    assert "dg R50 β 0.001\ncityscapes:val" in labels and "dg R18 β 0.1\nbdd100k:val" in labels


def test_a_recipe_key_keeps_configurations_apart_and_names_them(tmp_path):
    _configuration(tmp_path, 1.0, lr=0.1)
    _configuration(tmp_path, 3.0, lr=0.2)
    _configuration(tmp_path, 9.0, baseline=False, lr=0.3)  # no baseline trained at lr 0.3: no row
    table = comparison.gather([tmp_path])
    assert _diffs(table) == {(18, 1e-3, "lr=0.1"): 1.0, (18, 1e-3, "lr=0.2"): 3.0}


def test_a_key_an_older_scores_json_lacks_is_unknown_and_never_pooled_with_a_recorded_one(tmp_path):
    _configuration(tmp_path / "new", 1.0)
    _configuration(tmp_path / "old", -5.0)  # the same seeds, as written before the keys were recorded
    older = {"name", "protocol", "depth", "output_stride", "attention", "beta", "seed", "iterations", "checkpoint",
             "scores"}
    for path in (tmp_path / "old").glob("*/scores.json"):
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k in older}))
    runs = report.collect(tmp_path / "old", keys=report.EXPERIMENT_KEYS)
    assert (runs["lr"] == report.UNRECORDED).all() and (runs["output_stride"] == 16).all()
    table = comparison.gather([tmp_path / "new", tmp_path / "old"])
    rows = table[table["domain"] == "cityscapes:val"].set_index("diff_mean")
    assert sorted(rows.index.round(9)) == [-5.0, 1.0] and (rows["seeds"] == 3).all()
    assert "lr=?" in rows.loc[rows.index < 0, "recipe"].item() and "lr=0.01" in rows.loc[rows.index > 0, "recipe"].item()
    assert report.collect(tmp_path / "new", keys=("crop_size",))["crop_size"].tolist() == [(512, 1024)] * 6


def test_a_run_gathered_twice_counts_once_and_two_runs_that_disagree_are_named(tmp_path):
    _configuration(tmp_path / "results", 1.0)
    (tmp_path / "copy").mkdir()
    for path in (tmp_path / "results").glob("*-s1/scores.json"):  # the same runs in a second folder
        (tmp_path / "copy" / path.parent.name).mkdir()
        (tmp_path / "copy" / path.parent.name / "scores.json").write_text(path.read_text())
    once = comparison.gather([tmp_path / "results"])
    pd.testing.assert_frame_equal(comparison.gather([tmp_path / "results", tmp_path / "copy"]), once)
    for method, attention in (("aib", True), ("base", False)):
        rerun = tmp_path / f"seeds-{method}"  # the same configuration and seed trained again, scoring differently
        _write(rerun, f"{method}-rerun-s1", attention=attention, seed=1, miou=47.5)
        with pytest.raises(UserError) as caught:
            comparison.gather([tmp_path / "results", rerun])
        message = str(caught.value)
        assert "\n" not in message and "seed 1" in message and "47.5000" in message
        assert f"{method}-default-s1 ({tmp_path / 'results'})" in message and f"{method}-rerun-s1 ({rerun})" in message


def test_the_precision_a_training_recorded_keeps_configurations_apart(tmp_path):
    _configuration(tmp_path / "fp32", 1.0)
    _configuration(tmp_path / "bf16", -4.0)  # the same seeds and keys, trained in bf16
    _configuration(tmp_path / "older", 7.0)  # scored before the precision was recorded
    for folder, precision in (("fp32", "fp32"), ("bf16", "bf16")):
        for path in (tmp_path / folder).glob("*/scores.json"):
            scores = json.loads(path.read_text())
            path.write_text(json.dumps({**scores, "training": [{"iteration": 0, "precision": precision}]}))
    assert report.trained_precision({"training": [{"precision": "bf16"}, {"precision": "fp32"}]}) == "mixed"
    assert report.trained_precision({}) == report.UNRECORDED
    table = comparison.gather([tmp_path / "fp32", tmp_path / "bf16", tmp_path / "older"])
    rows = table[table["domain"] == "cityscapes:val"].set_index("recipe")["diff_mean"].round(9).to_dict()
    assert rows == {"precision=fp32": 1.0, "precision=bf16": -4.0, "precision=?": 7.0}
