"""A training run: the loop (:mod:`.loop`) and what it is built from: its objective (:mod:`.losses`),
set-up (:mod:`.setup`), sampling (:mod:`.sampling`), logged statistics (:mod:`.stats`), clean stops
(:mod:`.stopping`), the run directory (:mod:`.rundir`) and torchrun from a notebook (:mod:`.torchrun`).

Floor 6: imports floors 0-5 (validation during training is ``aiblib.evaluation``'s).
"""

from aiblib.training import loop
from aiblib.training.loop import NonFiniteLossError, build_datasets, make_optimizer, poly_lr, scheduled_lr, train
from aiblib.training.losses import cross_entropy, segmentation_loss
from aiblib.training.sampling import InfiniteShardSampler, SeededSamples
from aiblib.training.setup import device_batch, training_batches
from aiblib.training.torchrun import launch, torchrun_command

__all__ = [
    "loop", "cross_entropy", "segmentation_loss",
    "NonFiniteLossError", "build_datasets", "device_batch", "make_optimizer", "poly_lr", "scheduled_lr", "train",
    "InfiniteShardSampler", "SeededSamples", "training_batches", "launch", "torchrun_command",
]
