"""augment_on device on a GPU: the batched CUDA path against the CPU path, and its time per batch.

    python benchmarks/augment_device_check.py        (needs CUDA)

Cityscapes-sized synthetic scenes (1024x2048 -> 512x1024), 8 per batch, the same draws on both paths:
labels must be equal, images (before normalization) within one grey level (the count of differing values is
printed). Then the CUDA time of apply_batch per batch of 8 (after warm-up, synchronized), and the CPU time of
the same 8 images through the CPU path (one thread), for scale.
"""

from __future__ import annotations

import statistics
import time

import torch

from aiblib.data import apply_batch, collate_drawn, denormalize, train_transform
from aiblib.tools import scene


def main() -> None:
    torch.set_num_threads(1)
    device = torch.device("cuda")
    pairs = [scene((1024, 2048), seed=s) for s in range(8)]
    cpu_tf, draw_tf = train_transform(), train_transform(draw_only=True)
    items, cpu = [], []
    for i, (image, label) in enumerate(pairs):
        torch.manual_seed(1000 + i)
        items.append(draw_tf(image, label))
        torch.manual_seed(1000 + i)
        cpu.append(cpu_tf(image, label))
    batch = collate_drawn(items)
    images, labels = apply_batch(batch["image"], batch["label"], batch["draws"], (512, 1024), device)
    worst, differing = 0, 0
    for i, (cpu_image, cpu_label) in enumerate(cpu):
        assert torch.equal(labels[i].cpu(), cpu_label), f"label {i} differs"
        diff = (denormalize(images[i].cpu()).int() - denormalize(cpu_image).int()).abs()
        worst, differing = max(worst, int(diff.max())), differing + int((diff > 0).sum())
    print(f"labels equal; images: max difference {worst} grey levels, {differing} values differ "
          f"of {8 * 3 * 512 * 1024}; normalized outputs equal: {all(torch.equal(images[i].cpu(), c[0]) for i, c in enumerate(cpu))}")
    times = []
    for _ in range(12):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        apply_batch(batch["image"], batch["label"], batch["draws"], (512, 1024), device)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    print(f"CUDA apply_batch of 8 (host->device copy of the uint8 images included): "
          f"median {1000 * statistics.median(times[2:]):.1f} ms per batch, {torch.cuda.get_device_name()}")
    t0 = time.perf_counter()
    for i, (image, label) in enumerate(pairs):
        torch.manual_seed(1000 + i)
        cpu_tf(image, label)
    print(f"CPU path, the same 8 images, one thread: {1000 * (time.perf_counter() - t0) / 8:.1f} ms per image")


if __name__ == "__main__":
    main()
