"""Pictures: colours, heat maps, overlays and plots drawn from data handed to them."""

from __future__ import annotations

import json

import numpy as np

from aiblib import viz
from aiblib.runlog import RunLog, read_log


def test_colorize_heatmap_overlay_shapes_and_values():
    palette = [(10, 20, 30), (40, 50, 60)]
    label = np.array([[0, 1], [255, 7]])
    rgb = viz.colorize(label, palette)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 1].tolist() == [40, 50, 60]
    assert rgb[1, 0].tolist() == [0, 0, 0] and rgb[1, 1].tolist() == [0, 0, 0]
    heat = viz.heatmap(np.array([[0.0, 1.0], [np.nan, 0.5]]))
    assert heat.shape == (2, 2, 3) and heat[1, 0].tolist() == [0, 0, 0]
    image = np.full((8, 12, 3), 100, np.uint8)
    out = viz.overlay(image, np.ones((2, 3)), alpha=0.5)
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8


def test_plot_helpers_draw_from_a_log_and_metrics(tmp_path):
    import matplotlib

    matplotlib.use("Agg")

    log = RunLog(tmp_path / "log.jsonl", enabled=True)
    for it in (1, 2, 3):
        log.write("train", it, loss=3.0 - it * 0.1, loss_ce=2.0, loss_aux=0.8, loss_kl=0.01, lr=0.01 / it,
                  mu_mean=0.5, mu_min=0.1, mu_max=0.9)
    log.write("val", 3, mIoU=10.0, IoU={"road": 50.0})
    fig = viz.plot_training(read_log(tmp_path, "train"), read_log(tmp_path, "val"))
    assert len(fig.axes) == 4 and fig.axes[0].get_lines()
    metrics = {"mIoU": 50.0, "per_class": [{"class": "road", "IoU": 100.0, "Acc": 100.0},
                                           {"class": "sky", "IoU": None, "Acc": None}]}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    fig = viz.plot_per_class({"a": metrics, "b": json.loads((tmp_path / "metrics.json").read_text())})
    assert len(fig.axes[0].patches) == 4
