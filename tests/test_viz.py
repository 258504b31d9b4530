"""Pictures: colours, heat maps, overlays and plots drawn from data handed to them."""

from __future__ import annotations

import numpy as np

from aiblib.reporting import viz
from aiblib.storage import RunLog, read_log


def test_colorize_and_heatmap_shapes_and_values():
    palette = [(10, 20, 30), (40, 50, 60)]
    label = np.array([[0, 1], [255, 7]])
    rgb = viz.colorize(label, palette)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 1].tolist() == [40, 50, 60]
    assert rgb[1, 0].tolist() == [0, 0, 0] and rgb[1, 1].tolist() == [0, 0, 0]
    heat = viz.heatmap(np.array([[0.0, 1.0], [np.nan, 0.5]]))
    assert heat.shape == (2, 2, 3) and heat[1, 0].tolist() == [0, 0, 0]


def test_plot_training_draws_from_a_log(tmp_path):
    import matplotlib

    matplotlib.use("Agg")

    log = RunLog(tmp_path / "log.jsonl", enabled=True)
    for it in (1, 2, 3):
        log.write("train", it, loss=3.0 - it * 0.1, loss_ce=2.0, loss_aux=0.8, loss_kl=0.01, lr=0.01 / it,
                  mu_mean=0.5, mu_min=0.1, mu_max=0.9)
    log.write("val", 3, mIoU=10.0, IoU={"road": 50.0}, attention={"mu_spatial_std": 0.04, "std_mean": 0.02})
    val = read_log(tmp_path, "val")
    assert val.loc[0, "IoU/road"] == 50.0 and val.loc[0, "attention/mu_spatial_std"] == 0.04
    fig = viz.plot_training(read_log(tmp_path, "train"), val)
    assert len(fig.axes) == 4 and fig.axes[0].get_lines()
    # the attention panel: the training batches' mean, then the validation's selectivity and noise
    lines = fig.axes[2].get_lines()
    assert [list(line.get_ydata()) for line in lines[1:]] == [[0.04], [0.02]]


def _maps(seed: int = 0, *, attention: bool = True, size=(32, 64)) -> dict:
    rng = np.random.default_rng(seed)
    maps = {"pred": rng.integers(0, 19, size), "entropy": rng.random(size) * 2.0, "mi": rng.random(size) * 1e-4}
    if attention:
        maps["mu"] = rng.random(size)
        maps["masks"] = np.stack([maps["mu"] + 0.01 * rng.standard_normal(size) for _ in range(4)])
    return maps


def test_every_kind_of_map_has_one_fixed_stated_scale():
    import math

    styles = viz.MAP_STYLES
    assert (styles["mu"].vmin, styles["mu"].vmax) == (0.0, 1.0) and "0 to 1" in styles["mu"].label
    assert styles["entropy"].vmax == math.log(19) and "ln 19" in styles["entropy"].label
    assert styles["mi"].log and "log scale" in styles["mi"].label
    assert styles["mu"].cmap == styles["mask"].cmap  # one colour map for mu, in the browser and in the figures
    # a fixed scale: a map of 1e-4 nats is not stretched to look like one of 2 nats
    small, large = viz.style_rgb(np.full((2, 2), 1e-4), styles["entropy"]), viz.style_rgb(np.full((2, 2), 2.0), styles["entropy"])
    assert small.mean() < large.mean() / 3
    assert viz.map_values(_maps(attention=False), "mu") is None and viz.map_values(_maps(), "spread").shape == (32, 64)


def test_static_figures_are_readable_at_notebook_width_with_colourbars_and_legend():
    import matplotlib

    matplotlib.use("Agg")
    image = np.full((3, 32, 64), 120, np.uint8)
    label = np.zeros((32, 64), np.int64)
    fig = viz.prediction_figure(image, label, _maps(1, attention=False), _maps(2), title="t")
    assert fig.get_size_inches()[0] <= 10 and len(fig.legends[0].get_texts()) == 19
    fig = viz.uncertainty_figure(image, _maps(1, attention=False), _maps(2), title="t")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert fig.get_size_inches()[0] <= 10 and len(bars) == 5  # one shared by the two entropies
    assert any("log scale" in ax.get_xlabel() for ax in bars)
    for name in viz.MAP_NAMES:
        fig = viz.compare_figure(image, _maps(1, attention=False), _maps(2), name, opacity=0.5)
        assert len(fig.axes) == (2 if name == "prediction" else 3) and (name != "prediction" or fig.legends)


def test_the_attention_browser_redraws_for_each_control():
    from aiblib.notebooks import AttentionBrowser

    image = np.full((3, 32, 64), 120, np.uint8)
    asked = []

    def maps_for(domain: str, index: int) -> dict:
        asked.append((domain, index))
        return {"image": image, "name": f"{domain}-{index}", "baseline": _maps(index, attention=False),
                "AIBR": _maps(index + 10)}

    browser = AttentionBrowser({"cityscapes:val": ["a.png", "b.png", "c.png"], "bdd100k:val": ["x.jpg"]}, maps_for)
    assert [o[0] for o in browser.image.options] == ["a.png", "b.png", "c.png"]
    assert list(browser.map.options) == list(viz.MAP_NAMES) and "0 to ln 19" in browser.caption.value
    pictures = [browser.picture.value]
    for control, value in ((browser.map, "mutual information"), (browser.image, 2), (browser.opacity, 0.9),
                           (browser.domain, "bdd100k:val")):
        setattr(control, "value", value)
        assert browser.picture.value not in pictures, f"the picture did not change with {control.description}"
        pictures.append(browser.picture.value)
    assert asked[-1] == ("bdd100k:val", 0) and "x.jpg" in browser.caption.value
    assert [o[0] for o in browser.image.options] == ["x.jpg"]
