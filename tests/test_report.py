"""Gathering runs: scores.json -> one table, mean ± std over seeds, markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aiblib.config import Config
from aiblib.reporting import report


def _run(root: Path, name: str, *, attention: bool, beta: float, seed: int, src: float, tgt: float,
         lr: float = 0.01) -> None:
    cfg = Config.from_dict({"name": name, "protocol": "dg", "depth": 18, "output_stride": 16, "attention": attention,
                            "beta": beta, "seed": seed, "iterations": 10, "lr": lr})
    scores = {
        "cityscapes:val": {"mIoU": src, "mAcc": 0.0, "aAcc": 0.0, "num_images": 2, "per_class": []},
        "bdd100k:val": {"mIoU": tgt, "mAcc": 0.0, "aAcc": 0.0, "num_images": 2, "per_class": []},
    }
    (root / name).mkdir(parents=True)
    report.write_scores(root / name, cfg, scores, checkpoint="x.pth")


def test_collect_and_summarize_average_over_seeds(tmp_path):
    _run(tmp_path, "b0", attention=False, beta=1e-3, seed=0, src=50.0, tgt=20.0)
    _run(tmp_path, "b1", attention=False, beta=1e-3, seed=1, src=52.0, tgt=24.0)
    _run(tmp_path, "a0", attention=True, beta=1e-3, seed=0, src=55.0, tgt=30.0)
    _run(tmp_path, "a1", attention=True, beta=1e-3, seed=1, src=57.0, tgt=34.0)
    _run(tmp_path, "z0", attention=True, beta=0.0, seed=0, src=40.0, tgt=10.0)
    runs = report.collect(tmp_path)
    assert len(runs) == 5 and set(runs["method"]) == {"AIBR", "baseline"}
    assert math.isnan(runs.loc[runs["name"] == "b0", "beta"].item())  # the baseline has no β
    summary = report.summarize(runs)
    assert len(summary) == 3  # baseline, AIBR β=0, AIBR β=1e-3
    aib = summary[(summary["method"] == "AIBR") & (summary["beta"] == 1e-3)].iloc[0]
    assert aib["seeds"] == 2
    assert aib["bdd100k:val mean"] == pytest.approx(32.0)
    assert aib["bdd100k:val std"] == pytest.approx(math.sqrt(8.0))  # sample std of 30, 34
    single = summary[summary["beta"] == 0.0].iloc[0]
    assert single["seeds"] == 1 and math.isnan(single["cityscapes:val std"])
    text = report.markdown(runs, summary)
    assert "| protocol | depth | method | beta | recipe | seeds |" in text and "32.00" in text
    assert (summary["recipe"] == "").all()  # one recipe: nothing to name
    fig = report.plot_beta(runs)
    assert len(fig.axes) == 1


def test_summarize_keeps_two_recipes_of_one_method_and_beta_apart_and_names_what_differs(tmp_path):
    # two recipes (lr 0.01 and 0.1) of AIBR at one β: averaging them would report one made-up configuration
    _run(tmp_path, "a0", attention=True, beta=1e-3, seed=0, src=50.0, tgt=20.0)
    _run(tmp_path, "a1", attention=True, beta=1e-3, seed=1, src=52.0, tgt=22.0)
    _run(tmp_path, "f0", attention=True, beta=1e-3, seed=0, src=30.0, tgt=10.0, lr=0.1)
    _run(tmp_path, "b0", attention=False, beta=1e-3, seed=0, src=40.0, tgt=15.0)
    summary = report.summarize(report.collect(tmp_path))
    aibr = summary[summary["method"] == "AIBR"].set_index("recipe")
    assert sorted(aibr.index) == ["lr=0.01", "lr=0.1"]
    assert aibr.loc["lr=0.01", "seeds"] == 2 and aibr.loc["lr=0.01", "cityscapes:val mean"] == pytest.approx(51.0)
    assert aibr.loc["lr=0.1", "seeds"] == 1 and aibr.loc["lr=0.1", "cityscapes:val mean"] == pytest.approx(30.0)
    assert summary.loc[summary["method"] == "baseline", "recipe"].tolist() == ["lr=0.01"]


def test_scores_json_records_every_experiment_key(tmp_path):
    _run(tmp_path, "a0", attention=True, beta=1e-2, seed=3, src=55.0, tgt=30.0)
    saved = json.loads((tmp_path / "a0" / "scores.json").read_text())
    cfg = Config.from_dict({"depth": 18, "output_stride": 16, "beta": 1e-2, "iterations": 10, "protocol": "dg"})
    assert {k: saved[k] for k in report.EXPERIMENT_KEYS} == {k: getattr(cfg, k) for k in report.EXPERIMENT_KEYS}
    assert saved["crop_size"] == [512, 1024] and saved["lr"] == 0.01 and saved["seed"] == 3 and saved["attention"]
    runs = report.collect(tmp_path, keys=("crop_size", "lr", "beta"))
    assert runs[["crop_size", "lr", "beta"]].values.tolist() == [[(512, 1024), 0.01, 1e-2]]


def test_collect_names_the_folder_when_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="scores.json"):
        report.collect(tmp_path)


def test_per_class_table_keeps_absent_classes_as_nan():
    scores = {"a:val": {"per_class": [{"class": "road", "IoU": 90.0}, {"class": "train", "IoU": None}]}}
    table = report.per_class_table(scores)
    assert table.loc["road", "a:val"] == 90.0 and math.isnan(table.loc["train", "a:val"])
    assert json.loads(json.dumps(scores))  # inputs stay plain JSON


def test_plot_beta_draws_each_recipe_in_its_own_panel_with_its_own_baseline(tmp_path):
    _run(tmp_path, "a0", attention=True, beta=1e-3, seed=0, src=50.0, tgt=20.0)
    _run(tmp_path, "a1", attention=True, beta=1e-3, seed=1, src=52.0, tgt=22.0)
    _run(tmp_path, "b0", attention=False, beta=1e-3, seed=0, src=40.0, tgt=15.0)
    _run(tmp_path, "f0", attention=True, beta=1e-3, seed=0, src=30.0, tgt=10.0, lr=0.1)
    _run(tmp_path, "g0", attention=False, beta=1e-3, seed=0, src=60.0, tgt=25.0, lr=0.1)
    fig = report.plot_beta(report.collect(tmp_path))
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert sorted(panels) == ["protocol dg, ResNet-18\nlr=0.01", "protocol dg, ResNet-18\nlr=0.1"]
    for title, aibr, baseline in (("protocol dg, ResNet-18\nlr=0.01", 51.0, 40.0),
                                  ("protocol dg, ResNet-18\nlr=0.1", 30.0, 60.0)):
        ax = panels[title]
        source = next(line for line in ax.get_lines() if line.get_marker() == "o" and line.get_color() == "C0")
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--" and line.get_color() == "C0"]
        assert source.get_ydata().tolist() == [aibr] and dashed[0].get_ydata()[0] == baseline
