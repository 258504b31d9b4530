from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from aiblib.metrics import confusion_matrix, format_table, metrics_from_confusion


def test_hand_built_confusion_case():
    # 4 classes; class 3 appears nowhere (absent -> NaN, skipped); one ignored pixel
    label = torch.tensor([[0, 0, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 2]])
    conf = confusion_matrix(pred, label, num_classes=4)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[2, 0] = 1, 1, 2, 1
    assert torch.equal(conf, expected)
    m = metrics_from_confusion(conf, ["a", "b", "c", "d"])
    # IoU: a = 1/(2+2-1), b = 2/(2+3-2), c = 0/(1+0-0), d absent
    assert m["IoU"][:3] == pytest.approx([100 / 3, 200 / 3, 0.0])
    assert math.isnan(m["IoU"][3]) and math.isnan(m["Acc"][3])
    assert m["mIoU"] == pytest.approx(100 / 3)
    # Acc: a = 1/2, b = 2/2, c = 0/1
    assert m["Acc"][:3] == pytest.approx([50.0, 100.0, 0.0])
    assert m["mAcc"] == pytest.approx(50.0)
    assert m["aAcc"] == pytest.approx(60.0)  # 3 of 5 labelled pixels
    table = format_table(m)
    assert "33.33" in table and "60.00" in table and table.splitlines()[4].split()[1] == "-"


def test_class_only_predicted_counts_as_zero_iou():
    label = torch.tensor([0, 0, 0, 0])
    pred = torch.tensor([0, 0, 0, 1])
    m = metrics_from_confusion(confusion_matrix(pred, label, 3))
    assert m["IoU"][0] == pytest.approx(75.0) and m["IoU"][1] == 0.0 and math.isnan(m["IoU"][2])
    assert m["mIoU"] == pytest.approx(37.5)
    assert math.isnan(m["Acc"][1])  # absent from the labels: no accuracy
    assert m["mAcc"] == pytest.approx(75.0)


def test_perfect_predictions_score_100_and_accumulate():
    g = torch.Generator().manual_seed(0)
    conf = torch.zeros(19, 19, dtype=torch.long)
    for _ in range(3):
        label = torch.randint(0, 19, (2, 8, 8), generator=g)
        label[:, 0] = 255
        conf += confusion_matrix(label.clamp(max=18), label, 19)
    m = metrics_from_confusion(conf)
    assert m["mIoU"] == pytest.approx(100.0) and m["mAcc"] == pytest.approx(100.0) and m["aAcc"] == pytest.approx(100.0)
    assert int(conf.sum()) == 3 * 2 * 7 * 8


def test_bad_label_values_are_reported():
    with pytest.raises(ValueError, match="label values"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([[0, 1]]), 3)


# ---------------------------------------------------------------- inference helpers
from aiblib.evaluate import predict, uncertainty  # noqa: E402


class _Pointwise(torch.nn.Module):
    """Per-pixel logits (no context), so slide and whole inference must agree exactly."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 1)

    def forward(self, x, *, samples=None, generator=None):
        return {"out": self.conv(x)}


def test_slide_equals_whole_for_a_pointwise_model_and_flip_tta_is_consistent():
    torch.manual_seed(0)
    model = _Pointwise().eval()
    x = torch.randn(1, 3, 37, 53)
    whole = predict(model, x)
    slide = predict(model, x, mode="slide", slide_crop=(16, 20), slide_stride=(10, 12))
    assert whole.shape == (1, 5, 37, 53)
    assert torch.allclose(whole, slide, atol=1e-5)
    both = predict(model, x, flip=True)  # a pointwise model is flip-equivariant
    assert torch.allclose(both, whole.softmax(1), atol=1e-5)
    multi = predict(model, x, scales=(0.5, 1.0))
    assert multi.shape == whole.shape and torch.allclose(multi.sum(1), torch.ones(1, 37, 53), atol=1e-5)


def test_uncertainty_entropy_and_mutual_information():
    # two classes; two samples that are confident and disagree: H = ln 2, MI = ln 2
    big = 30.0
    s = torch.tensor([[big, -big], [-big, big]]).reshape(2, 1, 2, 1, 1)
    entropy, mi = uncertainty({"sample_logits": s, "out": s.mean(0)})
    assert entropy.shape == (1, 1, 1, 1)
    assert entropy.item() == pytest.approx(math.log(2), abs=1e-4) and mi.item() == pytest.approx(math.log(2), abs=1e-4)
    # identical samples: MI = 0, entropy = that of the single softmax
    same = torch.randn(1, 1, 4, 3, 3, generator=torch.Generator().manual_seed(0)).repeat(3, 1, 1, 1, 1)
    entropy, mi = uncertainty({"sample_logits": same})
    p = same[0].softmax(1)
    assert torch.allclose(entropy, -(p * p.log()).sum(1, keepdim=True), atol=1e-5)
    assert mi.abs().max() < 1e-5
    entropy, mi = uncertainty({"out": same[0]})  # one sample only
    assert mi.abs().max() == 0


# ---------------------------------------------------------------- viz
from aiblib import viz  # noqa: E402


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
