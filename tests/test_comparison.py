"""Paired-seed comparison: the Student-t arithmetic on known numbers, and the pairing."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from aiblib.reporting import COLUMNS, paired_comparison, plot_comparison, recorded, t_interval


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
    return pd.DataFrame(rows, columns=["protocol", "method", "seed", "cityscapes:val", "bdd100k:val"])


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
