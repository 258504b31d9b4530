"""Transforms: alignment, nearest-only labels, the crop limit, padding, seeding."""

from __future__ import annotations

import pytest
import torch

from aiblib.data import transforms as T


def _shape_pair(h: int = 96, w: int = 192) -> tuple[torch.Tensor, torch.Tensor]:
    """An image with a bright L-shape and a triangle on dark ground; the label marks them."""
    image = torch.full((3, h, w), 20, dtype=torch.uint8)
    label = torch.zeros(h, w, dtype=torch.uint8)
    label[20:70, 30:50] = 5
    label[55:70, 30:110] = 5
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    label[(xx > 130) & (yy > 30) & (xx - 130 < yy - 30) & (yy < 85)] = 13
    image[:, label == 5] = 230
    image[0, label == 13] = 200
    image[1:, label == 13] = 20
    return image, label


def test_fit_size_keeps_ratio() -> None:
    assert T.fit_size((1024, 2048), (512, 1024)) == (512, 1024)
    assert T.fit_size((720, 1280), (1024, 2048)) == (1024, 1820)
    assert T.fit_size((256, 512), (1024, 2048)) == (1024, 2048)


@pytest.mark.parametrize("seed", range(6))
def test_image_and_label_stay_aligned(seed: int) -> None:
    image, label = _shape_pair()
    tf = T.train_transform(crop_size=(64, 128), base_size=(96, 192), photometric=False, cat_max_ratio=1.0)
    torch.manual_seed(seed)
    out_image, out_label = tf(image, label)
    rgb = T.denormalize(out_image).int()
    valid = out_label != 255
    bright = (rgb[1] > 125) & valid
    red = (rgb[0] > 110) & (rgb[1] < 110) & valid
    for mask, cls in ((bright, 5), (red, 13)):
        target = (out_label == cls)
        union = (mask | target).sum().item()
        if union:
            inter = (mask & target).sum().item()
            # only a one-pixel fringe may differ (bilinear image edge against a nearest label)
            border = (target.float().unsqueeze(0).unsqueeze(0))
            edge = torch.nn.functional.max_pool2d(border, 3, 1, 1) - (-torch.nn.functional.max_pool2d(-border, 3, 1, 1))
            assert (union - inter) <= edge.sum().item(), (seed, cls, union, inter)


def test_flip_moves_shape_with_label() -> None:
    image, label = _shape_pair()
    tf = T.train_transform(crop_size=(96, 192), base_size=(96, 192), ratio_range=(1.0, 1.0),
                           flip_prob=1.0, photometric=False, cat_max_ratio=1.0)
    out_image, out_label = tf(image, label)
    assert torch.equal(out_label, label.flip(-1).long())
    assert torch.equal(T.denormalize(out_image), image.flip(-1))


def test_labels_take_only_nearest_values() -> None:
    g = torch.Generator().manual_seed(0)
    choices = torch.tensor([3, 7, 255], dtype=torch.uint8)
    label = choices[torch.randint(0, 3, (60, 90), generator=g)]
    label[:10] = 11
    image = torch.randint(0, 256, (3, 60, 90), dtype=torch.uint8, generator=g)
    tf = T.train_transform(crop_size=(50, 70), base_size=(60, 90), ratio_range=(0.5, 2.0))
    for seed in range(10):
        torch.manual_seed(seed)
        _, out = tf(image, label)
        assert out.dtype == torch.int64
        assert set(torch.unique(out).tolist()) <= {3, 7, 11, 255}


def _max_ratio(label: torch.Tensor) -> float:
    counts = torch.bincount(label.reshape(-1), minlength=256)[:255]
    return counts.max().item() / max(counts.sum().item(), 1)


def test_crop_respects_cat_max_ratio() -> None:
    # four 100-px stripes; a 120-px crop is dominated (>= 75 %) by one stripe for ~40 % of offsets
    label = (torch.arange(400) // 100).to(torch.uint8).expand(100, 400).clone()
    label[:5] = 255
    image = torch.zeros(3, 100, 400, dtype=torch.uint8)
    kwargs = dict(crop_size=(100, 120), base_size=(100, 400), ratio_range=(1.0, 1.0), photometric=False, flip_prob=0.0)
    limited = T.train_transform(**kwargs)
    free = T.train_transform(**kwargs, cat_max_ratio=1.0)
    torch.manual_seed(0)
    assert all(_max_ratio(limited(image, label)[1]) < 0.75 for _ in range(40))
    torch.manual_seed(0)
    assert sum(_max_ratio(free(image, label)[1]) >= 0.75 for _ in range(40)) >= 5


def test_pad_uses_zero_and_ignore() -> None:
    image = torch.full((3, 20, 30), 100, dtype=torch.uint8)
    label = torch.ones(20, 30, dtype=torch.uint8)
    tf = T.train_transform(crop_size=(40, 50), base_size=(20, 30), ratio_range=(1.0, 1.0), photometric=False)
    out_image, out_label = tf(image, label)
    assert out_image.shape == (3, 40, 50) and out_image.dtype == torch.float32
    assert (out_label[20:] == 255).all() and (out_label[:, 30:] == 255).all() and (out_label[:20, :30] == 1).all()
    assert (T.denormalize(out_image)[:, 20:] == 0).all()


def test_seeded_runs_repeat_and_photometric_changes_colour() -> None:
    image, label = _shape_pair()
    tf = T.train_transform(crop_size=(64, 128), base_size=(96, 192))
    torch.manual_seed(3)
    a = [tf(image, label) for _ in range(3)]
    torch.manual_seed(3)
    b = [tf(image, label) for _ in range(3)]
    for (ia, la), (ib, lb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(la, lb)
    torch.manual_seed(0)
    changed = 0
    for _ in range(8):
        x = image.float()
        y = T.photometric_distortion(x)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
        changed += int(not torch.allclose(x, y))
    assert changed >= 4


def test_saturation_follows_hsv() -> None:
    x = torch.tensor([[[200.0]], [[100.0]], [[50.0]]])  # V=200, S=0.75
    torch.manual_seed(0)
    for _ in range(50):
        y = T.photometric_distortion(x, brightness_delta=0.0, contrast_range=(1.0, 1.0), hue_delta=1)
        v, lo = y.max().item(), y.min().item()
        assert abs(v - 200) < 1e-3 or v < 200  # value kept (hue shift of < 1 unit may round)
        assert 0 <= lo <= 200


def test_test_transform_keeps_label() -> None:
    image, label = _shape_pair(64, 128)
    out_image, out_label = T.test_transform(base_size=(128, 256))(image, label)
    assert out_image.shape == (3, 128, 256) and out_image.dtype == torch.float32
    assert torch.equal(out_label, label.long())
    assert torch.equal(T.denormalize(T.normalize(image)), image)
