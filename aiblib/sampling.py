"""What a training process draws, in an order that survives resuming and any number of processes.

The stream of ``(index, sample_seed)`` of one process is a pure function of (seed, rank,
world_size, position): to resume after ``it`` iterations of ``batch_size``, start at
``it * batch_size``. Each sample's augmentation is drawn from its own seed, so it does not
depend on workers, prefetching or where a run was resumed.
"""

from __future__ import annotations

import math
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["sample_seed", "InfiniteShardSampler", "SeededSamples"]


def sample_seed(seed: int, rank: int, position: int) -> int:
    """The augmentation seed of the ``position``-th sample drawn by ``rank``."""
    return int(np.random.SeedSequence([seed, rank, position]).generate_state(1, np.uint32)[0])


class InfiniteShardSampler(Sampler):
    """Endless stream of ``(index, sample_seed)`` for one rank, starting at ``start``.

    Epoch ``e`` is a permutation of the dataset drawn from ``(seed, e)``, padded by
    wrapping to a multiple of ``world_size`` and dealt round-robin to the ranks, so the
    stream is a pure function of (seed, rank, world_size, position): to resume after
    ``it`` iterations, start at ``it * batch_size``.
    """

    def __init__(self, size: int, *, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start
        self.per_rank = math.ceil(size / world_size)

    def epoch_indices(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        perm = torch.randperm(self.size, generator=g).tolist()
        total = self.per_rank * self.world_size
        perm = (perm * math.ceil(total / self.size))[:total]
        return perm[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        epoch, indices = -1, []
        while True:
            e, pos = divmod(position, self.per_rank)
            if e != epoch:
                epoch, indices = e, self.epoch_indices(e)
            yield indices[pos], sample_seed(self.seed, self.rank, position)
            position += 1


class SeededSamples(Dataset):
    """Wraps a dataset: ``self[(index, seed)]`` is ``dataset[index]`` drawn with torch,
    numpy and python ``random`` seeded by ``seed`` (the caller's RNG states are restored),
    so augmentations do not depend on workers, prefetching or where a run was resumed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
