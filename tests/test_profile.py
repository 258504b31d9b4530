"""``python -m aiblib profile --tiny-cpu``: the training profile's code path on the CPU at toy sizes."""

from __future__ import annotations

import json

import pytest

from aiblib.cli.profile import main
from aiblib.tools import ProfilePlan


def test_the_profile_runs_every_variant_and_place_on_the_cpu_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert main(["--tiny-cpu", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["variant"], r["augment"]) for r in rows] == [
        ("fp32", "cpu"), ("bf16+channels_last", "cpu"), ("fp32", "device"), ("bf16+channels_last", "device")]
    plan = result["plan"]
    for r in rows:  # the throughput is the images over the time the same record measured
        assert r["images_per_s"] == pytest.approx(plan["images"] / (r["ms_per_iteration"] / 1000), rel=1e-12)
        first = next(f for f in rows if f["augment"] == r["augment"])
        assert r["vs first"] == pytest.approx(r["images_per_s"] / first["images_per_s"], rel=1e-12)
        assert 0 <= r["data wait ms"] <= r["ms_per_iteration"]  # 2 iterations: the median wait is their mean
    assert plan["iterations"] == 2 and rows[0]["vs first"] == 1.0 and rows[2]["vs first"] == 1.0
    assert all(r["top"] and r["top"][0]["ms_per_iteration"] > 0 for r in rows)  # the profiler's operators
    printed = capsys.readouterr().out
    assert "| variant | augment | images_per_s |" in printed and "on CPU" in printed


def test_an_unknown_variant_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown variant or augmentation place"):
        ProfilePlan(variants=("fp16",))
