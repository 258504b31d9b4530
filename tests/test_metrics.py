"""Confusion matrix and scores (MMSegmentation semantics)."""

from __future__ import annotations

import math

import pytest
import torch

from aiblib.evaluation import confusion_matrix, format_table, metrics_from_confusion


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


def _mmseg_intersect_and_union(pred: torch.Tensor, label: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """MMSegmentation IoUMetric.intersect_and_union, written out: histograms of the labelled pixels."""
    keep = label != 255
    pred, label = pred[keep].float(), label[keep].float()
    intersect = pred[pred == label]
    area_intersect = torch.histc(intersect, bins=k, min=0, max=k - 1)
    area_pred = torch.histc(pred, bins=k, min=0, max=k - 1)
    area_label = torch.histc(label, bins=k, min=0, max=k - 1)
    return area_intersect, area_pred + area_label - area_intersect, area_label


def test_scores_equal_mmsegmentations_iou_metric_on_fixed_inputs():
    g = torch.Generator().manual_seed(7)
    k, conf, totals = 19, torch.zeros(19, 19, dtype=torch.long), torch.zeros(3, 19, dtype=torch.float64)
    for _ in range(4):  # a split of 4 images, accumulated
        label = torch.randint(0, 12, (32, 48), generator=g)  # classes 12..18 absent from the labels
        label[torch.rand(32, 48, generator=g) < 0.1] = 255
        pred = torch.where(torch.rand(32, 48, generator=g) < 0.6, label.clamp(max=k - 1),
                           torch.randint(0, 14, (32, 48), generator=g))  # 12, 13 only predicted
        conf += confusion_matrix(pred, label, k)
        totals += torch.stack(_mmseg_intersect_and_union(pred, label, k)).double()
    intersect, union, area_label = totals
    iou = intersect / union * 100  # NaN where the class is in neither: skipped by nanmean
    m = metrics_from_confusion(conf)
    assert torch.allclose(torch.tensor(m["IoU"], dtype=torch.float64), iou, equal_nan=True)
    assert m["mIoU"] == pytest.approx(float(iou.nanmean()))
    assert m["aAcc"] == pytest.approx(float(intersect.sum() / area_label.sum() * 100))
    assert sum(not math.isnan(x) for x in m["IoU"]) == 14  # 12 labelled classes + 2 only predicted
