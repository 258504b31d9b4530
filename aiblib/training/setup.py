"""What the training loop is given: the model (fresh, its backbone pretrained, on its device, in
DDP when distributed), the endless batches of this process's shard, and each batch on the device
(:mod:`aiblib.training.loop`)."""

from __future__ import annotations

import cv2
import torch
from torch import nn
from torch.utils.data import DataLoader

from aiblib.config import Config, Process
from aiblib.data import Batches, Guarded, GuardedCollate, Reading, apply_batch, collate_drawn, worker_init
from aiblib.errors import MissingFile
from aiblib.model import build_model
from aiblib.paths import project_path
from aiblib.storage import RunLog, init_pretrained
from aiblib.training.sampling import InfiniteShardSampler, SeededSamples

__all__ = ["fresh_model", "place_model", "wrap_ddp", "training_batches", "device_batch"]


def fresh_model(cfg: Config, log: RunLog, *, resuming: bool) -> nn.Module:
    """The model with fresh weights, its backbone from ``pretrained`` on a fresh start."""
    model_cfg = cfg.model_config()
    model = build_model(model_cfg)
    if model_cfg.pretrained and not resuming:  # a resumed run's weights are in its checkpoint
        path = project_path(model_cfg.pretrained)
        if not path.is_file():
            raise MissingFile(
                f"config key 'pretrained': no backbone file at {path.resolve()} (weights are never downloaded; "
                "give a local torchvision or MMSegmentation resnet*_v1c file, or '' to train from scratch)"
            )
        report = init_pretrained(model, path)
        log.write("event", 0, event="pretrained", path=str(path.resolve()), report=report)
    return model


def place_model(model: nn.Module, cfg: Config, proc: Process, channels_last: bool) -> tuple[nn.Module, str]:
    """Move to the device (channels_last if asked); SyncBN under DDP on CUDA, so BatchNorm always sees
    every image of the iteration (one process holds them all otherwise). Returns (model, BN kind)."""
    model.to(proc.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if proc.distributed and cfg.sync_bn and proc.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model), "SyncBatchNorm"
    return model, "BatchNorm"


def wrap_ddp(model: nn.Module, cfg: Config, proc: Process) -> nn.Module:
    """DDP around the model when distributed."""
    if not proc.distributed:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[proc.device.index] if proc.device.type == "cuda" else None,
        find_unused_parameters=bool(cfg.attention and cfg.mean_mask),
    )


def training_batches(cfg: Config, proc: Process, train_set, start: int, per_process: int) -> Batches:
    """Endless batches of ``per_process`` images of this process's shard, from iteration ``start`` on (with
    ``augment_on: device``: lists of uint8 images, labels and their draws, :func:`aiblib.data.collate_drawn`;
    a file that cannot be read raises ``DataError`` naming it, and so does a batch that its workers do not deliver
    within ``data_timeout`` seconds, naming the files they are stuck on; close the batches to end the workers)."""
    if cfg.num_workers > 0:
        # the workers run OpenCV (the CPU augmentation's resize and colour steps) in one thread, as the DataLoader
        # sets torch's, so that they do not oversubscribe the cores. Set here, before they fork, and inherited:
        # OpenCV's thread pool does not survive a fork (a worker that resized an inherited pool could hang)
        cv2.setNumThreads(1)
    sampler = InfiniteShardSampler(len(train_set), seed=cfg.seed, rank=proc.rank, world_size=proc.world_size,
                                   start=start * per_process)
    reading = Reading(train_set.files, cfg.num_workers) if cfg.num_workers > 0 else None  # for a stall's message
    loader = DataLoader(
        SeededSamples(Guarded(train_set, reading=reading)), batch_size=per_process, sampler=sampler,
        num_workers=cfg.num_workers, pin_memory=proc.device.type == "cuda", drop_last=True,
        persistent_workers=cfg.num_workers > 0, worker_init_fn=worker_init,
        generator=torch.Generator().manual_seed(cfg.seed),
        collate_fn=GuardedCollate(collate_drawn) if cfg.augment_on == "device" else GuardedCollate(),
        timeout=cfg.data_timeout if cfg.num_workers > 0 else 0,  # workers only: see aiblib.data.loading
    )
    return Batches(loader, reading=reading)


def device_batch(batch: dict, *, crop_size: tuple[int, int], device: torch.device,
                 channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader's ``batch`` on ``device``: images float32 (B, 3, h, w), normalized (channels_last when asked),
    labels int64 (B, h, w). A batch with ``draws`` (``augment_on: device``) is augmented there by
    :func:`aiblib.data.apply_batch` to ``crop_size`` (h, w)."""
    if "draws" in batch:
        images, labels = apply_batch(batch["image"], batch["label"], batch["draws"], tuple(crop_size), device)
    else:
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True).long()
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels
