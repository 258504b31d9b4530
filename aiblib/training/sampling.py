"""What a training process draws, in an order that survives resuming and any number of processes.

All processes together read one global stream: global position ``g`` is image
``perm_e[g mod N]`` of epoch ``e = g // N`` (``perm_e`` a permutation drawn from (seed, e)),
augmented with the seed ``sample_seed(seed, g)``. Rank ``r`` of ``W`` takes positions
``r, r + W, r + 2W, ...``, so iteration ``i`` with ``b`` images per process reads global
positions ``i*b*W .. (i+1)*b*W - 1``: the same images, with the same augmentations, on any
number of processes (8 per iteration on 1 GPU x 8 or 4 GPUs x 2). The stream of one process
is a pure function of (seed, rank, world_size, position): to resume after ``it`` iterations
of ``b`` images per process, start at ``it * b``. Each sample's augmentation is drawn from
its own seed, so it does not depend on workers, prefetching or where a run was resumed.

The data path touches no global random state: a sample's draws come from a ``torch.Generator`` of
its own, so torch's CPU and CUDA generators (the attention noise and dropout of training draw from
them, and checkpoints save them), NumPy's and Python's are advanced by the model's draws only.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["sample_seed", "InfiniteShardSampler", "SeededSamples"]


def sample_seed(seed: int, position: int) -> int:
    """The augmentation seed of the sample at global ``position`` of the stream."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1, np.uint32)[0])


class InfiniteShardSampler(Sampler):
    """Endless stream of ``(index, sample_seed)`` for one rank, starting at its ``start``-th draw.

    The rank's ``p``-th draw is global position ``rank + world_size * p`` of the one
    stream described in the module docstring.
    """

    def __init__(self, size: int, *, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start

    def epoch_indices(self, epoch: int) -> list[int]:
        """The permutation of the dataset that epoch ``epoch`` of the global stream reads."""
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        epoch, indices = -1, []
        while True:
            global_position = self.rank + self.world_size * position
            e, pos = divmod(global_position, self.size)
            if e != epoch:
                epoch, indices = e, self.epoch_indices(e)
            yield indices[pos], sample_seed(self.seed, global_position)
            position += 1


class SeededSamples(Dataset):
    """Wraps a dataset: ``self[(index, seed)]`` is ``dataset.get(index, generator=g)`` with ``g`` a fresh
    ``torch.Generator`` seeded by ``seed`` (:meth:`aiblib.data.datasets.SegmentationDataset.get`), so
    augmentations do not depend on workers, prefetching or where a run was resumed, and no global RNG
    is read or seeded (a CPU generator seeded by ``s`` gives the stream ``torch.manual_seed(s)`` would)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        return self.dataset.get(index, generator=torch.Generator().manual_seed(seed))
