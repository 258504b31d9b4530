"""Transforms: alignment, nearest-only labels, the crop limit, padding, seeding."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from aiblib.data import augment as A
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
    tf = A.train_transform(crop_size=(64, 128), base_size=(96, 192), photometric=False, cat_max_ratio=1.0)
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
    tf = A.train_transform(crop_size=(96, 192), base_size=(96, 192), ratio_range=(1.0, 1.0),
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
    tf = A.train_transform(crop_size=(50, 70), base_size=(60, 90), ratio_range=(0.5, 2.0))
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
    limited = A.train_transform(**kwargs)
    free = A.train_transform(**kwargs, cat_max_ratio=1.0)
    torch.manual_seed(0)
    assert all(_max_ratio(limited(image, label)[1]) < 0.75 for _ in range(40))
    torch.manual_seed(0)
    assert sum(_max_ratio(free(image, label)[1]) >= 0.75 for _ in range(40)) >= 5


def test_pad_uses_zero_and_ignore() -> None:
    # normalize, then pad: the padded image is 0.0 after normalization (the mean colour), label 255
    image = torch.full((3, 20, 30), 100, dtype=torch.uint8)
    label = torch.ones(20, 30, dtype=torch.uint8)
    tf = A.train_transform(crop_size=(40, 50), base_size=(20, 30), ratio_range=(1.0, 1.0), photometric=False)
    out_image, out_label = tf(image, label)
    assert out_image.shape == (3, 40, 50) and out_image.dtype == torch.float32
    assert (out_label[20:] == 255).all() and (out_label[:, 30:] == 255).all() and (out_label[:20, :30] == 1).all()
    assert (out_image[:, 20:] == 0.0).all() and (out_image[:, :, 30:] == 0.0).all()
    assert torch.equal(T.denormalize(out_image)[:, 20:, 0], torch.tensor([124, 116, 104], dtype=torch.uint8)[:, None].expand(3, 20))
    assert torch.allclose(out_image[:, :20, :30], T.normalize(image))  # the image itself is untouched


def test_pad_after_normalize_with_photometric_is_zero_in_every_channel() -> None:
    g = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (3, 15, 25), dtype=torch.uint8, generator=g)
    label = torch.randint(0, 19, (15, 25), dtype=torch.uint8, generator=g)
    tf = A.train_transform(crop_size=(32, 40), base_size=(15, 25), ratio_range=(1.0, 1.0), cat_max_ratio=1.0)
    for seed in range(4):
        torch.manual_seed(seed)
        out_image, out_label = tf(image, label)
        assert out_image.shape == (3, 32, 40) and out_label.shape == (32, 40)
        pad = torch.ones(32, 40, dtype=torch.bool)
        pad[:15, :25] = False
        assert (out_image[:, pad] == 0.0).all() and (out_label[pad] == 255).all()
        assert (out_label[~pad] != 255).all() and (out_image[:, ~pad] != 0.0).any()


def _texture(h: int = 64, w: int = 96) -> torch.Tensor:
    """A uint8 (3, h, w) texture: random noise plus a fine checkerboard, so that blurs show."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    checker = ((yy + xx) % 2 * 120).expand(3, h, w)
    return (torch.randint(0, 136, (3, h, w), generator=g) + checker).to(torch.uint8)


def test_downscale_by_two_is_the_block_mean_without_antialias() -> None:
    # OpenCV INTER_LINEAR (half-pixel centres, no anti-aliasing): a 2x downscale is the 2x2 block mean
    image = _texture()
    block_mean = image.double().reshape(3, 32, 2, 48, 2).mean((2, 4))
    out = T.resize_bilinear(image, (32, 48))
    assert out.dtype == torch.uint8 and out.shape == (3, 32, 48)
    assert (out.double() - block_mean).abs().max() <= 0.5  # rounded (half up) mean
    assert torch.equal(out.double(), (block_mean + 0.5).floor())
    # the training and test resizes use it
    label = torch.zeros(64, 96, dtype=torch.uint8)
    test_out, _ = T.test_transform(base_size=(32, 48))(image, label)
    assert (T.denormalize(test_out).double() - block_mean).abs().max() <= 1.0
    train = A.train_transform(crop_size=(32, 48), base_size=(32, 48), ratio_range=(1.0, 1.0), flip_prob=0.0,
                              photometric=False, cat_max_ratio=1.0)
    train_out, _ = train(image, label)
    assert (T.denormalize(train_out).double() - block_mean).abs().max() <= 1.0
    # the anti-aliased resize (the previous behaviour) fails this test on the same texture
    smooth = F.resize(image, [32, 48], interpolation=InterpolationMode.BILINEAR, antialias=True)
    assert (smooth.double() - block_mean).abs().max() > 1.0


def test_resize_keeps_dtype_and_subclass_and_labels_stay_nearest() -> None:
    image = tv_tensors.Image(_texture(30, 40))
    out = T.resize_bilinear(image, (45, 61))
    assert isinstance(out, tv_tensors.Image) and out.dtype == torch.uint8 and out.shape == (3, 45, 61)
    assert T.resize_bilinear(image.float(), (10, 20)).dtype == torch.float32
    assert T.resize_bilinear(image, (30, 40)) is image
    label = tv_tensors.Mask(torch.tensor([[3, 7], [11, 255]]).repeat_interleave(15, 0).repeat_interleave(20, 1))
    small = A.crop_label(label, (9, 12), (0, 0, 9, 12))
    assert set(torch.unique(small).tolist()) == {3, 7, 11, 255}


def test_scale_size_follows_mmcv() -> None:
    # mmcv Resize(scale_factor=r, keep_ratio=True): target int(x * r + 0.5), then fitted into it
    assert T.scale_size((100, 200), 0.5) == (50, 100)
    assert T.scale_size((100, 200), 1.0) == (100, 200)
    assert T.scale_size((720, 1280), 0.75) == (540, 960)
    assert T.scale_size((1024, 2048), 1.75) == (1792, 3584)
    assert T.scale_size((37, 53), 0.75) == (28, 40)


def test_seeded_runs_repeat_and_photometric_changes_colour() -> None:
    image, label = _shape_pair()
    tf = A.train_transform(crop_size=(64, 128), base_size=(96, 192))
    torch.manual_seed(3)
    a = [tf(image, label) for _ in range(3)]
    torch.manual_seed(3)
    b = [tf(image, label) for _ in range(3)]
    for (ia, la), (ib, lb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(la, lb)
    plain = A.train_transform(crop_size=(64, 128), base_size=(96, 192), photometric=False)
    changed = 0
    for seed in range(8):
        torch.manual_seed(seed)
        x, _ = plain(image, label)
        torch.manual_seed(seed)
        y, _ = tf(image, label)
        changed += int(not torch.equal(x, y))
    assert changed >= 4


def test_test_transform_keeps_label() -> None:
    image, label = _shape_pair(64, 128)
    out_image, out_label = T.test_transform(base_size=(128, 256))(image, label)
    assert out_image.shape == (3, 128, 256) and out_image.dtype == torch.float32
    assert torch.equal(out_label, label.long())
    assert torch.equal(T.denormalize(T.normalize(image)), image)


def test_test_transform_without_fit_keeps_the_original_size() -> None:
    image, label = _shape_pair(64, 128)
    out_image, out_label = T.test_transform(base_size=(32, 64), fit=False)(image, label)
    assert out_image.shape == (3, 64, 128) and torch.equal(T.denormalize(out_image), image)
    assert torch.equal(out_label, label.long())
    assert T.test_transform(base_size=(32, 64))(image, label)[0].shape == (3, 32, 64)
