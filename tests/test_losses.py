"""Loss terms and reductions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aiblib.training import cross_entropy, segmentation_loss


def test_reductions_all_and_valid():
    logits = torch.randn(1, 3, 2, 2)
    labels = torch.tensor([[[0, 1], [255, 2]]])
    per = -F.log_softmax(logits, 1)[0]
    picked = [per[0, 0, 0], per[1, 0, 1], per[2, 1, 1]]
    torch.testing.assert_close(cross_entropy(logits, labels), sum(picked) / 4)           # ignored counts as zero
    torch.testing.assert_close(cross_entropy(logits, labels, reduction="valid"), sum(picked) / 3)


def test_logits_are_upsampled_bilinearly_to_the_label():
    logits = torch.randn(2, 5, 4, 4)
    labels = torch.randint(0, 5, (2, 16, 16))
    up = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(cross_entropy(logits, labels), F.cross_entropy(up, labels))


def test_segmentation_loss_terms_and_total():
    out = {"out": torch.randn(2, 4, 8, 8), "aux": torch.randn(2, 4, 4, 4), "kl": torch.tensor(3.0)}
    labels = torch.randint(0, 4, (2, 16, 16))
    labels[0, :4] = 255
    terms = segmentation_loss(out, labels, beta=1e-3)
    torch.testing.assert_close(terms["loss_aux"], 0.4 * cross_entropy(out["aux"], labels))
    torch.testing.assert_close(terms["loss_kl"], torch.tensor(3e-3))
    torch.testing.assert_close(terms["loss"], terms["loss_ce"] + terms["loss_aux"] + terms["loss_kl"])
    plain = segmentation_loss({"out": out["out"]}, labels, beta=1e-3, reduction="valid")
    assert plain["loss_aux"] == 0 and plain["loss_kl"] == 0
    assert math.isclose(plain["loss"].item(), cross_entropy(out["out"], labels, reduction="valid").item(), rel_tol=1e-6)
