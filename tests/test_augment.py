"""The training augmentation: draws, the crop-first apply step against resize-then-crop, the batched (device) path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from aiblib.data import augment as A
from aiblib.data import transforms as T
from aiblib.data.photometric import PhotometricDraws, photometric_distortion


def _pair(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    label = torch.randint(0, 19, ((h + 3) // 4, (w + 3) // 4), dtype=torch.uint8, generator=g)
    label = label.repeat_interleave(4, 0).repeat_interleave(4, 1)[:h, :w]
    label[: h // 8] = 255
    return image, label


def _cv2_resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
    return torch.from_numpy(cv2.resize(hwc, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1)


@pytest.mark.parametrize("shape, size, box", [
    ((48, 100), (96, 200), (7, 13, 40, 90)), ((48, 100), (30, 51), (0, 0, 30, 51)),
    ((48, 100), (64, 150), (20, 1, 44, 149)), ((48, 100), (24, 50), (3, 5, 20, 40)),
    ((37, 61), (83, 127), (0, 0, 83, 127)), ((64, 128), (127, 255), (60, 100, 67, 155)),
    ((101, 203), (55, 111), (0, 0, 55, 111)), ((512, 1024), (700, 1401), (100, 200, 512, 1024)),
])
def test_resize_opencv_is_cv2_and_a_window_is_the_window_of_the_whole(shape, size, box) -> None:
    image, label = _pair(*shape)
    top, left, h, w = box
    whole = T.resize_opencv(image, size)
    assert whole.dtype == torch.uint8 and whole.shape == (3, *size)
    assert torch.equal(whole, _cv2_resize(image, size))  # OpenCV's INTER_LINEAR, bit for bit
    assert torch.equal(T.resize_opencv(image, size, box), whole[:, top:top + h, left:left + w])
    mask = F.resize(tv_tensors.Mask(label), list(size))  # torchvision's nearest, as for every mask
    assert torch.equal(A.crop_label(label, size, box), mask[top:top + h, left:left + w].as_subclass(torch.Tensor))
    with pytest.raises(ValueError, match="uint8"):
        T.resize_opencv(image.float(), size)


def _reference(image: torch.Tensor, label: torch.Tensor, d: A.AugmentDraws, crop: tuple[int, int]):
    """The pipeline written out as MMSeg runs it: cv2.resize the whole image (and the label, nearest), crop, flip,
    distort, normalize, pad."""
    top, left, h, w = d.box
    img = _cv2_resize(image, d.size)[:, top:top + h, left:left + w]
    lab = F.resize(tv_tensors.Mask(label.long()), list(d.size))[top:top + h, left:left + w].as_subclass(torch.Tensor)
    if d.flip:
        img, lab = img.flip(-1), lab.flip(-1)
    if d.photometric is not None:
        img = photometric_distortion(img.contiguous(), d.photometric)
    return T.pad_to(T.normalize(img), lab, crop)


@pytest.mark.parametrize("seed", range(4))
def test_apply_is_resize_then_crop_flip_distort_normalize_pad(seed: int) -> None:
    image, label = _pair(60, 90, seed)
    tf = A.train_transform(crop_size=(40, 64), base_size=(60, 90))
    draws = tf.draw(label, torch.Generator().manual_seed(seed))
    out_image, out_label = A.apply_augment(image, label, draws, (40, 64))
    ref_image, ref_label = _reference(image, label, draws, (40, 64))
    assert out_image.shape == (3, 40, 64) and out_label.dtype == torch.int64
    assert torch.equal(out_image, ref_image) and torch.equal(out_label, ref_label)


def test_draws_are_a_function_of_the_generator_and_the_global_seed() -> None:
    image, label = _pair(60, 90)
    tf = A.train_transform(crop_size=(40, 64), base_size=(60, 90))
    draws = [tf.draw(label, torch.Generator().manual_seed(s)) for s in range(30)]
    assert draws[3] == tf.draw(label, torch.Generator().manual_seed(3))
    assert len({d.size for d in draws}) > 5 and len({d.box for d in draws}) > 5
    assert 5 <= sum(d.flip for d in draws) <= 25
    assert all(d.photometric is not None for d in draws)
    torch.manual_seed(5)
    a = tf(image, label)
    torch.manual_seed(5)
    b = tf(image, label)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    plain = A.train_transform(crop_size=(40, 64), base_size=(60, 90), photometric=False)
    assert plain.draw(label, torch.Generator().manual_seed(0)).photometric is None


def test_a_given_generator_draws_what_the_global_seed_did_and_leaves_the_global_rng_alone() -> None:
    """Training passes each sample's generator; seeded with s it gives the draws of ``torch.manual_seed(s)``
    without one (what training drew before it had its own generator, so earlier runs' augmentations hold)."""
    image, label = _pair(60, 90)
    tf = A.train_transform(crop_size=(40, 64), base_size=(60, 90), draw_only=True)
    for s in (0, 7, 2**40 + 3):
        torch.manual_seed(s)
        expected = tf(image, label)["draws"]
        before = torch.get_rng_state()
        assert tf(image, label, generator=torch.Generator().manual_seed(s))["draws"] == expected
        assert torch.equal(torch.get_rng_state(), before)


def test_batched_device_path_equals_the_cpu_path() -> None:
    # images of different sizes, some smaller than the crop (padded); the batched path on CPU tensors
    pairs = [_pair(60, 90, 0), _pair(30, 40, 1), _pair(72, 128, 2), _pair(60, 90, 3)]
    crop = (40, 64)
    tf = A.train_transform(crop_size=crop, base_size=(60, 90), cat_max_ratio=0.75)
    draw_tf = A.train_transform(crop_size=crop, base_size=(60, 90), cat_max_ratio=0.75, draw_only=True)
    items = []
    for i, (image, label) in enumerate(pairs):
        torch.manual_seed(100 + i)
        items.append(draw_tf(image, label))
    batch = A.collate_drawn(items)
    images, labels = A.apply_batch(batch["image"], batch["label"], batch["draws"], crop, torch.device("cpu"))
    assert images.shape == (4, 3, *crop) and labels.shape == (4, *crop) and labels.dtype == torch.int64
    assert any(d.photometric and d.photometric.hue is not None for d in batch["draws"])
    for i, (image, label) in enumerate(pairs):
        torch.manual_seed(100 + i)
        cpu_image, cpu_label = tf(image, label)
        assert torch.equal(labels[i], cpu_label)
        assert torch.equal(images[i], cpu_image)  # cv2 on the CPU path, OpenCV's arithmetic in torch on the other


def test_photometric_in_the_pipeline_is_the_drawn_one() -> None:
    image, label = _pair(40, 64)
    d = A.AugmentDraws((40, 64), (0, 0, 40, 64), False, PhotometricDraws(brightness=20.0))
    out, _ = A.apply_augment(image, label, d, (40, 64))
    assert torch.equal(T.denormalize(out), (image.float() + 20).clamp(0, 255).to(torch.uint8))
